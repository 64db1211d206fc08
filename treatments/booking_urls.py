"""Routes of the calendar, bookings, courses, rooms, working hours and closures."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []

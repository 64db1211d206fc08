"""Routes of the reminder delivery log and reception's follow-up list."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []

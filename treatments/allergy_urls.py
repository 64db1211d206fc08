"""Routes of allergy tests and the practitioner's task list."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []

"""Routes of session records (the cocktail given, adverse events) and reports."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []

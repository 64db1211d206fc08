"""URL routes of the patients app (features arrive with their issues)."""

from django.urls import URLPattern

app_name = "patients"

urlpatterns: list[URLPattern] = []

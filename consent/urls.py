"""URL routes of the consent app (features arrive with their issues)."""

from django.urls import URLPattern

app_name = "consent"

urlpatterns: list[URLPattern] = []

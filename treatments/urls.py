"""URL routes of the treatments app (features arrive with their issues)."""

from django.urls import URLPattern

app_name = "treatments"

urlpatterns: list[URLPattern] = []

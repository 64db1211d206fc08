"""Routes of aftercare documents (staff), emailed download links and the patient portal."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []

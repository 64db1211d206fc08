"""Routes of the catalogue: ingredients, products, batches, protocols, aftercare sheets."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []

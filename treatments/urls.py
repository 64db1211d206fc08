"""URL routes of the treatments app: the catalogue, protocols and aftercare
sheets (managers), allergy tests and the practitioner's tasks."""

from django.urls import URLPattern

from treatments.allergy_urls import urlpatterns as allergy_urls
from treatments.catalogue_urls import urlpatterns as catalogue_urls

app_name = "treatments"

urlpatterns: list[URLPattern] = [*catalogue_urls, *allergy_urls]

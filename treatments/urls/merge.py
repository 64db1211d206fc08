"""Routes of comparing two records of one person and merging them (practitioners)."""

from django.urls import URLPattern, path

from treatments.views import merge as views

urlpatterns: list[URLPattern] = [
    path(
        "patients/<uuid:patient>/merge/",
        views.patient_merge_compare,
        name="patient_merge_compare",
    ),
    path("patients/<uuid:patient>/merge/confirm/", views.patient_merge_view, name="patient_merge"),
]

"""Routes of patients' data rights: subject-access exports and erasure requests."""

from django.urls import URLPattern, path

from treatments.views import data_rights as views

urlpatterns: list[URLPattern] = [
    path("patients/<uuid:patient>/data-rights/", views.data_rights, name="data_rights"),
    path(
        "patients/<uuid:patient>/data-rights/export/",
        views.subject_access_create,
        name="subject_access_create",
    ),
    path(
        "patients/<uuid:patient>/data-rights/export/<uuid:export>/",
        views.subject_access_status,
        name="subject_access_status",
    ),
    path(
        "patients/<uuid:patient>/data-rights/export/<uuid:export>/download/",
        views.subject_access_download,
        name="subject_access_download",
    ),
    path(
        "patients/<uuid:patient>/data-rights/erasure/",
        views.erasure_create,
        name="erasure_create",
    ),
]

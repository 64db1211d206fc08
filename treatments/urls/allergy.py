"""Routes of allergy tests and the practitioner's task list."""

from django.urls import URLPattern, path

from treatments.views import allergy as views

urlpatterns: list[URLPattern] = [
    path("tasks/", views.tasks, name="tasks"),
    path("patients/<uuid:patient>/allergy-tests/", views.allergy_tests, name="allergy_tests"),
    path(
        "patients/<uuid:patient>/allergy-tests/new/",
        views.allergy_test_new,
        name="allergy_test_new",
    ),
    path(
        "patients/<uuid:patient>/allergy-tests/<uuid:test>/",
        views.allergy_test_detail,
        name="allergy_test_detail",
    ),
    path(
        "patients/<uuid:patient>/allergy-tests/<uuid:test>/read/",
        views.allergy_test_read_view,
        name="allergy_test_read",
    ),
    path(
        "patients/<uuid:patient>/allergy-tests/<uuid:test>/photo/",
        views.allergy_test_photo,
        name="allergy_test_photo",
    ),
]

"""URL routes of the patient register."""

from django.urls import path

from patients import views

app_name = "patients"

urlpatterns = [
    path("", views.patient_list, name="list"),
    path("new/", views.patient_create_view, name="create"),
    path("<uuid:patient>/", views.patient_detail, name="detail"),
    path("<uuid:patient>/edit/", views.patient_edit, name="edit"),
    path("<uuid:patient>/history/", views.history_detail, name="history"),
    path("<uuid:patient>/history/new/", views.history_new, name="history_new"),
    path("<uuid:patient>/access/", views.access_history, name="access_history"),
    path("<uuid:patient>/consultations/", views.consultation_list, name="consultations"),
    path("<uuid:patient>/consultations/new/", views.consultation_new, name="consultation_new"),
    path("<uuid:patient>/photos/", views.photo_list, name="photos"),
    path("<uuid:patient>/photos/compare/", views.photo_compare, name="photo_compare"),
    path("<uuid:patient>/photos/<uuid:photo>/", views.photo_file, name="photo_file"),
]

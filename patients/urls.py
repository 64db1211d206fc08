"""URL routes of the patient register."""

from django.urls import path

from patients import import_views, views

app_name = "patients"

urlpatterns = [
    path("", views.patient_list, name="list"),
    path("new/", views.patient_create_view, name="create"),
    path("import/", import_views.import_list, name="import_list"),
    path("import/<uuid:job>/", import_views.import_detail, name="import_detail"),
    path("import/<uuid:job>/columns/", import_views.import_columns, name="import_columns"),
    path("import/<uuid:job>/rows/<int:row>/", import_views.import_row, name="import_row"),
    path("import/<uuid:job>/progress/", import_views.import_progress_view, name="import_progress"),
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

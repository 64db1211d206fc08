"""Routes of session records (the cocktail given, adverse events and their
follow-ups), a patient's timeline, and reports."""

from django.urls import URLPattern, path

from treatments.views import patient_panel, reports
from treatments.views import session as views

urlpatterns: list[URLPattern] = [
    path("sessions/<uuid:booking>/record/", views.session_record, name="session_record"),
    path(
        "sessions/records/<uuid:session>/amend/",
        views.session_amend_view,
        name="session_amend",
    ),
    path(
        "sessions/records/<uuid:session>/adverse-events/new/",
        views.adverse_event_new,
        name="adverse_event_new",
    ),
    path(
        "sessions/records/<uuid:session>/adverse-events/follow-ups/new/",
        views.adverse_event_follow_up_new,
        name="adverse_event_follow_up",
    ),
    path(
        "patients/<uuid:patient>/timeline/",
        patient_panel.patient_timeline_view,
        name="patient_timeline",
    ),
    path("reports/", reports.reports, name="reports"),
]

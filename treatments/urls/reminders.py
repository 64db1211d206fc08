"""Routes of the reminder delivery log and reception's follow-up list."""

from django.urls import URLPattern, path

from treatments.views import reminders as views

urlpatterns: list[URLPattern] = [
    path("patients/<uuid:patient>/reminders/", views.reminder_log, name="reminder_log"),
    path("calendar/bookings/<uuid:booking>/reminders/", views.reminder_log, name="reminder_log"),
    path("reminders/follow-up/", views.reminder_followups_view, name="reminder_followups"),
]

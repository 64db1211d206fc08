"""Routes of the calendar, bookings, courses, rooms, working hours and closures."""

from django.urls import URLPattern, path

from treatments.views import booking as views
from treatments.views import calendar as calendar_views
from treatments.views import patient_panel

urlpatterns: list[URLPattern] = [
    path("calendar/", calendar_views.calendar, name="calendar"),
    path(
        "patients/<uuid:patient>/sessions/",
        patient_panel.patient_treatment_panel,
        name="patient_treatment_panel",
    ),
    path("calendar/next-free/", views.next_free_slot_view, name="next_free_slot"),
    path("calendar/bookings/new/", views.booking_new, name="booking_new"),
    path("calendar/bookings/check/", views.booking_check, name="booking_check"),
    path(
        "calendar/bookings/patients/",
        views.booking_patient_search,
        name="booking_patient_search",
    ),
    path("calendar/bookings/<uuid:booking>/", views.booking_detail, name="booking_detail"),
    path("calendar/bookings/<uuid:booking>/move/", views.booking_move_view, name="booking_move"),
    path(
        "calendar/bookings/<uuid:booking>/cancel/",
        views.booking_cancel_view,
        name="booking_cancel",
    ),
    path("calendar/bookings/<uuid:booking>/status/", views.booking_mark_view, name="booking_mark"),
    path("calendar/courses/new/", views.course_new, name="course_new"),
    path(
        "patients/<uuid:patient>/courses/<uuid:course>/",
        views.course_detail,
        name="course_detail",
    ),
    path("calendar/rooms/", calendar_views.room_list, name="room_list"),
    path("calendar/rooms/new/", calendar_views.room_new, name="room_new"),
    path("calendar/rooms/<uuid:room>/edit/", calendar_views.room_edit, name="room_edit"),
    path("calendar/hours/", calendar_views.hours_edit, name="hours_edit"),
    path("calendar/hours/clear/", calendar_views.hours_clear, name="hours_clear"),
    path("calendar/closures/", calendar_views.closure_list, name="closure_list"),
    path(
        "calendar/closures/<uuid:closure>/edit/",
        calendar_views.closure_edit,
        name="closure_edit",
    ),
    path(
        "calendar/closures/<uuid:closure>/remove/",
        calendar_views.closure_remove_view,
        name="closure_remove",
    ),
]

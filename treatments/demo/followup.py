"""Demo data: courses whose next session is not booked, so reception's
follow-up list has someone to call.

Theo booked a course of four hand sessions and cancelled them all when his
work sent him abroad for a month; Freya booked four under-eye sessions and
cancelled them while she waits to hear from the practitioner. Both courses
still run with nothing booked: they head the list ("0 of 4", every booking
cancelled) until reception books their next session.

Written today through the course and booking services (no clock moved, so
it is there after `make run` too), after the calendar (treatments.demo.booking)
so their sessions take times left free. Idempotent: a patient who already has
a course of that protocol gets none.
"""

from __future__ import annotations

from datetime import time, timedelta

from django.db import transaction
from django.utils import timezone

from clinic.localtime import local_instant
from clinic.models import User
from patients.models import Patient
from treatments.models import Protocol, Room, TreatmentCourse
from treatments.selectors.booking import next_free_slot
from treatments.services.booking import BookingRefusedError, booking_cancel
from treatments.services.course import CourseRefusedError, course_book, course_propose

# (the patient's email before the @, protocol, why every session was cancelled)
CANCELLED_COURSES: tuple[tuple[str, str, str], ...] = (
    ("theo.fairbairn", "Hands", "Away with work for a month; will call to rebook."),
    ("freya.lindqvist", "Under-eye", "Waiting to hear from the practitioner; will call."),
)
SESSIONS = 4
# The first session was to be three weeks on, after the demo's calendar.
WEEKS_AHEAD = 3


@transaction.atomic
def seed(*, practitioner: User, reception: User) -> int:
    """Book and cancel the courses above not yet booked; return how many
    objects were added (courses and their bookings)."""
    room = Room.objects.filter(active=True).order_by("name").first()
    if room is None:
        return 0  # treatments.demo.booking sets up the rooms and working hours
    protocols = {p.name: p for p in Protocol.objects.filter(active=True)}
    added = 0
    for key, name, reason in CANCELLED_COURSES:
        patient = Patient.objects.filter(email__startswith=f"{key}@").first()
        protocol = protocols.get(name)
        if patient is None or protocol is None:
            continue
        if TreatmentCourse.objects.filter(patient=patient, protocol=protocol).exists():
            continue
        added += _book_and_cancel(patient, protocol, practitioner, reception, room, reason)
    return added


def _book_and_cancel(
    patient: Patient,
    protocol: Protocol,
    practitioner: User,
    reception: User,
    room: Room,
    reason: str,
) -> int:
    wanted = local_instant(timezone.localdate() + timedelta(weeks=WEEKS_AHEAD), time(10))
    first = next_free_slot(
        practitioner=practitioner,
        room=room,
        duration=timedelta(minutes=protocol.session_minutes),
        patient=patient,
        after=wanted,
    )
    if first is None:
        return 0
    proposals = course_propose(
        patient=patient,
        protocol=protocol,
        practitioner=practitioner,
        room=room,
        first_start=first,
        sessions=SESSIONS,
    )
    try:
        course = course_book(
            patient=patient,
            protocol=protocol,
            practitioner=practitioner,
            room=room,
            starts=[p.starts_at for p in proposals if p.starts_at is not None],
            interval=protocol.interval,
            created_by=reception,
        )
    except (CourseRefusedError, BookingRefusedError):
        return 0
    bookings = list(course.bookings.order_by("starts_at"))
    for booking in bookings:
        booking_cancel(booking=booking, reason=reason, cancelled_by=reception)
    return 1 + len(bookings)

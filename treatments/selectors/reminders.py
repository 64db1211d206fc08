"""Reads of reminders for reception: the delivery log and the follow-up list.

Each is one query whatever the number of rows (what the page shows is joined
in). No clinical detail: kind, channel, times, status and why it failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Exists, F, Max, OuterRef, Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from patients.models import Patient
from treatments.models import (
    Booking,
    BookingStatus,
    CourseStatus,
    Reminder,
    ReminderStatus,
    TreatmentCourse,
)

LOG_LIMIT = 200
# Failed reminders stay on the follow-up list this long.
FOLLOWUP_DAYS = 30


def _log(queryset: QuerySet[Reminder]) -> list[Reminder]:
    return list(
        queryset.select_related("booking", "recipient").order_by("-due_at", "-id")[:LOG_LIMIT]
    )


def reminder_log_for_patient(*, patient: Patient) -> list[Reminder]:
    """The patient's reminders, latest first (the most recent LOG_LIMIT)."""
    return _log(Reminder.objects.filter(patient=patient))


def reminder_log_for_booking(*, booking: Booking) -> list[Reminder]:
    """The reminders of one booking, for every time it was planned at."""
    return _log(Reminder.objects.filter(booking=booking))


def reminder_followups(*, now: datetime | None = None) -> list[Reminder]:
    """Reception's list of reminders that could not be sent: the failed
    reminders of the last FOLLOWUP_DAYS days (`now` aware, default the
    current time), newest first, at most LOG_LIMIT. Read through the partial
    index reminder_failed_idx (treatments migration 0014): the failed rows of
    the window, not every reminder ever planned."""
    now = now or timezone.now()
    return list(
        Reminder.objects.filter(
            status=ReminderStatus.FAILED, updated_at__gte=now - timedelta(days=FOLLOWUP_DAYS)
        )
        .select_related("patient", "booking", "course", "recipient")
        .order_by("-due_at", "-id")[:LOG_LIMIT]
    )


@dataclass(frozen=True)
class CourseToBook:
    """A running course with no session ahead of it: `sessions_done` of its
    planned sessions completed, the last one ending at `last_session_ended`
    (None: none completed yet, every booking cancelled or missed)."""

    course: TreatmentCourse
    sessions_done: int
    last_session_ended: datetime | None


# A booked or arrived session still counts as ahead of its course until
# the end of the day after it: the day's sessions are marked by then.
UNMARKED_GRACE = timedelta(days=1)


def courses_to_book(*, now: datetime | None = None) -> list[CourseToBook]:
    """Reception's list of courses whose next session is not booked.

    Derived from the courses themselves whenever it is read, so any change
    (a session completed, the later ones cancelled, a no-show, a move) shows
    at once: a course is listed while it runs (status active), fewer sessions
    are completed than planned, and none of its bookings is booked or arrived
    for later than UNMARKED_GRACE before `now` (aware, default the current
    time): a session long past that nobody marked does not hide the course.
    Longest waiting first, at most LOG_LIMIT; one query.
    """
    now = now or timezone.now()
    ahead = Booking.objects.filter(
        course=OuterRef("pk"),
        status__in=(BookingStatus.BOOKED, BookingStatus.ARRIVED),
        starts_at__gt=now - UNMARKED_GRACE,
    )
    completed = Q(bookings__status=BookingStatus.COMPLETED)
    courses = (
        TreatmentCourse.objects.filter(status=CourseStatus.ACTIVE)
        .annotate(
            sessions_done=Count("bookings", filter=completed),
            last_session_ended=Max("bookings__ends_at", filter=completed),
            has_session_ahead=Exists(ahead),
        )
        .filter(has_session_ahead=False, sessions_done__lt=F("planned_sessions"))
        .select_related("patient")
        .order_by(Coalesce("last_session_ended", "created_at"), "id")[:LOG_LIMIT]
    )
    return [
        CourseToBook(
            course=course,
            sessions_done=course.sessions_done,
            last_session_ended=course.last_session_ended,
        )
        for course in courses
    ]

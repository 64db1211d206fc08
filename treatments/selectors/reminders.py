"""Reads of reminders for reception: the delivery log and the follow-up list.

Each is one query whatever the number of rows (what the page shows is joined
in). No clinical detail: kind, channel, times, status and why it failed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from patients.models import Patient
from treatments.models import (
    Booking,
    BookingStatus,
    CourseStatus,
    Reminder,
    ReminderKind,
    ReminderStatus,
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
    """Reception's follow-up list: failed reminders of the last FOLLOWUP_DAYS,
    and courses whose next session is not booked yet (course_next tasks that
    are due, while the course runs and nothing later is booked)."""
    now = now or timezone.now()
    later_booked = Booking.objects.filter(
        course=OuterRef("course"),
        status__in=(BookingStatus.BOOKED, BookingStatus.ARRIVED),
        starts_at__gt=now,
    )
    open_tasks = Q(
        kind=ReminderKind.COURSE_NEXT,
        status__in=(ReminderStatus.PLANNED, ReminderStatus.SENT),
        due_at__lte=now,
        course__status=CourseStatus.ACTIVE,
        has_later_booking=False,
    )
    failed = Q(status=ReminderStatus.FAILED, updated_at__gte=now - timedelta(days=FOLLOWUP_DAYS))
    return list(
        Reminder.objects.annotate(has_later_booking=Exists(later_booked))
        .filter(open_tasks | failed)
        .select_related("patient", "booking", "course", "recipient")
        .order_by("-due_at", "-id")[:LOG_LIMIT]
    )

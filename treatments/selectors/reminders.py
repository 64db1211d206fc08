"""Reads of reminders for reception: the delivery log and the follow-up list.

Each is one query whatever the number of rows (what the page shows is joined
in); the follow-up lists come a page at a time. No clinical detail: kind,
channel, times, status and why it failed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from clinic.names import person_name
from patients.models import Patient
from treatments.models import (
    Booking,
    BookingStatus,
    CourseStatus,
    Reminder,
    ReminderStatus,
)

LOG_LIMIT = 200
# Failed reminders stay on the follow-up list this long.
FOLLOWUP_DAYS = 30

Row = TypeVar("Row")


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


@dataclass(frozen=True)
class FollowupPage(Generic[Row]):
    """One page of a follow-up list: `rows` (at most FOLLOWUP_PAGE_SIZE),
    `number` (from 1, the page shown), `pages` (at least 1) and `total`, the
    rows the whole list holds."""

    rows: list[Row]
    number: int
    pages: int
    total: int

    @property
    def first_shown(self) -> int:
        return (self.number - 1) * FOLLOWUP_PAGE_SIZE + 1 if self.rows else 0

    @property
    def last_shown(self) -> int:
        return (self.number - 1) * FOLLOWUP_PAGE_SIZE + len(self.rows)


# What reception can act on at once (a morning's calls); the rest is a page
# away, and the page's time stays near the audit log's.
FOLLOWUP_PAGE_SIZE = 25
# A page number past this is read as this one (then the nearest page that
# exists): the offset stays small whatever number is asked for.
FOLLOWUP_MAX_PAGE = 1000


def _page(
    listing: str, params: dict[str, Any], page: int
) -> tuple[list[tuple[Any, ...]], int, int]:
    """Rows of `page` (clamped to 1..the last page), the page and the total,
    in one query whatever the page asked for.

    `listing` selects the whole list with two last columns: its count
    (`COUNT(*) OVER ()`) and each row's place in the list's order
    (`ROW_NUMBER() OVER (ORDER BY ...)`). The page is cut from it in the same
    statement, past the end as the last page."""
    number = min(max(page, 1), FOLLOWUP_MAX_PAGE)
    sql = (
        f"SELECT * FROM ({listing}) AS listed"  # noqa: S608 (the module's own SQL; values are parameters)
        " WHERE n > LEAST(%(offset)s, (total - 1) / %(size)s * %(size)s)"
        " ORDER BY n LIMIT %(size)s"
    )
    size = FOLLOWUP_PAGE_SIZE
    with connection.cursor() as cursor:
        cursor.execute(sql, {**params, "offset": (number - 1) * size, "size": size})
        rows = cursor.fetchall()
    if not rows:
        return [], 1, 0
    return rows, (rows[0][-1] - 1) // size + 1, rows[0][-2]


def _pages(total: int) -> int:
    return max(1, -(-total // FOLLOWUP_PAGE_SIZE))


# The follow-up lists are read in SQL: the ORM took longer to build the
# courses' query (its correlated subqueries) than PostgreSQL took to answer
# it, and the page is read all day. Each selects only what the page shows:
# the patient's uuid and names (no phone number parsed per row) and the
# row's own columns, with the whole list's count.
_FAILED_SQL = """
    SELECT p.uuid, p.first_name, p.last_name, r.kind, r.channel, r.lead_minutes,
        r.slot_starts_at, r.due_at, r.error,
        COUNT(*) OVER () AS total, ROW_NUMBER() OVER (ORDER BY r.due_at DESC, r.id DESC) AS n
    FROM treatments_reminder r
    JOIN patients_patient p ON p.id = r.patient_id
    WHERE r.status = %(failed)s AND r.updated_at >= %(since)s
"""


@dataclass(frozen=True, slots=True)
class FailedReminder:
    """A reminder that could not be sent, as the follow-up list shows it:
    whom it was for, what it was about (`kind`, a ReminderKind; for a session,
    `slot_starts_at`, and `lead_minutes` before it), how (`channel`, a
    ReminderChannel), when it was due (`due_at`, UTC) and why it failed."""

    patient_uuid: uuid.UUID
    patient_name: str
    kind: str
    channel: str
    lead_minutes: int
    slot_starts_at: datetime | None
    due_at: datetime
    error: str


def reminder_followups(
    *, now: datetime | None = None, page: int = 1
) -> FollowupPage[FailedReminder]:
    """Reception's list of reminders that could not be sent: the failed
    reminders of the last FOLLOWUP_DAYS days (`now` aware, default the
    current time), newest first, FOLLOWUP_PAGE_SIZE a page; `page` counts
    from 1 and one out of range shows the nearest page that exists. Read
    through the partial index reminder_failed_idx (treatments migration
    0014): the failed rows of the window, not every reminder ever planned.
    One query, whatever the page, reading only the columns the list shows."""
    now = now or timezone.now()
    rows, number, total = _page(
        _FAILED_SQL,
        {"failed": ReminderStatus.FAILED.value, "since": now - timedelta(days=FOLLOWUP_DAYS)},
        page,
    )
    return FollowupPage(
        rows=[
            FailedReminder(
                patient_uuid=patient,
                patient_name=person_name(first_name, last_name),
                kind=kind,
                channel=channel,
                lead_minutes=lead_minutes,
                slot_starts_at=slot_starts_at,
                due_at=due_at,
                error=error,
            )
            for (
                patient,
                first_name,
                last_name,
                kind,
                channel,
                lead_minutes,
                slot_starts_at,
                due_at,
                error,
                _total,
                _place,
            ) in rows
        ],
        number=number,
        pages=_pages(total),
        total=total,
    )


@dataclass(frozen=True, slots=True)
class CourseToBook:
    """A running course with no session ahead of it: the patient's, with
    `sessions_done` of its `planned_sessions` completed, the last one ending
    at `last_session_ended` (UTC; None: none completed yet, every booking
    cancelled or missed)."""

    patient_uuid: uuid.UUID
    patient_name: str
    planned_sessions: int
    sessions_done: int
    last_session_ended: datetime | None


# A booked or arrived session still counts as ahead of its course until
# the end of the day after it: the day's sessions are marked by then.
UNMARKED_GRACE = timedelta(days=1)

# Each running course's bookings are read once (a handful, through the
# bookings' course index): how many are completed, when the last of them
# ended, and whether one is booked or arrived ahead.
_COURSES_SQL = """
    SELECT p.uuid, p.first_name, p.last_name, c.planned_sessions, b.done, b.last_ended,
        COUNT(*) OVER () AS total,
        ROW_NUMBER() OVER (ORDER BY COALESCE(b.last_ended, c.created_at), c.id) AS n
    FROM treatments_treatmentcourse c
    JOIN patients_patient p ON p.id = c.patient_id
    CROSS JOIN LATERAL (
        SELECT COUNT(*) FILTER (WHERE status = %(completed)s) AS done,
            MAX(ends_at) FILTER (WHERE status = %(completed)s) AS last_ended,
            COUNT(*) FILTER (WHERE status = ANY(%(ahead)s) AND starts_at > %(since)s) AS ahead
        FROM treatments_booking
        WHERE course_id = c.id
    ) b
    WHERE c.status = %(running)s AND b.ahead = 0 AND b.done < c.planned_sessions
"""


def courses_to_book(*, now: datetime | None = None, page: int = 1) -> FollowupPage[CourseToBook]:
    """Reception's list of courses whose next session is not booked.

    Derived from the courses themselves whenever it is read, so any change
    (a session completed, the later ones cancelled, a no-show, a move) shows
    at once: a course is listed while it runs (status active), fewer sessions
    are completed than planned, and none of its bookings is booked or arrived
    for later than UNMARKED_GRACE before `now` (aware, default the current
    time): a session long past that nobody marked does not hide the course.
    Longest waiting first, FOLLOWUP_PAGE_SIZE a page; `page` counts from 1
    and one out of range shows the nearest page that exists.

    One query, whatever the page: the running courses through
    the partial index course_running_idx (treatments migration 0015), each
    checked on its own bookings, read once through the bookings' course
    index (the completed ones counted, the last one's end, any booked or
    arrived ahead), never every booking ahead in the calendar.
    """
    now = now or timezone.now()
    rows, number, total = _page(
        _COURSES_SQL,
        {
            "running": CourseStatus.ACTIVE.value,
            "completed": BookingStatus.COMPLETED.value,
            "ahead": [BookingStatus.BOOKED.value, BookingStatus.ARRIVED.value],
            "since": now - UNMARKED_GRACE,
        },
        page,
    )
    return FollowupPage(
        rows=[
            CourseToBook(
                patient_uuid=patient,
                patient_name=person_name(first_name, last_name),
                planned_sessions=planned,
                sessions_done=done,
                last_session_ended=last_ended,
            )
            for patient, first_name, last_name, planned, done, last_ended, _total, _place in rows
        ],
        number=number,
        pages=_pages(total),
        total=total,
    )

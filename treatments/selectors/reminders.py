"""Reads of reminders for reception: the delivery log and the follow-up list.

Each is one query whatever the number of rows (what the page shows is joined
in); the follow-up lists come a page at a time. No clinical detail: kind,
channel, times, status and why it failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from django.db.models import (
    Count,
    DateTimeField,
    Exists,
    F,
    IntegerField,
    Max,
    OuterRef,
    QuerySet,
    Subquery,
    Window,
)
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
# away. Rendering a row costs about 1 ms on a busy machine, so the page's time
# is mostly its rows: 25 a list keeps it near the audit log's pages.
FOLLOWUP_PAGE_SIZE = 25
# A page number past this is read as this one (then the nearest page that
# exists): the offset stays small whatever number is asked for.
FOLLOWUP_MAX_PAGE = 1000


def _page(queryset: QuerySet[Any], page: int) -> tuple[list[Any], int, int]:
    """Rows of `page` (clamped to 1..the last page), the page and the total,
    in one query (the total is a window count over the list) or, for a page
    past the end, three (the count, then the last page)."""
    number = min(max(page, 1), FOLLOWUP_MAX_PAGE)
    counted = queryset.annotate(list_total=Window(Count("*")))
    start = (number - 1) * FOLLOWUP_PAGE_SIZE
    rows = list(counted[start : start + FOLLOWUP_PAGE_SIZE])
    if rows:
        return rows, number, rows[0].list_total
    if number == 1:
        return [], 1, 0
    total = queryset.count()
    last = max(1, -(-total // FOLLOWUP_PAGE_SIZE))
    start = (last - 1) * FOLLOWUP_PAGE_SIZE
    return list(queryset[start : start + FOLLOWUP_PAGE_SIZE]), last, total


def _pages(total: int) -> int:
    return max(1, -(-total // FOLLOWUP_PAGE_SIZE))


# What the follow-up list shows (templates/treatments/reminder_table.html and
# reminder_followups.html): the rest of a row, and of the patient's record
# (phone numbers parsed, addresses), is left unread.
_PATIENT_SHOWN = ("patient__uuid", "patient__first_name", "patient__last_name")
_FAILED_SHOWN = (
    "kind",
    "channel",
    "status",
    "lead_minutes",
    "slot_starts_at",
    "intended_at",
    "due_at",
    "sent_at",
    "attempts",
    "error",
)


def reminder_followups(*, now: datetime | None = None, page: int = 1) -> FollowupPage[Reminder]:
    """Reception's list of reminders that could not be sent: the failed
    reminders of the last FOLLOWUP_DAYS days (`now` aware, default the
    current time), newest first, FOLLOWUP_PAGE_SIZE a page; `page` counts
    from 1 and one out of range shows the nearest page that exists. Read
    through the partial index reminder_failed_idx (treatments migration
    0014): the failed rows of the window, not every reminder ever planned.
    One query (three for a page past the end)."""
    now = now or timezone.now()
    queryset = (
        Reminder.objects.filter(
            status=ReminderStatus.FAILED, updated_at__gte=now - timedelta(days=FOLLOWUP_DAYS)
        )
        .select_related("patient")
        .only(*_FAILED_SHOWN, *_PATIENT_SHOWN)
        .order_by("-due_at", "-id")
    )
    rows, number, total = _page(queryset, page)
    return FollowupPage(rows=rows, number=number, pages=_pages(total), total=total)


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

    One query (three for a page past the end): the running courses through
    the partial index course_running_idx (treatments migration 0015), each
    checked on its own bookings through an index on the bookings' course (a
    NOT EXISTS for the session ahead, the completed ones counted), never
    every booking ahead in the calendar.
    """
    now = now or timezone.now()
    ahead = Booking.objects.filter(
        course=OuterRef("pk"),
        status__in=(BookingStatus.BOOKED, BookingStatus.ARRIVED),
        starts_at__gt=now - UNMARKED_GRACE,
    )
    completed = Booking.objects.filter(
        course=OuterRef("pk"), status=BookingStatus.COMPLETED
    ).order_by()
    done = Subquery(
        completed.values("course").annotate(n=Count("pk")).values("n"),
        output_field=IntegerField(),
    )
    last_ended = Subquery(
        completed.values("course").annotate(at=Max("ends_at")).values("at"),
        output_field=DateTimeField(),
    )
    queryset = (
        TreatmentCourse.objects.filter(status=CourseStatus.ACTIVE)
        .filter(~Exists(ahead))
        .annotate(sessions_done=Coalesce(done, 0), last_session_ended=last_ended)
        .filter(sessions_done__lt=F("planned_sessions"))
        .select_related("patient")
        .only("planned_sessions", "created_at", *_PATIENT_SHOWN)
        .order_by(Coalesce("last_session_ended", "created_at"), "id")
    )
    rows, number, total = _page(queryset, page)
    return FollowupPage(
        rows=[
            CourseToBook(
                course=course,
                sessions_done=course.sessions_done,
                last_session_ended=course.last_session_ended,
            )
            for course in rows
        ],
        number=number,
        pages=_pages(total),
        total=total,
    )

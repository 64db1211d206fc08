"""Reads for bookings: the one access helper, working hours, closures and the
next free slot."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone

from clinic.concurrency import rows_version
from clinic.localtime import (
    LocalTimeError,
    local_day_bounds,
    local_instant,
    local_to_utc,
    to_local,
)
from clinic.models import User
from clinic.roles import Role
from patients.models import Patient
from patients.selectors import patients_visible_to
from treatments.models import (
    HOLDING_STATUSES,
    Booking,
    BookingStatus,
    ClinicClosure,
    Room,
    TreatmentCourse,
    WorkingHours,
)

SLOT_STEP = timedelta(minutes=15)
SEARCH_HORIZON_DAYS = 60
# A booking fits within a working day, so one never starts more than a day
# before a moment it covers (used to bound range queries by the start index).
MAX_BOOKING_LENGTH = timedelta(days=1)

# (practitioner id, weekday) -> the day's working intervals, local wall-clock.
HoursMap = dict[tuple[int, int], list[tuple[time, time]]]


def bookings_visible_to(user: User) -> QuerySet[Booking]:
    """The bookings of the patients `user` may see (every role sees the
    calendar; what a booking shows depends on the role, not this query)."""
    return Booking.objects.filter(patient__in=patients_visible_to(user))


def booking_get_for_user(*, user: User, booking_uuid: uuid.UUID) -> Booking:
    """The booking, if this user may see its patient; 404 otherwise."""
    try:
        return (
            bookings_visible_to(user)
            .select_related("patient", "practitioner", "room", "protocol", "course")
            .get(uuid=booking_uuid)
        )
    except Booking.DoesNotExist:
        raise Http404 from None


def course_get_for_patient(*, patient: Patient, course_uuid: uuid.UUID) -> TreatmentCourse:
    """One of this patient's courses; another patient's course id gives 404."""
    try:
        return patient.courses.select_related("protocol").get(uuid=course_uuid)
    except TreatmentCourse.DoesNotExist:
        raise Http404 from None


def practitioners() -> QuerySet[User]:
    """Active staff with the practitioner role, by first name: whom a session
    can be booked with."""
    return (
        User.objects.filter(is_active=True, groups__name=Role.PRACTITIONER.value)
        .distinct()
        .order_by("first_name", "last_name", "username")
    )


def rooms_in_use() -> QuerySet[Room]:
    """The treatment rooms sessions can be booked in (active ones), by name."""
    return Room.objects.filter(active=True).order_by("name")


def working_hours_map(practitioner_ids: Iterable[int]) -> HoursMap:
    """Working hours of the given practitioners, keyed by (practitioner id,
    weekday 0=Monday): lists of (start, end) clinic-local times, earliest
    first. One query."""
    hours: HoursMap = defaultdict(list)
    for row in WorkingHours.objects.filter(practitioner_id__in=list(practitioner_ids)).order_by(
        "weekday", "starts"
    ):
        hours[(row.practitioner_id, row.weekday)].append((row.starts, row.ends))
    return hours


def working_hours_days(practitioner: User) -> list[list[tuple[time, time]]]:
    """A practitioner's working intervals per weekday (0 is Monday), local time."""
    hours = working_hours_map([practitioner.pk])
    return [hours.get((practitioner.pk, weekday), []) for weekday in range(7)]


def working_hours_version(practitioner: User) -> str:
    """The version of a practitioner's working hours, sent with the hours
    page's forms: their week has no row of its own, so the version is a hash
    of each day's intervals (`clinic.concurrency.rows_version`), and a
    mismatch tells which days changed."""
    return rows_version(working_hours_days(practitioner))


def closures_between(first: date, last: date) -> dict[date, str]:
    """Closed local days between `first` and `last` (inclusive), with the reason."""
    days: dict[date, str] = {}
    for closure in ClinicClosure.objects.filter(starts_on__lte=last, ends_on__gte=first):
        day = max(closure.starts_on, first)
        while day <= min(closure.ends_on, last):
            days[day] = closure.reason
            day += timedelta(days=1)
    return days


# Bookings listed when days to close hold some (the rest are counted).
CLOSURE_BOOKINGS_SHOWN = 20


def bookings_on_days(
    first: date, last: date, *, already_closed: tuple[date, date] | None = None
) -> tuple[list[Booking], int]:
    """The active bookings (booked or arrived) on the clinic days `first` to
    `last` (both included), in time order, at most CLOSURE_BOOKINGS_SHOWN of
    them, and how many there are in all: what a closure of those days must
    wait for. Days in `already_closed` (a closure's days before an edit, both
    included) are left out, as the closure's service leaves them (bookings
    there were checked when they were closed)."""
    start, _end = local_day_bounds(first)
    _start, end = local_day_bounds(last)
    found = Booking.objects.filter(
        status__in=(BookingStatus.BOOKED, BookingStatus.ARRIVED),
        starts_at__lt=end,
        ends_at__gt=start,
    )
    if already_closed is not None:
        old_start, _e = local_day_bounds(already_closed[0])
        _s, old_end = local_day_bounds(already_closed[1])
        found = found.exclude(starts_at__gte=old_start, ends_at__lte=old_end)
    shown = list(
        found.select_related("patient", "practitioner", "room").order_by("starts_at", "id")[
            : CLOSURE_BOOKINGS_SHOWN + 1
        ]
    )
    total = found.count() if len(shown) > CLOSURE_BOOKINGS_SHOWN else len(shown)
    return shown[:CLOSURE_BOOKINGS_SHOWN], total


def within_hours(
    hours: HoursMap, practitioner_id: int, starts_at: datetime, ends_at: datetime
) -> bool:
    """Does the booking lie inside one of the practitioner's working intervals
    of its local day?"""
    start = to_local(starts_at)
    end = to_local(ends_at)
    if end.date() != start.date():
        return False
    for opens, closes in hours.get((practitioner_id, start.weekday()), []):
        if opens <= start.time() and end.time() <= closes:
            return True
    return False


@dataclass(frozen=True)
class Busy:
    starts_at: datetime
    ends_at: datetime


def busy_all(
    *,
    practitioner: User,
    room: Room,
    patient: Patient | None,
    start: datetime,
    end: datetime,
    exclude: int | None = None,
) -> list[Busy]:
    """Every holding booking of the practitioner, the room or the patient in
    [start, end), in one query."""
    condition = Q(practitioner_id=practitioner.pk) | Q(room_id=room.pk)
    if patient is not None:
        condition |= Q(patient_id=patient.pk)
    rows = Booking.objects.filter(
        condition,
        status__in=HOLDING_STATUSES,
        starts_at__gte=start - MAX_BOOKING_LENGTH,
        starts_at__lt=end,
        ends_at__gt=start,
    )
    if exclude is not None:
        rows = rows.exclude(pk=exclude)
    return sorted(
        (Busy(s, e) for s, e in rows.values_list("starts_at", "ends_at")),
        key=lambda b: b.starts_at,
    )


def free_starts_on_day(
    *,
    day: date,
    practitioner: User,
    duration: timedelta,
    hours: HoursMap,
    busy: list[Busy],
    not_before: datetime,
) -> list[datetime]:
    """Free local starts on `day`, on the 15-minute grid, in order (UTC instants)."""
    starts: list[datetime] = []
    for opens, closes in hours.get((practitioner.pk, day.weekday()), []):
        minutes = opens.hour * 60 + opens.minute
        minutes += (-minutes) % 15
        while True:
            at = time(minutes // 60, minutes % 60) if minutes < 24 * 60 else None
            if at is None or at >= closes:
                break
            minutes += 15
            try:
                begin = local_to_utc(day, at, fold=0)
            except LocalTimeError:
                continue
            finish = begin + duration
            if begin < not_before or not within_hours(hours, practitioner.pk, begin, finish):
                continue
            if any(b.starts_at < finish and b.ends_at > begin for b in busy):
                continue
            starts.append(begin)
    return starts


def next_free_slot(
    *,
    practitioner: User,
    room: Room,
    duration: timedelta,
    patient: Patient | None = None,
    after: datetime | None = None,
    horizon_days: int = SEARCH_HORIZON_DAYS,
) -> datetime | None:
    """The earliest start from `after` (default now) within the practitioner's
    working hours, not on a closure, free for practitioner, room (and patient).
    Three queries whatever the horizon: hours, closures, bookings."""
    after = after or timezone.now()
    first_day = to_local(after).date()
    last_day = first_day + timedelta(days=horizon_days)
    hours = working_hours_map([practitioner.pk])
    closed = closures_between(first_day, last_day)
    window_start = after - timedelta(days=1)
    window_end = local_instant(last_day + timedelta(days=2), time(0))
    busy = busy_all(
        practitioner=practitioner, room=room, patient=patient, start=window_start, end=window_end
    )
    day = first_day
    while day <= last_day:
        if day not in closed:
            starts = free_starts_on_day(
                day=day,
                practitioner=practitioner,
                duration=duration,
                hours=hours,
                busy=busy,
                not_before=after,
            )
            if starts:
                return starts[0]
        day += timedelta(days=1)
    return None


@dataclass(frozen=True)
class CourseProgress:
    planned: int
    booked: int
    done: int
    next: Booking | None
    bookings: list[Booking]


def course_progress(course: TreatmentCourse) -> CourseProgress:
    """Planned, booked and done counts and the next session, from the course's bookings."""
    bookings = list(
        course.bookings.select_related("practitioner", "room").order_by("starts_at", "id")
    )
    now = timezone.now()
    holding = [b for b in bookings if b.status in (BookingStatus.BOOKED, BookingStatus.ARRIVED)]
    return CourseProgress(
        planned=course.planned_sessions,
        booked=len(holding),
        done=sum(1 for b in bookings if b.status == BookingStatus.COMPLETED),
        next=next((b for b in holding if b.ends_at >= now), None),
        bookings=bookings,
    )

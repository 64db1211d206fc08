"""State changes of bookings: create, move, cancel, mark arrived or not come.

PostgreSQL holds the rule that matters most (no overlapping bookings for a
practitioner, room or patient, by exclusion constraints); these services turn
its refusal into the sentence reception reads, and check what the database
cannot: working hours, closures, times in the past.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dates import WEEKDAYS
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from clinic import dates
from clinic.audit import audit_log
from clinic.concurrency import (
    OtherEdit,
    StaleChange,
    StaleEditError,
    audit_last_edit,
    bad_version_error,
    stale_message,
    submission_check,
    submission_marks,
    version_bump,
    version_check,
    version_mark,
)
from clinic.localtime import local_day_bounds, to_local
from clinic.models import AuditAction, AuditEvent, User
from clinic.refusals import RefusalKind, RefusedError
from patients.locking import patient_hold, patient_row_lock
from patients.models import Patient
from treatments.models import (
    HOLDING_STATUSES,
    Booking,
    BookingEvent,
    BookingEventKind,
    BookingStatus,
    ClinicClosure,
    IllegalTransitionError,
    Protocol,
    Room,
    TreatmentCourse,
    WorkingHours,
)
from treatments.selectors.booking import (
    closures_between,
    within_hours,
    working_hours_days,
    working_hours_map,
    working_hours_version,
)
from treatments.services.reminders import (
    reminders_cancel_for_booking,
    reminders_plan_for_booking,
)

# Naming what holds the time (`_clashes`).
SLOT_TAKEN_BY = gettext_lazy("This slot was just taken: %(clashes)s. Choose another time.")
# Nothing holds it any more (taken, then moved or cancelled in between): what
# the refused constraint protected, at the time asked for (`_held`).
SLOT_TAKEN_FREED = gettext_lazy(
    "This slot was taken a moment ago and freed again: %(what)s was booked then from "
    "%(start)s to %(end)s on %(day)s. Try again, or choose another time."
)
# Clashing bookings named in the refusal; a booking clashes with a few at most.
CLASHES_NAMED = 3

# The exclusion constraints, by what they protect.
CONSTRAINT_SUBJECTS = {
    "booking_no_overlap_practitioner": "practitioner",
    "booking_no_overlap_room": "room",
    "booking_no_overlap_patient": "patient",
}


class BookingRefusedError(RefusedError):
    """A booking (or a change to one) refused with a sentence for reception."""

    code = "booking_refused"


class SlotTakenError(BookingRefusedError):
    """Another booking already holds the practitioner, the room or the patient then."""

    code = "slot_taken"
    kind = RefusalKind.CONFLICT

    def __init__(self, booking: Booking, subject: str = "") -> None:
        """The refusal for `booking` (its practitioner, room, patient and
        time as asked) clashing under the constraint of `subject`
        ("practitioner", "room", "patient"; "" when not known): it names
        the bookings that hold the time (`_clashes`), or, when none does any
        more, what was held then (`_held`). Never a bare "taken"."""
        clashes = _clashes(booking)
        super().__init__(
            SLOT_TAKEN_BY % {"clashes": clashes} if clashes else _held(booking, subject)
        )
        self.subject = subject


class BookingStateError(BookingRefusedError):
    """The booking's status does not allow this change."""

    code = "booking_state"
    kind = RefusalKind.CONFLICT


# A closure lasts at most a year (a leap year's 366 days), and starts at most
# a year back (one already running is recorded late, or edited).
CLOSURE_MAX_DAYS = 366
CLOSURE_PAST_DAYS = 365


def booking_horizon(*, today: date) -> date:
    """The last day (clinic calendar) that can be booked on `today`:
    BOOKING_HORIZON_DAYS after it (settings; two years by default)."""
    return today + timedelta(days=settings.BOOKING_HORIZON_DAYS)


def booking_day_problem(day: date, *, today: date) -> tuple[str, str] | None:
    """Why a session cannot be booked on `day` (clinic calendar) on `today`:
    (form field, sentence), or None when it can. Before today: the time has
    passed; after `booking_horizon`: too far ahead. Forms ask it before they
    compute times from a date, so an absurd date is a plain refusal too."""
    if day < today:
        return "start_time", str(_("This time has already passed. Choose a time from now on."))
    last = booking_horizon(today=today)
    if day > last:
        return "date", str(
            _(
                "Bookings can be made up to %(days)s days ahead, until %(last)s. "
                "Choose an earlier date."
            )
            % {"days": settings.BOOKING_HORIZON_DAYS, "last": dates.day(last)}
        )
    return None


def closure_dates_problem(starts_on: date, ends_on: date, *, today: date) -> tuple[str, str] | None:
    """Why a clinic closure cannot run from `starts_on` to `ends_on` (both
    included, clinic calendar) when set on `today`: (form field, sentence),
    or None when it can. It may start at most CLOSURE_PAST_DAYS back, end at
    most on `booking_horizon` (nothing can be booked later anyway) and last at
    most CLOSURE_MAX_DAYS days; its last day is not before its first."""
    if ends_on < starts_on:
        return "ends_on", str(_("The last day must not be before the first."))
    earliest = today - timedelta(days=CLOSURE_PAST_DAYS)
    if starts_on < earliest:
        return "starts_on", str(
            _("A closure can start at most a year back, on %(day)s at the earliest.")
            % {"day": dates.day(earliest)}
        )
    last = booking_horizon(today=today)
    if ends_on > last:
        return "ends_on", str(
            _(
                "A closure must end by %(last)s: bookings can only be made up to "
                "%(days)s days ahead."
            )
            % {"last": dates.day(last), "days": settings.BOOKING_HORIZON_DAYS}
        )
    if (ends_on - starts_on).days + 1 > CLOSURE_MAX_DAYS:
        return "ends_on", str(
            _("A closure lasts at most a year (%(days)s days). Add another one after it.")
            % {"days": CLOSURE_MAX_DAYS}
        )
    return None


def check_slot(*, practitioner: User, starts_at: datetime, ends_at: datetime) -> None:
    """Refuse a time that ends before it starts, is past, lies beyond the
    booking horizon (`booking_day_problem`), falls on a closure or outside the
    practitioner's working hours (in that order)."""
    if ends_at <= starts_at:
        raise BookingRefusedError(_("The end must be after the start."), field="duration")
    if starts_at < timezone.now():
        raise BookingRefusedError(
            _("This time has already passed. Choose a time from now on."), field="start_time"
        )
    day = to_local(starts_at).date()
    problem = booking_day_problem(day, today=timezone.localdate())
    if problem is not None:
        field, message = problem
        raise BookingRefusedError(message, field=field)
    closed = closures_between(day, to_local(ends_at).date())
    if closed:
        raise BookingRefusedError(
            _("The clinic is closed on %(day)s (%(reason)s).")
            % {"day": dates.day(day), "reason": next(iter(closed.values()))},
            field="date",
        )
    hours = working_hours_map([practitioner.pk])
    if not within_hours(hours, practitioner.pk, starts_at, ends_at):
        raise BookingRefusedError(
            _("%(name)s does not work at that time. Choose a time within their working hours.")
            % {"name": practitioner.get_full_name() or practitioner.get_username()},
            field="start_time",
        )


# Advisory lock namespaces, always taken in this order.
LOCK_PRACTITIONER, LOCK_ROOM, LOCK_PATIENT = 7101, 7102, 7103
# A practitioner's week of working hours (it has no row of its own to lock).
LOCK_HOURS = 7104


def _lock_slot_holders(booking: Booking) -> None:
    """Queue writers for the same practitioner, room or patient behind each
    other until commit. The exclusion constraints alone are enough to refuse
    an overlap, but two inserts checking each other's rows under three
    constraints can deadlock; taking these locks in one fixed order first
    makes conflicting writers wait their turn instead."""
    keys = [
        (LOCK_PRACTITIONER, booking.practitioner_id),
        (LOCK_ROOM, booking.room_id),
        (LOCK_PATIENT, booking.patient_id),
    ]
    with connection.cursor() as cursor:
        for namespace, key in keys:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [namespace, key])


def _person(user: User) -> str:
    return user.get_full_name() or user.get_username()


def _clashes(booking: Booking) -> str:
    """What holds `booking`'s time, for reception: the practitioner, the room,
    or the patient's own other booking, each with its time ("Omar Haddad and
    Room 1 are booked from 10:00 to 10:45 on Tue 24 Nov"). Empty when
    nothing does any more (taken and freed again in between). One query;
    only words, the rule stays the database's (the exclusion constraints)."""
    found = Booking.objects.filter(
        Q(practitioner_id=booking.practitioner_id)
        | Q(room_id=booking.room_id)
        | Q(patient_id=booking.patient_id),
        status__in=HOLDING_STATUSES,
        starts_at__lt=booking.ends_at,
        ends_at__gt=booking.starts_at,
    )
    if booking.pk is not None:
        found = found.exclude(pk=booking.pk)
    this_year = timezone.localdate().year
    clauses = []
    for other in found.select_related("practitioner", "room", "patient").order_by(
        "starts_at", "id"
    )[:CLASHES_NAMED]:
        starts, ends = to_local(other.starts_at), to_local(other.ends_at)
        when = _("from %(start)s to %(end)s on %(day)s") % {
            "start": dates.clock(starts),
            "end": dates.clock(ends),
            "day": dates.day(starts, current=this_year),
        }
        if other.patient_id == booking.patient_id:
            clauses.append(
                _("%(patient)s already has a session %(when)s, with %(practitioner)s in %(room)s")
                % {
                    "patient": other.patient.full_name,
                    "when": when,
                    "practitioner": _person(other.practitioner),
                    "room": other.room.name,
                }
            )
            continue
        same_practitioner = other.practitioner_id == booking.practitioner_id
        same_room = other.room_id == booking.room_id
        if same_practitioner and same_room:
            clause = _("%(practitioner)s and %(room)s are booked %(when)s")
        elif same_practitioner:
            clause = _("%(practitioner)s is booked %(when)s")
        else:
            clause = _("%(room)s is in use %(when)s")
        clauses.append(
            clause
            % {"practitioner": _person(other.practitioner), "room": other.room.name, "when": when}
        )
    return "; ".join(clauses)


def _held(booking: Booking, subject: str) -> str:
    """The refusal when nothing holds `booking`'s time any more (taken, then
    moved or cancelled in between): the practitioner, the room or the
    patient the constraint of `subject` protects (all three when not known)
    and the time asked for (SLOT_TAKEN_FREED)."""
    starts, ends = to_local(booking.starts_at), to_local(booking.ends_at)
    names = {
        "practitioner": _person(booking.practitioner),
        "room": booking.room.name,
        "patient": booking.patient.full_name,
    }
    what = names.get(subject) or _("%(practitioner)s, %(room)s or %(patient)s") % names
    return SLOT_TAKEN_FREED % {
        "what": what,
        "start": dates.clock(starts),
        "end": dates.clock(ends),
        "day": dates.day(starts, current=timezone.localdate().year),
    }


def _save_holding_slot(booking: Booking, **save_kwargs: object) -> None:
    """Save, turning an overlap refused by PostgreSQL into SlotTakenError,
    which names what holds the time (`_clashes`)."""
    if booking.status in HOLDING_STATUSES:
        _lock_slot_holders(booking)
    try:
        booking.full_clean()
    except ValidationError as error:
        codes = {e.code for e in error.error_dict.get(NON_FIELD_ERRORS, [])}
        if "slot_taken" in codes:
            raise SlotTakenError(booking) from error
        raise
    try:
        with transaction.atomic():
            booking.save(**save_kwargs)  # type: ignore[arg-type]
    except IntegrityError as error:
        diag = getattr(error.__cause__, "diag", None)
        name = getattr(diag, "constraint_name", "") or ""
        if name.startswith("booking_no_overlap_"):
            raise SlotTakenError(booking, CONSTRAINT_SUBJECTS.get(name, "")) from error
        raise


@transaction.atomic
def booking_create(
    *,
    patient: Patient,
    practitioner: User,
    room: Room,
    protocol: Protocol,
    starts_at: datetime,
    ends_at: datetime,
    created_by: User,
    course: TreatmentCourse | None = None,
    submission_token: uuid.UUID | None = None,
) -> Booking:
    """Book a session: `patient` with `practitioner` in `room` for `protocol`,
    from `starts_at` to `ends_at` (aware; stored in UTC), as part of `course`
    if given; its reminders are planned in the same transaction.

    `submission_token` is the booking form's one-time token, stored on the
    booking (None: no form, no guard).

    Raises `AlreadySubmittedError` (clinic.concurrency, with `.obj`) when a
    booking was already made with this token: the same form sent twice, even
    at the same instant, books once. Raises `BookingRefusedError` (with the
    form field) for a time `check_slot` refuses, and `SlotTakenError` when
    another booking holds the practitioner, the room or the patient then
    (PostgreSQL's exclusion constraints). Nothing is written when it raises.
    A record being merged into another at this moment is booked once the
    merge is done, on the record that stays (patients.locking). An
    anonymised record is refused (`BookingRefusedError`, field "patient").
    """
    # First the token: a second post of the same form waits here for the first.
    submission_check(Booking, submission_token)
    patient = patient_hold(patient)
    if patient.is_anonymised:
        # No one to treat: who the person was, and how to reach them, are gone.
        raise BookingRefusedError(
            _(
                "This record was anonymised when its retention period ended: it names no one "
                "and cannot be booked. Register the person again if they come back."
            ),
            field="patient",
        )
    check_slot(practitioner=practitioner, starts_at=starts_at, ends_at=ends_at)
    booking = Booking(
        patient=patient,
        practitioner=practitioner,
        room=room,
        protocol=protocol,
        course=course,
        starts_at=starts_at,
        ends_at=ends_at,
        created_by=created_by,
        submission_token=submission_token,
    )
    _save_holding_slot(booking)
    BookingEvent.objects.create(booking=booking, kind=BookingEventKind.CREATED, by=created_by)
    reminders_plan_for_booking(booking=booking)
    audit_log(
        actor=created_by,
        action=AuditAction.CREATE,
        obj=booking,
        patient_ref=patient.uuid,
        changed_fields=["patient", "practitioner", "room", "protocol", "starts_at", "ends_at"],
    )
    return booking


def _locked(booking: Booking) -> Booking:
    """The booking locked for a change, as it now is: its patient held first,
    then the row alone, then read with what it points at (patients.locking).
    A merge of the patient's record at this moment finishes first, or waits;
    the booking is then changed on the record that stays."""
    patient_row_lock(Booking, booking.pk, patient_id=booking.patient_id)
    return Booking.objects.select_related("patient", "practitioner", "room").get(pk=booking.pk)


@transaction.atomic
def booking_move(
    *,
    booking: Booking,
    starts_at: datetime,
    ends_at: datetime,
    practitioner: User,
    room: Room,
    moved_by: User,
    expected_version: int | None,
) -> Booking:
    """Move a booked session to `starts_at`-`ends_at` (aware; stored in UTC),
    with `practitioner` in `room`; its reminders follow it.

    `expected_version` is the version of the booking the move form (or the
    calendar card dragged) was opened with; None only when not from a page.
    The booking row is locked first. Raises `StaleEditError`
    (clinic.concurrency) when the booking changed since that version (moved,
    cancelled, marked: "stale_edit", with its time, practitioner, room or
    status now, who and when) or the version is not one it had
    ("bad_version"); `BookingStateError` when it is no longer booked;
    `BookingRefusedError` when nothing changes or `check_slot` refuses the
    time; `SlotTakenError` when another booking holds the time. Nothing is
    written when it raises.
    """
    current = _locked(booking)
    version_check(current, expected=expected_version)
    if current.status != BookingStatus.BOOKED:
        raise BookingStateError(
            _("Only a booking that is “%(status)s” can be moved.")
            % {"status": BookingStatus.BOOKED.label}
        )
    changed = [
        name
        for name, value in (
            ("starts_at", starts_at),
            ("ends_at", ends_at),
            ("practitioner", practitioner),
            ("room", room),
        )
        if getattr(current, name) != value
    ]
    if not changed:
        raise BookingRefusedError(_("Nothing changed: choose a new time, practitioner or room."))
    check_slot(practitioner=practitioner, starts_at=starts_at, ends_at=ends_at)
    previous_starts_at = current.starts_at
    previous_practitioner = current.practitioner
    previous_room = current.room
    current.starts_at = starts_at
    current.ends_at = ends_at
    current.practitioner = practitioner
    current.room = room
    mark = version_bump(current)
    _save_holding_slot(current)
    BookingEvent.objects.create(
        booking=current,
        kind=BookingEventKind.MOVED,
        by=moved_by,
        previous_starts_at=previous_starts_at,
        previous_practitioner=previous_practitioner,
        previous_room=previous_room,
    )
    # Reminders follow the booking: those for the old time are cancelled.
    reminders_plan_for_booking(booking=current)
    audit_log(
        actor=moved_by,
        action=AuditAction.UPDATE,
        obj=current,
        patient_ref=current.patient.uuid,
        changed_fields=[*changed, mark],
    )
    return current


@transaction.atomic
def booking_cancel(
    *,
    booking: Booking,
    reason: str,
    cancelled_by: User,
    expected_version: int | None = None,
) -> Booking:
    """Cancel a booked or arrived session, saying why (`reason`, trimmed, up to
    300 characters kept); its pending reminders are cancelled and its version
    raised, so a move opened before is refused.

    `expected_version` is the version of the booking the page showed (None:
    not from a page). Raises `StaleEditError` (clinic.concurrency) when the
    booking changed since (moved, marked: "stale_edit", with its time,
    practitioner, room or status now, who and when), so a cancellation
    meant for the time the page showed never cancels another; "bad_version"
    for a version it never had. Raises `BookingRefusedError` ("reason")
    without a reason, and `BookingStateError` when the booking's status
    cannot become cancelled. Nothing is written when it raises."""
    reason = reason.strip()
    if not reason:
        raise BookingRefusedError(_("Say why the booking is cancelled."), field="reason")
    current = _locked(booking)
    version_check(current, expected=expected_version)
    try:
        current.transition_to(BookingStatus.CANCELLED)
    except IllegalTransitionError as error:
        raise BookingStateError(str(error)) from error
    current.cancel_reason = reason[:300]
    mark = version_bump(current)
    current.full_clean()
    current.save(update_fields=["status", "cancel_reason", "updated_at", "version"])
    BookingEvent.objects.create(
        booking=current, kind=BookingEventKind.CANCELLED, by=cancelled_by, detail=reason[:300]
    )
    reminders_cancel_for_booking(booking=current)
    audit_log(
        actor=cancelled_by,
        action=AuditAction.UPDATE,
        obj=current,
        patient_ref=current.patient.uuid,
        changed_fields=["status", "cancel_reason", mark],
    )
    return current


MARK_EVENTS: dict[str, str] = {
    BookingStatus.ARRIVED: BookingEventKind.ARRIVED,
    BookingStatus.NO_SHOW: BookingEventKind.NO_SHOW,
    BookingStatus.BOOKED: BookingEventKind.REOPENED,
}


@transaction.atomic
def booking_mark(
    *,
    booking: Booking,
    status: str,
    marked_by: User,
    expected_version: int | None = None,
) -> Booking:
    """Arrived, did not come, or back to booked (an arrival marked by mistake).

    `status` is "arrived", "no_show" or "booked". The booking's version is
    raised, so a move opened before is refused. `expected_version` is the
    version of the booking the page showed (None: not from a page). Raises
    `StaleEditError` (clinic.concurrency) when the booking changed since
    ("stale_edit": moved, cancelled or marked, who and when; "bad_version"
    for a version it never had); `BookingStateError` for another status, a
    move the transition table refuses, or "did not come" before the booked
    start. Nothing is written when it raises."""
    if status not in MARK_EVENTS:
        raise BookingStateError(_("Choose arrived or did not come."))
    current = _locked(booking)
    version_check(current, expected=expected_version)
    try:
        current.transition_to(status)
    except IllegalTransitionError as error:
        raise BookingStateError(str(error)) from error
    if status == BookingStatus.NO_SHOW and current.starts_at > timezone.now():
        raise BookingStateError(_("A booking cannot be marked as not come before its start time."))
    mark = version_bump(current)
    _save_holding_slot(current, update_fields=["status", "updated_at", "version"])
    BookingEvent.objects.create(booking=current, kind=MARK_EVENTS[status], by=marked_by)
    # Not come cancels the reminders still planned; back to booked plans them again.
    if status != BookingStatus.ARRIVED:
        reminders_plan_for_booking(booking=current)
    audit_log(
        actor=marked_by,
        action=AuditAction.UPDATE,
        obj=current,
        patient_ref=current.patient.uuid,
        changed_fields=["status", mark],
    )
    return current


# --- Rooms, working hours, closures (managers) --------------------------------------------


@transaction.atomic
def room_save(
    *,
    room: Room | None,
    saved_by: User,
    name: str | None = None,
    active: bool | None = None,
    expected_version: int | None = None,
    submission_token: uuid.UUID | None = None,
) -> Room:
    """Add a room (`room` None) or change one: its name (trimmed, unique) and
    whether it is in use. Changing, None leaves a value as it is (the form
    sends only what the person changed); adding, the name is required and
    None for `active` means in use.

    `expected_version` is the version the room's edit form was opened with
    (None when adding, or not from a form); `submission_token` the add
    form's one-time token. Raises `AlreadySubmittedError` (clinic.concurrency,
    with `.obj`) when the add form was already saved (sent twice);
    `StaleEditError` when someone saved the room since that version
    ("stale_edit": its name or use now, who and when) or the version is not
    one it had ("bad_version"); `ValidationError` for an empty or used name.
    Nothing is written when it raises."""
    creating = room is None
    if creating:
        submission_check(Room, submission_token, by=saved_by)
    current = Room() if room is None else Room.objects.select_for_update().get(pk=room.pk)
    if not creating:
        version_check(current, expected=expected_version)
    if creating and active is None:
        active = True
    values: dict[str, Any] = {
        "name": (name or "").strip() if creating or name is not None else None
    }
    values["active"] = active
    changed = [
        field
        for field, value in values.items()
        if value is not None and (creating or getattr(current, field) != value)
    ]
    if not changed:
        return current
    for field in changed:
        setattr(current, field, values[field])
    mark = version_mark(current.version) if creating else version_bump(current)
    current.full_clean()
    current.save()
    audit_log(
        actor=saved_by,
        action=AuditAction.CREATE if creating else AuditAction.UPDATE,
        obj=current,
        changed_fields=[*changed, mark, *(submission_marks(submission_token) if creating else [])],
    )
    return current


def _hours_check(practitioner: User, weekday: int, expected_version: str | None) -> None:
    """Lock a practitioner's week of working hours until the transaction ends,
    and refuse a change of `weekday` made from a page showing that day's
    hours as they no longer are. The version holds one part per day: a
    change to another day since the page was opened does not matter."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_HOURS, practitioner.pk])
    if expected_version is None:
        return
    days = working_hours_days(practitioner)
    current = working_hours_version(practitioner)
    wanted, now = expected_version.split("."), current.split(".")
    if len(wanted) != len(now) or any(len(part) != len(now[0]) for part in wanted):
        raise bad_version_error()
    if wanted[weekday] == now[weekday]:
        return
    last = audit_last_edit(
        object_type=WorkingHours._meta.label_lower, object_id=str(practitioner.pk)
    ) or OtherEdit(by=_("someone"), at=None)
    changes = [
        StaleChange(
            field=f"weekday_{weekday}",
            label=str(WEEKDAYS[weekday]),
            value=", ".join(
                f"{dates.clock(s)}\N{EN DASH}{dates.clock(e)}" for s, e in days[weekday]
            )
            or _("no hours"),
            by=last.by,
            at=last.at,
        )
        for weekday in range(7)
        if wanted[weekday] != now[weekday]
    ]
    edits = [OtherEdit(by=last.by, at=last.at, labels=[c.label for c in changes])]
    raise StaleEditError(
        stale_message(edits, what=_("week of working hours")),
        changes=changes,
        edits=edits,
        version=current,
    )


@transaction.atomic
def working_hours_add(
    *,
    practitioner: User,
    weekday: int,
    starts: time,
    ends: time,
    added_by: User,
    expected_version: str | None,
    submission_token: uuid.UUID | None = None,
) -> WorkingHours:
    """Add an interval of working hours: `practitioner` works on `weekday`
    (0 is Monday) from `starts` to `ends`, clinic local time.

    `expected_version` is the version of the practitioner's week the hours
    page was opened with (`working_hours_version`; None: not from a page);
    only that day's part is checked, so adding Sunday goes through when
    someone has just added Saturday. The week is locked first.
    `submission_token` is the add form's one-time token. Raises
    `AlreadySubmittedError` (clinic.concurrency, with `.obj`) when this form
    was already saved (sent twice); `StaleEditError` when the day's hours
    changed since ("stale_edit": the day, its hours now, who changed them
    last and when) or the version is not one a week has ("bad_version");
    `BookingRefusedError` ("starts") when the interval overlaps hours
    already set that day; `ValidationError` when it ends before it starts.
    Nothing is written when it raises."""
    submission_check(WorkingHours, submission_token, by=added_by, find=_hours_found)
    _hours_check(practitioner, weekday, expected_version)
    clash = WorkingHours.objects.filter(
        practitioner=practitioner, weekday=weekday, starts__lt=ends, ends__gt=starts
    ).exists()
    if clash:
        raise BookingRefusedError(
            _("These hours overlap hours already set for that day."), field="starts"
        )
    hours = WorkingHours(practitioner=practitioner, weekday=weekday, starts=starts, ends=ends)
    hours.full_clean()
    hours.save()
    audit_log(
        actor=added_by,
        action=AuditAction.CREATE,
        obj=hours,
        object_id=str(practitioner.pk),
        changed_fields=["weekday", "starts", "ends", *submission_marks(submission_token)],
    )
    return hours


def _hours_found(event: AuditEvent) -> User | None:
    # The hours' events name the practitioner, whose week the page shows.
    return User.objects.filter(pk=event.object_id).first()


@transaction.atomic
def working_hours_clear(
    *, practitioner: User, weekday: int, cleared_by: User, expected_version: str | None
) -> int:
    """Remove every interval of `practitioner`'s hours on `weekday` (0 is
    Monday); returns how many were removed.

    `expected_version`: as for `working_hours_add` (only that day's part is
    checked). Raises `StaleEditError` when the day's hours changed since the
    page was opened, or the version is forged. Nothing is removed when it
    raises."""
    _hours_check(practitioner, weekday, expected_version)
    removed, _detail = WorkingHours.objects.filter(
        practitioner=practitioner, weekday=weekday
    ).delete()
    audit_log(
        actor=cleared_by,
        action=AuditAction.DELETE,
        object_type="treatments.workinghours",
        object_id=str(practitioner.pk),
        changed_fields=["weekday"],
    )
    return removed


def _check_closure_dates(starts_on: date, ends_on: date) -> None:
    problem = closure_dates_problem(starts_on, ends_on, today=timezone.localdate())
    if problem is not None:
        field, message = problem
        raise BookingRefusedError(message, field=field)


# Bookings named in a refusal to close days; the rest are counted.
CLOSURE_BOOKINGS_LISTED = 10


def _check_closure_bookings(
    starts_on: date, ends_on: date, *, already_closed: tuple[date, date] | None = None
) -> None:
    """Refuse to close days that hold active bookings (booked or arrived),
    naming them, so that no patient is left booked (and reminded) on a day
    the clinic is shut. Days in `already_closed` (a closure's days before an
    edit, both included) are not checked again."""
    start, _end = local_day_bounds(starts_on)
    _start, end = local_day_bounds(ends_on)
    found = Booking.objects.filter(
        status__in=(BookingStatus.BOOKED, BookingStatus.ARRIVED),
        starts_at__lt=end,
        ends_at__gt=start,
    )
    if already_closed is not None:
        old_start, _e = local_day_bounds(already_closed[0])
        _s, old_end = local_day_bounds(already_closed[1])
        found = found.exclude(starts_at__gte=old_start, ends_at__lte=old_end)
    bookings = list(
        found.select_related("patient").order_by("starts_at", "id")[: CLOSURE_BOOKINGS_LISTED + 1]
    )
    if not bookings:
        return
    total = found.count() if len(bookings) > CLOSURE_BOOKINGS_LISTED else len(bookings)
    listed = "; ".join(
        f"{dates.day_time(b.starts_at)} {b.patient.full_name}"
        for b in bookings[:CLOSURE_BOOKINGS_LISTED]
    )
    if total > CLOSURE_BOOKINGS_LISTED:
        listed += " " + str(_("and %(count)s more") % {"count": total - CLOSURE_BOOKINGS_LISTED})
    raise BookingRefusedError(
        _(
            "These days hold bookings: %(bookings)s. Move or cancel them first, "
            "then close the days; nothing was saved."
        )
        % {"bookings": listed},
        field="starts_on",
    )


@transaction.atomic
def closure_add(
    *,
    starts_on: date,
    ends_on: date,
    reason: str,
    added_by: User,
    submission_token: uuid.UUID | None = None,
) -> ClinicClosure:
    """Close the clinic from `starts_on` to `ends_on` (both included, clinic
    calendar) for `reason` (trimmed): nothing can be booked on those days.
    `submission_token` is the add form's one-time token.

    Raises `AlreadySubmittedError` (clinic.concurrency, with `.obj`) when this
    very form was already saved (sent twice): one closure is added;
    `BookingRefusedError` (with the form field) for dates
    `closure_dates_problem` refuses, or when those days hold active bookings
    (booked or arrived; the message lists date, time and patient, and asks
    to move or cancel them first); `ValidationError` for an empty or too
    long reason. Nothing is written when it raises."""
    submission_check(ClinicClosure, submission_token, by=added_by)
    _check_closure_dates(starts_on, ends_on)
    _check_closure_bookings(starts_on, ends_on)
    closure = ClinicClosure(starts_on=starts_on, ends_on=ends_on, reason=reason.strip())
    closure.full_clean()
    closure.save()
    audit_log(
        actor=added_by,
        action=AuditAction.CREATE,
        obj=closure,
        changed_fields=[
            "starts_on",
            "ends_on",
            "reason",
            version_mark(closure.version),
            *submission_marks(submission_token),
        ],
    )
    return closure


@transaction.atomic
def closure_update(
    *,
    closure: ClinicClosure,
    starts_on: date,
    ends_on: date,
    reason: str,
    updated_by: User,
    expected_version: int | None,
) -> ClinicClosure:
    """Change a closure's days (`starts_on` to `ends_on`, both included) or
    its `reason` (trimmed).

    `expected_version` is the version the edit form was opened with (None:
    not from a form). The row is locked first. Raises `StaleEditError`
    (clinic.concurrency) when someone changed the closure since
    ("stale_edit": its days or reason now, who and when) or the version is
    not one it had ("bad_version"); `BookingRefusedError` (with the form
    field) for dates `closure_dates_problem` refuses or new days that hold
    active bookings (listed, as for `closure_add`); `ValidationError` for
    an empty reason. Returns the closure, unchanged when nothing differs.
    Nothing is written when it raises."""
    current = ClinicClosure.objects.select_for_update().get(pk=closure.pk)
    version_check(current, expected=expected_version)
    values = {"starts_on": starts_on, "ends_on": ends_on, "reason": reason.strip()}
    changed = [name for name, value in values.items() if getattr(current, name) != value]
    if not changed:
        return current
    _check_closure_dates(starts_on, ends_on)
    if "starts_on" in changed or "ends_on" in changed:
        _check_closure_bookings(
            starts_on, ends_on, already_closed=(current.starts_on, current.ends_on)
        )
    for name in changed:
        setattr(current, name, values[name])
    mark = version_bump(current)
    current.full_clean()
    current.save()
    audit_log(
        actor=updated_by,
        action=AuditAction.UPDATE,
        obj=current,
        changed_fields=[*changed, mark],
    )
    return current


@transaction.atomic
def closure_remove(
    *, closure: ClinicClosure, removed_by: User, expected_version: int | None
) -> None:
    """Remove a closure: its days can be booked again. The audit event keeps
    which closure it was (its uuid) and what it held (field names).

    `expected_version`: as for `closure_update`. Raises `StaleEditError` when
    the closure changed since the page was opened (its dates then may not be
    the ones the manager meant to reopen), or the version is forged. Nothing
    is removed when it raises."""
    current = ClinicClosure.objects.select_for_update().get(pk=closure.pk)
    version_check(current, expected=expected_version)
    audit_log(
        actor=removed_by,
        action=AuditAction.DELETE,
        obj=current,
        changed_fields=["starts_on", "ends_on", "reason"],
    )
    current.delete()

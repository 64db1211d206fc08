"""State changes of bookings: create, move, cancel, mark arrived or not come.

PostgreSQL holds the rule that matters most (no overlapping bookings for a
practitioner, room or patient, by exclusion constraints); these services turn
its refusal into the sentence reception reads, and check what the database
cannot: working hours, closures, times in the past.
"""

from __future__ import annotations

from datetime import date, datetime, time

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from clinic.audit import audit_log
from clinic.models import AuditAction, User
from patients.models import Patient
from treatments.localtime import to_local
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
from treatments.selectors.booking import closures_between, within_hours, working_hours_map
from treatments.services.reminders import (
    reminders_cancel_for_booking,
    reminders_plan_for_booking,
)

SLOT_TAKEN = gettext_lazy("This slot was just taken. Choose another time.")

# The exclusion constraints, by what they protect.
CONSTRAINT_SUBJECTS = {
    "booking_no_overlap_practitioner": "practitioner",
    "booking_no_overlap_room": "room",
    "booking_no_overlap_patient": "patient",
}


class BookingRefusedError(Exception):
    """A booking (or a change to one) refused with a sentence for reception."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class SlotTakenError(BookingRefusedError):
    """Another booking already holds the practitioner, the room or the patient then."""

    def __init__(self, subject: str = "") -> None:
        super().__init__(str(SLOT_TAKEN))
        self.subject = subject


class BookingStateError(BookingRefusedError):
    """The booking's status does not allow this change."""


def check_slot(*, practitioner: User, starts_at: datetime, ends_at: datetime) -> None:
    """Refuse a time that ends before it starts, is past, falls on a closure or
    outside the practitioner's working hours (in that order)."""
    if ends_at <= starts_at:
        raise BookingRefusedError(_("The end must be after the start."), field="duration")
    if starts_at < timezone.now():
        raise BookingRefusedError(
            _("This time has already passed. Choose a time from now on."), field="start_time"
        )
    day = to_local(starts_at).date()
    closed = closures_between(day, to_local(ends_at).date())
    if closed:
        raise BookingRefusedError(
            _("The clinic is closed on %(day)s (%(reason)s).")
            % {"day": day.strftime("%d/%m/%Y"), "reason": next(iter(closed.values()))},
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


def _save_holding_slot(booking: Booking, **save_kwargs: object) -> None:
    """Save, turning an overlap refused by PostgreSQL into SlotTakenError."""
    if booking.status in HOLDING_STATUSES:
        _lock_slot_holders(booking)
    try:
        booking.full_clean()
    except ValidationError as error:
        codes = {e.code for e in error.error_dict.get(NON_FIELD_ERRORS, [])}
        if "slot_taken" in codes:
            raise SlotTakenError() from error
        raise
    try:
        with transaction.atomic():
            booking.save(**save_kwargs)  # type: ignore[arg-type]
    except IntegrityError as error:
        diag = getattr(error.__cause__, "diag", None)
        name = getattr(diag, "constraint_name", "") or ""
        if name.startswith("booking_no_overlap_"):
            raise SlotTakenError(CONSTRAINT_SUBJECTS.get(name, "")) from error
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
    check: bool = True,
) -> Booking:
    if check:
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
    return (
        Booking.objects.select_for_update(of=("self",))
        .select_related("patient", "practitioner", "room")
        .get(pk=booking.pk)
    )


@transaction.atomic
def booking_move(
    *,
    booking: Booking,
    starts_at: datetime,
    ends_at: datetime,
    practitioner: User,
    room: Room,
    moved_by: User,
) -> Booking:
    current = _locked(booking)
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
        changed_fields=changed,
    )
    return current


@transaction.atomic
def booking_cancel(*, booking: Booking, reason: str, cancelled_by: User) -> Booking:
    reason = reason.strip()
    if not reason:
        raise BookingRefusedError(_("Say why the booking is cancelled."), field="reason")
    current = _locked(booking)
    try:
        current.transition_to(BookingStatus.CANCELLED)
    except IllegalTransitionError as error:
        raise BookingStateError(str(error)) from error
    current.cancel_reason = reason[:300]
    current.full_clean()
    current.save(update_fields=["status", "cancel_reason", "updated_at"])
    BookingEvent.objects.create(
        booking=current, kind=BookingEventKind.CANCELLED, by=cancelled_by, detail=reason[:300]
    )
    reminders_cancel_for_booking(booking=current)
    audit_log(
        actor=cancelled_by,
        action=AuditAction.UPDATE,
        obj=current,
        patient_ref=current.patient.uuid,
        changed_fields=["status", "cancel_reason"],
    )
    return current


MARK_EVENTS: dict[str, str] = {
    BookingStatus.ARRIVED: BookingEventKind.ARRIVED,
    BookingStatus.NO_SHOW: BookingEventKind.NO_SHOW,
    BookingStatus.BOOKED: BookingEventKind.REOPENED,
}


@transaction.atomic
def booking_mark(*, booking: Booking, status: str, marked_by: User) -> Booking:
    """Arrived, did not come, or back to booked (an arrival marked by mistake)."""
    if status not in MARK_EVENTS:
        raise BookingStateError(_("Choose arrived or did not come."))
    current = _locked(booking)
    try:
        current.transition_to(status)
    except IllegalTransitionError as error:
        raise BookingStateError(str(error)) from error
    if status == BookingStatus.NO_SHOW and current.starts_at > timezone.now():
        raise BookingStateError(_("A booking cannot be marked as not come before its start time."))
    _save_holding_slot(current, update_fields=["status", "updated_at"])
    BookingEvent.objects.create(booking=current, kind=MARK_EVENTS[status], by=marked_by)
    # Not come cancels the reminders still planned; back to booked plans them again.
    if status != BookingStatus.ARRIVED:
        reminders_plan_for_booking(booking=current)
    audit_log(
        actor=marked_by,
        action=AuditAction.UPDATE,
        obj=current,
        patient_ref=current.patient.uuid,
        changed_fields=["status"],
    )
    return current


# --- Rooms, working hours, closures (managers) --------------------------------------------


@transaction.atomic
def room_save(*, room: Room | None, name: str, active: bool, saved_by: User) -> Room:
    creating = room is None
    current = Room() if room is None else Room.objects.select_for_update().get(pk=room.pk)
    current.name = name.strip()
    current.active = active
    current.full_clean()
    current.save()
    audit_log(
        actor=saved_by,
        action=AuditAction.CREATE if creating else AuditAction.UPDATE,
        obj=current,
        changed_fields=["name", "active"],
    )
    return current


@transaction.atomic
def working_hours_add(
    *, practitioner: User, weekday: int, starts: time, ends: time, added_by: User
) -> WorkingHours:
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
        changed_fields=["weekday", "starts", "ends"],
    )
    return hours


@transaction.atomic
def working_hours_clear(*, practitioner: User, weekday: int, cleared_by: User) -> int:
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


@transaction.atomic
def closure_add(*, starts_on: date, ends_on: date, reason: str, added_by: User) -> ClinicClosure:
    closure = ClinicClosure(starts_on=starts_on, ends_on=ends_on, reason=reason.strip())
    closure.full_clean()
    closure.save()
    audit_log(
        actor=added_by,
        action=AuditAction.CREATE,
        obj=closure,
        changed_fields=["starts_on", "ends_on", "reason"],
    )
    return closure

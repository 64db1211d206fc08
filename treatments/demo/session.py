"""Demo data: the sessions of earlier weeks, so the session records, the
course page, the reports and the recall lists have something to show.

Each is booked and completed through the booking, course and session
services with the clock at that moment (clinic.demo_clock), behind every
safety gate, with what those patients had on record by then (patients.demo,
consent.demo, treatments.demo.allergy):

- Grace had two cellulite sessions, the first from the lot NVP-DC0399, in
  date then and expired since, the second from NVP-DC0417; she has started
  an anticoagulant since, so her next bookings wait for the practitioner.
- Oliver booked a course of six face sessions after his allergy reading and
  has had four, his cold sores acknowledged each time, and a small bruise
  after the first, told at the second; the face consent changed after the
  fourth, so the fifth waits for him to sign it again.

Idempotent: each patient's sessions are booked once. Without a clock that
moves (`clock_can_move`), none of it is written.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from clinic.demo_clock import (
    clinic_time,
    clock_at,
    clock_can_move,
    next_working_day,
    working_day,
)
from clinic.models import User
from patients.models import Patient
from treatments.gates import cautions_acknowledging, session_gates
from treatments.models import (
    DAY_OF_FIELDS,
    AdverseEffect,
    Batch,
    Booking,
    Device,
    Protocol,
    Room,
    Severity,
    Technique,
    TreatmentCourse,
)
from treatments.selectors.catalogue import batches_usable
from treatments.services.booking import BookingRefusedError, booking_create
from treatments.services.course import course_book, course_propose
from treatments.services.session import (
    AdverseEventInput,
    LineInput,
    SessionRefusedError,
    adverse_event_record,
    session_complete,
)

GRACE = "grace.okafor@demo.clinic.invalid"
OLIVER = "oliver.bennett@demo.clinic.invalid"
# Grace's two sessions: (working days ago, local hour); booked the working
# day after her allergy test was given (treatments.demo.allergy), at 11:00.
GRACE_TESTED = 130
GRACE_SESSIONS = ((45, 14), (24, 14))
# Oliver's course: booked the working day after his allergy test was given,
# at 11:00; the first of six fortnightly sessions seven weeks ago at 10:00.
OLIVER_TESTED = 70
OLIVER_FIRST = 49
OLIVER_SESSIONS = 6
# How each protocol's cocktail is given: technique, depth (mm), needle (gauge), device.
GIVEN = {
    "Cellulite": (Technique.POINT_BY_POINT, Decimal("4.0"), 30, Device.SYRINGE),
}
GIVEN_DEFAULT = (Technique.NAPPAGE, Decimal("1.0"), 32, Device.MESO_GUN)
NOTES = "Tolerated well, skin calm at the end."
REACTIONS = "Mild redness at the injection points."


def _batch_on(product_id: int, day: date) -> Batch | None:
    """The batch of this product usable on `day` (in date, not recalled,
    already received) that expires first, as the session page suggests it."""
    return (
        batches_usable(on=day)
        .filter(product_id=product_id, received_on__lte=day)
        .order_by("expiry_date", "lot_number")
        .first()
    )


def _lines(protocol: Protocol, day: date) -> list[LineInput]:
    technique, depth, gauge, device = GIVEN.get(protocol.name, GIVEN_DEFAULT)
    areas = protocol.default_areas
    lines = []
    for index, default in enumerate(protocol.cocktail.order_by("position", "id")):
        batch = _batch_on(default.product_id, day)
        if batch is None:
            return []
        lines.append(
            LineInput(
                batch=batch,
                amount=default.amount,
                unit=default.unit,
                area=areas[index % len(areas)],
                technique=technique,
                depth_mm=depth,
                needle_gauge=gauge,
                device=device,
            )
        )
    return lines


def _complete(booking: Booking, practitioner: User) -> bool:
    """Complete `booking` as its practitioner would, 40 minutes after it
    started: the protocol's cocktail from the batches of that day, every
    day-of-treatment answer "no", the cautions the page shows acknowledged.
    False (nothing written) when the gates refuse it."""
    at = booking.starts_at + timedelta(minutes=40)
    lines = _lines(booking.protocol, timezone.localdate(at))
    if not lines:
        return False
    areas = {line.area for line in lines}
    day_of = dict.fromkeys(DAY_OF_FIELDS, False)
    try:
        with transaction.atomic(), clock_at(at):
            shown = session_gates(
                booking=booking,
                batches=[line.batch for line in lines],
                areas=areas,
                day_of=day_of,
                acknowledged={},
                at=at,
            )
            session_complete(
                booking=booking,
                completed_by=practitioner,
                lines=lines,
                adverse_events=[],
                numbing_cream=True,
                immediate_reactions=REACTIONS,
                notes=NOTES,
                day_of=day_of,
                cautions_acknowledged=cautions_acknowledging(shown.cautions, areas=areas),
                at=at,
            )
    except SessionRefusedError:
        return False
    return True


def _grace(patient: Patient, practitioner: User, reception: User, room: Room) -> int:
    protocol = Protocol.objects.filter(name="Cellulite").first()
    if protocol is None:
        return 0
    duration = timedelta(minutes=protocol.session_minutes)
    booked = clinic_time(next_working_day(working_day(GRACE_TESTED)), 11)
    starts = [clinic_time(working_day(days), hour) for days, hour in GRACE_SESSIONS]
    bookings = []
    with clock_at(booked):
        for start in starts:
            try:
                bookings.append(
                    booking_create(
                        patient=patient,
                        practitioner=practitioner,
                        room=room,
                        protocol=protocol,
                        starts_at=start,
                        ends_at=start + duration,
                        created_by=reception,
                    )
                )
            except BookingRefusedError:
                continue
    return len(bookings) + sum(_complete(booking, practitioner) for booking in bookings)


def _oliver(
    patient: Patient, practitioner: User, reception: User, room: Room, now: datetime
) -> int:
    protocol = Protocol.objects.filter(name="Revitalising").first()
    if protocol is None:
        return 0
    booked = clinic_time(next_working_day(working_day(OLIVER_TESTED)), 11)
    first = clinic_time(working_day(OLIVER_FIRST), 10)
    try:
        with clock_at(booked):
            proposals = course_propose(
                patient=patient,
                protocol=protocol,
                practitioner=practitioner,
                room=room,
                first_start=first,
                sessions=OLIVER_SESSIONS,
            )
            course = course_book(
                patient=patient,
                protocol=protocol,
                practitioner=practitioner,
                room=room,
                starts=[p.starts_at for p in proposals if p.starts_at is not None],
                interval=protocol.interval,
                created_by=reception,
            )
    except BookingRefusedError:
        return 0
    added = 1 + course.bookings.count()
    past = course.bookings.filter(ends_at__lte=now).order_by("starts_at")
    records: list[Booking] = []
    for booking in past:
        if len(records) == 1:
            # Asked at the second session: a small bruise after the first.
            added += _bruise(records[0], practitioner, at=booking.starts_at + timedelta(minutes=5))
        if not _complete(booking, practitioner):
            break
        records.append(booking)
        added += 1
    return added


def _bruise(booking: Booking, practitioner: User, *, at: datetime) -> int:
    ended = booking.ends_at
    with clock_at(at):
        adverse_event_record(
            session=booking.record,
            recorded_by=practitioner,
            event=AdverseEventInput(
                effect=AdverseEffect.BRUISING,
                severity=Severity.MILD,
                onset=ended + timedelta(hours=2),
                resolved_on=timezone.localdate(ended) + timedelta(days=4),
                notes="Small bruise under the left cheekbone; faded in four days.",
            ),
            at=at,
        )
    return 1


@transaction.atomic
def seed(*, practitioner: User, reception: User) -> int:
    """Book and complete the demo sessions of earlier weeks not yet booked;
    return how many objects were added (bookings, sessions, adverse events)."""
    if not clock_can_move():
        return 0
    room = Room.objects.filter(active=True).order_by("name").first()
    if room is None:
        return 0  # treatments.demo.booking sets up the rooms and working hours
    now = timezone.now()
    added = 0
    grace = Patient.objects.filter(email=GRACE).first()
    if grace is not None and not Booking.objects.filter(patient=grace, starts_at__lt=now).exists():
        added += _grace(grace, practitioner, reception, room)
    oliver = Patient.objects.filter(email=OLIVER).first()
    if oliver is not None and not TreatmentCourse.objects.filter(patient=oliver).exists():
        added += _oliver(oliver, practitioner, reception, room, now)
    return added

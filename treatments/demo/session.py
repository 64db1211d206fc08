"""Demo data: a few completed sessions in the past, with their cocktails and one
mild bruise, so the session records, the course page, the reports and the
recall list have something to show. Idempotent."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from clinic.models import User
from patients.models import Patient
from treatments.localtime import clinic_zone
from treatments.models import (
    AdverseEffect,
    AdverseEvent,
    Batch,
    BatchStatus,
    Booking,
    BookingEvent,
    BookingEventKind,
    BookingStatus,
    CocktailLine,
    Device,
    Protocol,
    Room,
    SessionRecord,
    Severity,
    Technique,
)

DEMO_NOTE = "Demo session: tolerated well, skin calm at the end."
# (days ago, local hour) of each demo session, one patient each.
PAST_SESSIONS = ((42, 9), (28, 11), (14, 15))


def _batch_on(product_id: int, day: datetime) -> Batch | None:
    """The batch of this product usable that day that expired first."""
    return (
        Batch.objects.filter(
            product_id=product_id, status=BatchStatus.IN_STOCK, expiry_date__gte=day.date()
        )
        .order_by("expiry_date", "lot_number")
        .first()
    )


def _session(
    *, patient: Patient, protocol: Protocol, practitioner: User, room: Room, starts_at: datetime
) -> SessionRecord | None:
    lines = []
    for default in protocol.cocktail.all():
        batch = _batch_on(default.product_id, starts_at)
        if batch is not None:
            lines.append((batch, default.amount, default.unit))
    if not lines:
        return None
    try:
        with transaction.atomic():
            booking = Booking.objects.create(
                patient=patient,
                practitioner=practitioner,
                room=room,
                protocol=protocol,
                starts_at=starts_at,
                ends_at=starts_at + timedelta(minutes=protocol.session_minutes),
                status=BookingStatus.COMPLETED,
                created_by=practitioner,
            )
    except IntegrityError:
        return None  # the slot is held by another demo booking: skip this one
    BookingEvent.objects.create(booking=booking, kind=BookingEventKind.COMPLETED, by=practitioner)
    record = SessionRecord.objects.create(
        booking=booking,
        numbing_cream=True,
        immediate_reactions="Mild redness at the injection points.",
        notes=DEMO_NOTE,
        completed_at=booking.ends_at,
        completed_by=practitioner,
    )
    area = protocol.default_areas[0]
    for batch, amount, unit in lines:
        CocktailLine.objects.create(
            session=record,
            batch=batch,
            amount=amount,
            unit=unit,
            area=area,
            technique=Technique.NAPPAGE,
            depth_mm=Decimal("1.0"),
            needle_gauge=32,
            device=Device.MESO_GUN,
        )
    return record


@transaction.atomic
def seed(*, practitioner: User, reception: User) -> int:
    """Add the demo sessions that are missing; return how many objects were added."""
    protocol = Protocol.objects.filter(active=True, cocktail__isnull=False).order_by("name").first()
    patients = list(Patient.objects.order_by("id")[: len(PAST_SESSIONS)])
    if protocol is None or not patients:
        return 0
    room = Room.objects.filter(active=True).order_by("name").first()
    added = 0
    if room is None:
        room = Room.objects.create(name="Treatment room 1")
        added += 1
    today = timezone.localdate()
    zone = clinic_zone()
    bruise_added = AdverseEvent.objects.filter(session__notes=DEMO_NOTE).exists()
    for patient, (days_ago, hour) in zip(patients, PAST_SESSIONS, strict=False):
        if SessionRecord.objects.filter(booking__patient=patient, notes=DEMO_NOTE).exists():
            continue
        starts_at = datetime.combine(today - timedelta(days=days_ago), time(hour), tzinfo=zone)
        record = _session(
            patient=patient,
            protocol=protocol,
            practitioner=practitioner,
            room=room,
            starts_at=starts_at,
        )
        if record is None:
            continue
        added += 1
        if not bruise_added:
            AdverseEvent.objects.create(
                session=record,
                effect=AdverseEffect.BRUISING,
                severity=Severity.MILD,
                onset=record.booking.ends_at + timedelta(hours=2),
                resolved_on=(record.booking.ends_at + timedelta(days=4)).date(),
                notes="Small bruise under the left cheekbone; faded in four days.",
                recorded_by=practitioner,
            )
            bruise_added = True
            added += 1
    return added

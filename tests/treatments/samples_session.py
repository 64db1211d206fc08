"""Objects the URL walk needs: one for each sample id in tests.test_urlwalk.SAMPLE_KWARGS
that this part of the app takes in its routes, created with exactly that uuid."""

from __future__ import annotations


def create_samples(kwargs: dict[str, str]) -> None:
    """A completed session of the sample patient, a month ago, with one cocktail line."""
    from datetime import timedelta
    from decimal import Decimal

    from django.utils import timezone

    from clinic.roles import Role
    from patients.models import Patient
    from tests.factories import BatchFactory, ProtocolFactory, UserFactory
    from treatments.models import (
        Batch,
        Booking,
        BookingStatus,
        CocktailLine,
        Protocol,
        Room,
        SessionRecord,
    )

    patient = Patient.objects.get(uuid=kwargs["patient"])
    protocol = Protocol.objects.filter(uuid=kwargs["protocol"]).first() or ProtocolFactory(
        uuid=kwargs["protocol"]
    )
    batch = Batch.objects.filter(uuid=kwargs["batch"]).first() or BatchFactory(uuid=kwargs["batch"])
    practitioner = UserFactory(username="sample-session-practitioner", roles=[Role.PRACTITIONER])
    room = Room.objects.create(name="Sample session room")
    starts_at = timezone.now().replace(microsecond=0) - timedelta(days=30)
    booking = Booking.objects.create(
        patient=patient,
        practitioner=practitioner,
        room=room,
        protocol=protocol,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(minutes=45),
        status=BookingStatus.COMPLETED,
        created_by=practitioner,
    )
    record = SessionRecord.objects.create(
        uuid=kwargs["session"],
        booking=booking,
        numbing_cream=False,
        completed_at=booking.ends_at,
        completed_by=practitioner,
    )
    CocktailLine.objects.create(
        session=record,
        batch=batch,
        amount=Decimal("2.00"),
        unit="ml",
        area="face",
        technique="nappage",
        depth_mm=Decimal("1.0"),
        needle_gauge=32,
        device="syringe",
    )

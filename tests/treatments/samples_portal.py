"""Objects the URL walk needs: one for each sample id in tests.test_urlwalk.SAMPLE_KWARGS
that this part of the app takes in its routes, created with exactly that uuid."""

from __future__ import annotations


def create_samples(kwargs: dict[str, str]) -> None:
    """A ready aftercare sheet of the sample patient, for a session of its own
    (completed two weeks ago), with its file on disk."""
    from datetime import timedelta
    from decimal import Decimal

    from django.core.files.base import ContentFile
    from django.utils import timezone

    from clinic.roles import Role
    from patients.models import Patient
    from tests.factories import BatchFactory, ProtocolFactory, UserFactory
    from treatments.models import (
        Batch,
        Booking,
        BookingStatus,
        CocktailLine,
        PatientDocument,
        PatientDocumentStatus,
        Protocol,
        Room,
        SessionRecord,
    )
    from treatments.services.aftercare import sha256_hex

    patient = Patient.objects.get(uuid=kwargs["patient"])
    protocol = Protocol.objects.filter(uuid=kwargs["protocol"]).first() or ProtocolFactory(
        uuid=kwargs["protocol"]
    )
    batch = Batch.objects.filter(uuid=kwargs["batch"]).first() or BatchFactory(uuid=kwargs["batch"])
    practitioner = UserFactory(username="sample-portal-practitioner", roles=[Role.PRACTITIONER])
    room = Room.objects.create(name="Sample aftercare room")
    starts_at = timezone.now().replace(microsecond=0) - timedelta(days=14, hours=3)
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
        booking=booking,
        numbing_cream=True,
        completed_at=booking.ends_at,
        completed_by=practitioner,
    )
    CocktailLine.objects.create(
        session=record,
        batch=batch,
        amount=Decimal("1.50"),
        unit="ml",
        area="neck",
        technique="nappage",
        depth_mm=Decimal("1.0"),
        needle_gauge=32,
        device="syringe",
    )
    content = b"%PDF-1.7\n% sample aftercare sheet\n"
    document = PatientDocument(
        uuid=kwargs["document"],
        patient=patient,
        session=record,
        status=PatientDocumentStatus.READY,
        sha256=sha256_hex(content),
        queued_at=booking.ends_at,
        generated_at=booking.ends_at,
    )
    name = f"documents/{document.uuid}.pdf"
    storage = document.file.storage
    if storage.exists(name):
        storage.delete(name)
    document.file.name = storage.save(name, ContentFile(content))
    document.save()

"""Objects the URL walk needs: one for each sample id in tests.test_urlwalk.SAMPLE_KWARGS
that this part of the app takes in its routes, created with exactly that uuid."""

from __future__ import annotations


def create_samples(kwargs: dict[str, str]) -> None:
    """A room, a booking of the sample patient tomorrow at 10:00 (local), a
    course, and a clinic closure in a month."""
    from datetime import time, timedelta

    from django.utils import timezone

    from clinic.localtime import local_to_utc
    from clinic.roles import Role
    from patients.models import Patient
    from tests.factories import ProtocolFactory, UserFactory
    from treatments.models import (
        Booking,
        ClinicClosure,
        Interval,
        Protocol,
        Room,
        TreatmentCourse,
    )

    patient = Patient.objects.get(uuid=kwargs["patient"])
    protocol = Protocol.objects.filter(uuid=kwargs["protocol"]).first() or ProtocolFactory(
        uuid=kwargs["protocol"]
    )
    practitioner = UserFactory(username="sample-booking-practitioner", roles=[Role.PRACTITIONER])
    room = Room.objects.create(uuid=kwargs["room"], name="Sample room")
    course = TreatmentCourse.objects.create(
        uuid=kwargs["course"],
        patient=patient,
        protocol=protocol,
        planned_sessions=6,
        interval=Interval.FORTNIGHTLY,
        created_by=practitioner,
    )
    starts_at = local_to_utc(timezone.localdate() + timedelta(days=1), time(10, 0), fold=0)
    Booking.objects.create(
        uuid=kwargs["booking"],
        patient=patient,
        practitioner=practitioner,
        room=room,
        protocol=protocol,
        course=course,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(minutes=protocol.session_minutes),
        created_by=practitioner,
    )
    closed_on = timezone.localdate() + timedelta(days=30)
    ClinicClosure.objects.create(
        uuid=kwargs["closure"], starts_on=closed_on, ends_on=closed_on, reason="Sample training day"
    )

"""The demo calendar: seeded once, and a second run adds nothing."""

from __future__ import annotations

import pytest
import time_machine

from clinic.models import User
from tests.treatments.test_booking_support import NOW
from treatments.models import Booking, ClinicClosure, Room, TreatmentCourse, WorkingHours


@pytest.mark.django_db
def test_demo_calendar_is_seeded_once(practitioner: User, receptionist: User) -> None:
    from patients import demo as patients_demo
    from treatments.demo import booking as demo_booking
    from treatments.demo import catalogue as demo_catalogue

    with time_machine.travel(NOW, tick=False):
        assert demo_booking.seed(practitioner=practitioner, reception=receptionist) == 0
        patients_demo.seed(practitioner=practitioner, reception=receptionist)
        demo_catalogue.seed(practitioner=practitioner, reception=receptionist)
        added = demo_booking.seed(practitioner=practitioner, reception=receptionist)
        assert added > 12
        assert demo_booking.seed(practitioner=practitioner, reception=receptionist) == 0
    assert Room.objects.count() == 2
    assert User.objects.filter(username="practitioner2").exists()
    assert WorkingHours.objects.filter(practitioner=practitioner, weekday=5).exists()
    assert ClinicClosure.objects.get().starts_on.isoformat() == "2026-12-25"
    course = TreatmentCourse.objects.get()
    assert course.bookings.count() == 6
    assert Booking.objects.filter(course__isnull=True).count() >= 10

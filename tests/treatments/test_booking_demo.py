"""The demo calendar: seeded once, a second run adds nothing, and each booking
shows reception what stands in the way of treating, as the gates say."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import time_machine

from clinic.models import User
from tests.treatments.test_booking_support import NOW
from treatments.models import Booking, ClinicClosure, Room, TreatmentCourse, WorkingHours
from treatments.selectors.readiness import booking_readiness

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


def seed_all(practitioner: User, receptionist: User) -> int:
    """The demo as seed_demo writes it, the calendar last."""
    from consent import demo as consent_demo
    from patients import demo as patients_demo
    from treatments.demo import allergy as demo_allergy
    from treatments.demo import booking as demo_booking
    from treatments.demo import catalogue as demo_catalogue

    for part in (patients_demo, consent_demo, demo_catalogue, demo_allergy):
        part.seed(practitioner=practitioner, reception=receptionist)
    return demo_booking.seed(practitioner=practitioner, reception=receptionist)


def test_demo_calendar_is_seeded_once(practitioner: User, receptionist: User) -> None:
    from treatments.demo import booking as demo_booking

    assert demo_booking.seed(practitioner=practitioner, reception=receptionist) == 0
    added = seed_all(practitioner, receptionist)
    assert added > 12
    assert demo_booking.seed(practitioner=practitioner, reception=receptionist) == 0
    assert Room.objects.count() == 2
    assert User.objects.filter(username="practitioner2").exists()
    assert WorkingHours.objects.filter(practitioner=practitioner, weekday=5).exists()
    assert ClinicClosure.objects.get().starts_on.isoformat() == "2026-12-25"
    course = TreatmentCourse.objects.get()
    assert course.bookings.count() == 6
    assert Booking.objects.filter(course__isnull=True).count() == len(demo_booking.PLAN)


def test_each_demo_booking_shows_reception_what_stands_in_the_way(
    practitioner: User, receptionist: User
) -> None:
    seed_all(practitioner, receptionist)
    bookings = list(Booking.objects.select_related("patient", "protocol"))
    readiness = booking_readiness(bookings=bookings, at=NOW)
    notes: dict[str, set[str]] = {}
    for booking in bookings:
        notes.setdefault(booking.patient.first_name, set()).update(
            failure.reception_note.split(" due ")[0] for failure in readiness[booking.pk]
        )
    assert notes == {
        # Consented, tested and with a history: her course is ready to treat.
        "Amelia": set(),
        "Isla": {"medical history needed", "consent needed", "allergy test needed"},
        # Since her last session she takes an anticoagulant.
        "Grace": {"ask the practitioner before booking"},
        # Isotretinoin four months before her history: 18 months' wait.
        "Freya": {
            "not before Wed 12 Jan 2028 — ask the practitioner",
            "consent needed",
            "allergy test needed",
        },
        "Theo": {"allergy reading"},
    }

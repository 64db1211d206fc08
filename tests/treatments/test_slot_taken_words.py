"""A clash is refused naming what took the time: the bookings that hold it
(practitioner, room, patient, with their times: tests/treatments/
test_booking.py), or, when the booking that took it was moved or cancelled
before the refusal was written, what the refused rule protected at the time
asked for. Never a bare "This slot was just taken"."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from clinic.models import User
from tests.conftest import frozen_at
from tests.factories import PatientFactory
from tests.treatments.test_session_helpers import make_booking, make_world
from treatments.models import Booking, BookingStatus, Room
from treatments.services.booking import SlotTakenError, booking_cancel

pytestmark = pytest.mark.django_db
LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=LONDON)
frozen = frozen_at(NOW)
TUESDAY_10 = datetime(2026, 11, 24, 10, 0, tzinfo=LONDON)
BARE = "This slot was just taken. Choose another time."


def _asked(world: object, room: Room) -> Booking:
    """The booking asked for: Tuesday 10:00 to 10:45 in `room`."""
    return Booking(
        patient=world.patient,  # type: ignore[attr-defined]
        practitioner=world.booking.practitioner,  # type: ignore[attr-defined]
        room=room,
        protocol=world.protocol,  # type: ignore[attr-defined]
        starts_at=TUESDAY_10,
        ends_at=TUESDAY_10 + timedelta(minutes=45),
    )


@pytest.mark.parametrize(
    ("subject", "named"),
    [
        ("room", "Treatment room 3"),
        ("practitioner", "PRACTITIONER"),
        ("patient", "PATIENT"),
        ("", "PRACTITIONER, Treatment room 3 or PATIENT"),
    ],
)
def test_a_time_taken_and_freed_again_says_what_was_booked_then(
    practitioner: User, receptionist: User, subject: str, named: str
) -> None:
    world = make_world(practitioner, status="booked")
    room = Room.objects.create(name="Treatment room 3")
    taken = make_booking(
        patient=PatientFactory(),
        practitioner=User.objects.create(username="other"),
        protocol=world.protocol,
        starts_at=TUESDAY_10,
        status=BookingStatus.BOOKED,
        room=room,
    )
    # The booking that took the time is cancelled before the refusal is written.
    booking_cancel(booking=taken, reason="Moved to Friday", cancelled_by=receptionist)
    message = SlotTakenError(_asked(world, room), subject).message
    named = named.replace("PRACTITIONER", practitioner.get_full_name() or practitioner.username)
    named = named.replace("PATIENT", world.patient.full_name)
    assert message == (
        f"This slot was taken a moment ago and freed again: {named} was booked then from "
        "10:00 to 10:45 on Tue 24 Nov. Try again, or choose another time."
    )
    assert BARE not in message

"""Shared set-up for the calendar, booking and course tests: a clinic with a
practitioner working Monday to Friday, two rooms, a protocol and patients,
with the clock on Monday 23 November 2026, 08:00 in London."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import pytest
import time_machine

from clinic.localtime import local_to_utc
from clinic.models import User
from clinic.roles import Role
from patients.models import Patient
from tests.factories import PatientFactory, ProtocolFactory, UserFactory
from treatments.models import Booking, Protocol, Room, WorkingHours

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # a Monday; London is on GMT
MONDAY = date(2026, 11, 23)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return local_to_utc(day, time(hour, minute), fold=0)


def give_hours(
    practitioner: User, *, days: range = range(5), starts: str = "09:00", ends: str = "17:30"
) -> None:
    for weekday in days:
        WorkingHours.objects.create(
            practitioner=practitioner,
            weekday=weekday,
            starts=time.fromisoformat(starts),
            ends=time.fromisoformat(ends),
        )


def book(
    *,
    patient: Patient,
    practitioner: User,
    room: Room,
    protocol: Protocol,
    starts_at: datetime,
    minutes: int = 45,
    **extra: object,
) -> Booking:
    """A booking written straight to the table (set-up only; the code under
    test goes through the services)."""
    return Booking.objects.create(
        patient=patient,
        practitioner=practitioner,
        room=room,
        protocol=protocol,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(minutes=minutes),
        created_by=practitioner,
        **extra,
    )


@dataclass
class Clinic:
    practitioner: User
    other_practitioner: User
    room: Room
    other_room: Room
    protocol: Protocol
    patient: Patient
    other_patient: Patient


@pytest.fixture
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def clinic(db: None, practitioner: User) -> Clinic:
    other = UserFactory(
        username="second-practitioner", first_name="Omar", roles=[Role.PRACTITIONER]
    )
    give_hours(practitioner)
    give_hours(other)
    return Clinic(
        practitioner=practitioner,
        other_practitioner=other,
        room=Room.objects.create(name="Room 1"),
        other_room=Room.objects.create(name="Room 2"),
        protocol=ProtocolFactory(
            session_minutes=45, default_sessions=6, interval="fortnightly", maintenance_months=6
        ),
        patient=PatientFactory(first_name="Amelia", last_name="Hart"),
        other_patient=PatientFactory(first_name="Ben", last_name="Cole"),
    )


def booking_post(c: Clinic, day: date, start: str, **overrides: str) -> dict[str, str]:
    data = {
        "patient": str(c.patient.uuid),
        "protocol": str(c.protocol.uuid),
        "practitioner": str(c.practitioner.uuid),
        "room": str(c.room.uuid),
        "date": day.isoformat(),
        "start_time": start,
        "duration": "",
        "action": "book",
    }
    data.update(overrides)
    return data

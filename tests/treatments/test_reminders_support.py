"""Shared pieces of the reminder tests: a small clinic, bookings made the way
the booking services make them, and SMS backends that record or misbehave."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction

from clinic.models import User
from clinic.roles import Role
from patients.models import Patient
from tests.factories import PatientFactory, ProtocolFactory, UserFactory
from treatments.models import Booking, Protocol, Room, TreatmentCourse, WorkingHours
from treatments.services.booking import booking_cancel, booking_create, booking_move
from treatments.services.reminders import (
    reminders_cancel_for_booking,
    reminders_plan_for_booking,
)
from treatments.sms import FileBackend

LONDON = ZoneInfo("Europe/London")


def local(day: date, hour: int, minute: int = 0, fold: int = 0) -> datetime:
    """An aware UTC instant from a London wall-clock time."""
    return (
        datetime.combine(day, clock(hour, minute), tzinfo=LONDON).replace(fold=fold).astimezone(UTC)
    )


@dataclass
class Clinic:
    practitioner: User
    receptionist: User
    room: Room
    protocol: Protocol
    patient: Patient


@pytest.fixture
def clinic(db: None) -> Clinic:
    practitioner = UserFactory(username="rem-practitioner", roles=[Role.PRACTITIONER])
    for weekday in range(7):
        WorkingHours.objects.create(
            practitioner=practitioner, weekday=weekday, starts=clock(0, 0), ends=clock(23, 59)
        )
    receptionist = UserFactory(username="rem-reception", roles=[Role.RECEPTIONIST])
    return Clinic(
        practitioner=practitioner,
        receptionist=receptionist,
        room=Room.objects.create(name="Room 1"),
        protocol=ProtocolFactory(session_minutes=10),
        patient=PatientFactory(reminder_channel="email", consents_to_messages=True),
    )


def book(
    c: Clinic,
    starts_at: datetime,
    *,
    patient: Patient | None = None,
    room: Room | None = None,
    course: TreatmentCourse | None = None,
    minutes: int = 10,
) -> Booking:
    """A booking through the service, with its reminders planned in the same
    transaction, as the booking service does it."""
    with transaction.atomic():
        booking = booking_create(
            patient=patient or c.patient,
            practitioner=c.practitioner,
            room=room or c.room,
            protocol=c.protocol,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(minutes=minutes),
            created_by=c.receptionist,
            course=course,
            check=False,
        )
        reminders_plan_for_booking(booking=booking)
    return booking


def move(c: Clinic, booking: Booking, starts_at: datetime) -> Booking:
    with transaction.atomic():
        moved = booking_move(
            booking=booking,
            starts_at=starts_at,
            ends_at=starts_at + (booking.ends_at - booking.starts_at),
            practitioner=booking.practitioner,
            room=booking.room,
            moved_by=c.receptionist,
            expected_version=None,
        )
        reminders_plan_for_booking(booking=moved)
    return moved


def cancel(c: Clinic, booking: Booking) -> Booking:
    with transaction.atomic():
        cancelled = booking_cancel(
            booking=booking, reason="Patient unwell", cancelled_by=c.receptionist
        )
        reminders_cancel_for_booking(booking=cancelled)
    return cancelled


class RecordingBackend:
    """Records every send; fails as told (a list of exceptions, one per call)."""

    def __init__(self, failures: list[Exception] | None = None) -> None:
        self.sent: list[dict[str, str]] = []
        self.failures = list(failures or [])

    def send(self, *, to: str, body: str, idempotency_key: str) -> str:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append({"to": to, "body": body, "key": idempotency_key})
        return f"rec-{len(self.sent)}"


class SlowFileBackend(FileBackend):
    """For the real-process tests: a FileBackend that takes a little time per
    message (as a provider does) and appends every call, repeats included, to
    a journal, so that duplicates can be counted as well as distinct keys."""

    def send(self, *, to: str, body: str, idempotency_key: str) -> str:
        time.sleep(float(os.environ.get("SMS_TEST_DELAY_SECONDS", "0.005")))
        message_id = super().send(to=to, body=body, idempotency_key=idempotency_key)
        journal = self.directory / "journal.log"
        fd = os.open(journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, (idempotency_key + "\n").encode())
        finally:
            os.close(fd)
        return message_id


def journal(directory: Path) -> list[str]:
    path = directory / "journal.log"
    return path.read_text().split() if path.exists() else []


def delivered_keys(directory: Path) -> set[str]:
    return {p.stem for p in directory.glob("*.json")}

"""Shared pieces of the reminder tests: a small clinic, bookings made, moved,
cancelled and marked through the booking services alone (which plan and
cancel their reminders themselves), and SMS backends that record or
misbehave."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.test import override_settings

from clinic.models import User
from clinic.roles import Role
from patients.models import Patient
from tests.factories import PatientFactory, ProtocolFactory, UserFactory
from treatments.models import Booking, Protocol, Room, TreatmentCourse, WorkingHours
from treatments.services.booking import booking_cancel, booking_create, booking_mark, booking_move
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
    """A booking through the booking service alone: it plans the reminders."""
    return booking_create(
        patient=patient or c.patient,
        practitioner=c.practitioner,
        room=room or c.room,
        protocol=c.protocol,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(minutes=minutes),
        created_by=c.receptionist,
        course=course,
    )


def move(c: Clinic, booking: Booking, starts_at: datetime) -> Booking:
    """A move through the booking service alone: its reminders follow it."""
    return booking_move(
        booking=booking,
        starts_at=starts_at,
        ends_at=starts_at + (booking.ends_at - booking.starts_at),
        practitioner=booking.practitioner,
        room=booking.room,
        moved_by=c.receptionist,
        expected_version=None,
    )


def cancel(c: Clinic, booking: Booking) -> Booking:
    """A cancellation through the booking service alone: it cancels the reminders."""
    return booking_cancel(booking=booking, reason="Patient unwell", cancelled_by=c.receptionist)


def mark(c: Clinic, booking: Booking, status: str) -> Booking:
    """Arrived, did not come or back to booked, through the booking service alone."""
    return booking_mark(booking=booking, status=status, marked_by=c.receptionist)


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


class SilentMailServer:
    """A TCP server that accepts every connection and never says a word: what
    a mail server stuck behind a firewall rule or a full disk looks like."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.accepted = threading.Event()
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                peer, _address = self.socket.accept()
            except OSError:
                return
            self.connections.append(peer)
            self.accepted.set()

    def close(self) -> None:
        self.socket.close()
        for peer in self.connections:
            peer.close()


@pytest.fixture
def silent_smtp() -> Iterator[SilentMailServer]:
    server = SilentMailServer()
    with override_settings(
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=server.port,
        EMAIL_HOST_USER="",
        EMAIL_HOST_PASSWORD="",
        EMAIL_USE_TLS=False,
        EMAIL_USE_SSL=False,
        EMAIL_TIMEOUT=1.0,
    ):
        yield server
    server.close()

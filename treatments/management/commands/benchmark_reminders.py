"""Measure reminder dispatch, then remove every row it made.

    python manage.py benchmark_reminders --reminders 10000 [--batch 100] [--backend file|null]

Inserts synthetic patients (half by email, half by SMS), bookings and one due
session reminder per booking, then runs the dispatcher as the beat task does
(batches claimed with SKIP LOCKED, each committed) with Django's in-memory
mail backend and an SMS file (or null) backend. Prints the total time, the
throughput and the number of queries of each batch, then deletes what it made.

It sends its own reminders only: the dispatcher takes every row due at the
`now` it is given, so the run's clock is set just before the earliest row
already due or being sent in the database (the present when there is none),
and the synthetic rows are due a minute before that. Where that falls in the
clinic's quiet hours, which would hold every message, the clock goes back to
the minute before they began (20:59 the evening before, with 21:00-08:00), so
the clinic's own settings serve as they are. Its names carry a token of the
run, so it runs beside the other benchmarks, or after itself, in one database.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import connection, transaction
from django.db.models import Min, Q
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone

from clinic.models import User
from consent.models import ConsentForm
from patients.models import Patient
from patients.services import patient_search_text
from treatments.models import (
    AftercareSheet,
    Booking,
    Protocol,
    Reminder,
    ReminderChannel,
    ReminderKind,
    ReminderStatus,
    Room,
)
from treatments.services.reminders import reminders_dispatch_batch
from treatments.services.reminders.quiet_hours import (
    BEFORE_QUIET,
    in_quiet_hours,
    quiet_hours_start_before,
)
from treatments.sms import FileBackend

CHUNK = 5_000
PATIENTS = 500


class NullBackend:
    def send(self, *, to: str, body: str, idempotency_key: str) -> str:
        return f"null-{idempotency_key}"


class Command(BaseCommand):
    help = "Time the dispatch of N due reminders and count the queries of each batch."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--reminders", type=int, default=10_000)
        parser.add_argument("--batch", type=int, default=100)
        parser.add_argument("--backend", choices=("file", "null"), default="file")

    def handle(self, *args: Any, **options: Any) -> None:
        made: dict[str, Any] = {"tag": f"bench-reminders-{uuid.uuid4().hex[:8]}"}
        try:
            made["now"] = self._clock()
            self._setup(options["reminders"], made)
            with (
                tempfile.TemporaryDirectory() as directory,
                override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"),
            ):
                backend: Any = (
                    FileBackend(directory) if options["backend"] == "file" else NullBackend()
                )
                self._measure(options, backend, made)
        finally:
            self._cleanup(made)

    @staticmethod
    def _clock() -> datetime:
        """The run's `now`: a minute before the earliest row the dispatcher
        would take (planned and due, or sending with its lease run out), so
        that, at that moment, only this run's rows are due; moved back to
        just before the clinic's quiet hours began where it falls in them,
        so that quiet hours hold none of the run's messages."""
        earliest = Reminder.objects.filter(
            Q(status=ReminderStatus.PLANNED) | Q(status=ReminderStatus.SENDING)
        ).aggregate(due=Min("due_at"), lease=Min("claimed_until"))
        moments = [timezone.now(), *(m for m in earliest.values() if m is not None)]
        now = min(moments) - timedelta(minutes=1)
        if in_quiet_hours(now):
            now = quiet_hours_start_before(now) - BEFORE_QUIET
        return now

    def _setup(self, number: int, made: dict[str, Any]) -> None:
        tag = made["tag"]
        with transaction.atomic():
            user = User.objects.create(username=tag, first_name="Bench")
            made["user"] = user
            made["form"] = ConsentForm.objects.create(title=tag, created_by=user)
            made["sheet"] = AftercareSheet.objects.create(
                title=tag,
                introduction="-",
                do_advice="-",
                avoid_advice="-",
                warning_signs="-",
            )
            made["protocol"] = Protocol.objects.create(
                name=tag,
                indication="-",
                default_areas=["face"],
                default_sessions=6,
                interval="fortnightly",
                maintenance_months=6,
                consent_form=made["form"],
                aftercare_sheet=made["sheet"],
            )
            made["room"] = Room.objects.create(name=tag)
        patients = []
        for i in range(PATIENTS):
            patient = Patient(
                first_name="Bench",
                last_name=f"Reminder{i}",
                date_of_birth=date(1960, 1, 1) + timedelta(days=i),
                email=f"bench.reminder{i}@example.org",
                phone=f"+4479{i:08d}",
                reminder_channel=("email", "sms")[i % 2],
                consents_to_messages=True,
            )
            patient.search_text = patient_search_text(patient)
            patients.append(patient)
        made["patients"] = Patient.objects.bulk_create(patients)
        now = made["now"]
        first = timezone.now() + timedelta(days=2)
        bookings = [
            Booking(
                patient=patients[i % PATIENTS],
                practitioner=made["user"],
                room=made["room"],
                protocol=made["protocol"],
                starts_at=first + timedelta(minutes=5 * i),
                ends_at=first + timedelta(minutes=5 * i + 4),
                created_by=made["user"],
            )
            for i in range(number)
        ]
        made["bookings"] = []
        for start in range(0, number, CHUNK):
            made["bookings"].extend(Booking.objects.bulk_create(bookings[start : start + CHUNK]))
        reminders = [
            Reminder(
                kind=ReminderKind.SESSION,
                channel=(ReminderChannel.EMAIL, ReminderChannel.SMS)[i % 2],
                patient=booking.patient,
                booking=booking,
                lead_minutes=48 * 60,
                slot_starts_at=booking.starts_at,
                intended_at=now - timedelta(minutes=1),
                due_at=now - timedelta(minutes=1),
            )
            for i, booking in enumerate(made["bookings"])
        ]
        for start in range(0, number, CHUNK):
            Reminder.objects.bulk_create(reminders[start : start + CHUNK])

    def _measure(self, options: dict[str, Any], backend: Any, made: dict[str, Any]) -> None:
        number, batch = options["reminders"], options["batch"]
        queries: list[int] = []
        seconds: list[float] = []
        sent = 0
        started = time.perf_counter()
        while True:
            tick = time.perf_counter()
            with CaptureQueriesContext(connection) as captured:
                result = reminders_dispatch_batch(limit=batch, backend=backend, now=made["now"])
            if not result.claimed:
                break
            seconds.append(time.perf_counter() - tick)
            queries.append(len(captured))
            sent += result.sent
        total = time.perf_counter() - started
        left = Reminder.objects.filter(
            booking__room=made["room"], status=ReminderStatus.PLANNED
        ).count()
        self.stdout.write(
            f"reminders: {number}, batch size: {batch}, backend: {options['backend']}"
        )
        self.stdout.write(f"sent: {sent}, still planned: {left}")
        self.stdout.write(f"total: {total:.2f} s, throughput: {sent / total:.0f} reminders/s")
        self.stdout.write(
            f"per batch: median {statistics.median(seconds) * 1000:.1f} ms, "
            f"max {max(seconds) * 1000:.1f} ms"
        )
        self.stdout.write(
            f"queries per batch: min {min(queries)}, max {max(queries)} (batches: {len(queries)})"
        )

    def _cleanup(self, made: dict[str, Any]) -> None:
        with transaction.atomic():
            bookings = made.get("bookings", [])
            for start in range(0, len(bookings), CHUNK):
                ids = [b.pk for b in bookings[start : start + CHUNK]]
                Reminder.objects.filter(booking_id__in=ids).delete()
                Booking.objects.filter(pk__in=ids).delete()
            patients = made.get("patients", [])
            Patient.objects.filter(pk__in=[p.pk for p in patients]).delete()
            for name in ("protocol", "sheet", "form", "room", "user"):
                if name in made:
                    made[name].delete()
        self.stdout.write("Removed every row the benchmark made.")

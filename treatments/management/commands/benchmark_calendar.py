"""Measure the calendar's week view on a large schedule, then leave no trace.

    python manage.py benchmark_calendar --patients 50000 --bookings 200000

Inside one transaction: synthetic patients, 10 practitioners with their rooms
and hours, bookings spread over about two years around a target week that
holds 400 bookings (8 a day, Monday to Friday, for each practitioner). Then
the week view is fetched N times through Django's test client signed in as a
receptionist, timing the whole request on the server side and counting its
queries. Everything is rolled back at the end.
"""

from __future__ import annotations

import random
import statistics
import time
from datetime import date, timedelta
from datetime import time as clock
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import reverse
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from clinic.localtime import local_to_utc
from clinic.models import User
from clinic.roles import Role
from consent.models import ConsentForm
from patients.models import Patient
from patients.services import patient_search_text
from treatments.models import (
    AftercareSheet,
    Booking,
    BookingStatus,
    Interval,
    Protocol,
    Room,
    WorkingHours,
)

PRACTITIONERS = 10
WEEK_PER_DAY = 8  # bookings per practitioner per weekday in the target week
SESSION = timedelta(minutes=30)
BATCH = 5_000


class _RollbackError(Exception):
    pass


class Command(BaseCommand):
    help = "Time the calendar week view on N synthetic bookings (rolled back afterwards)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--patients", type=int, default=50_000)
        parser.add_argument("--bookings", type=int, default=200_000)
        parser.add_argument("--repeat", type=int, default=30, help="week views to time")

    def handle(self, *args: Any, **options: Any) -> None:
        # Pages name their static files; unhashed names spare a collectstatic run.
        storages = {
            **settings.STORAGES,
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        }
        try:
            with override_settings(STORAGES=storages), transaction.atomic():
                self._run(options["patients"], options["bookings"], options["repeat"])
                raise _RollbackError
        except _RollbackError:
            self.stdout.write("Rolled back: no synthetic row is left in the database.")

    def _run(self, patients: int, bookings: int, repeat: int) -> None:
        rng = random.Random(20261123)  # noqa: S311 - repeatable test data, not secrets
        started = time.perf_counter()
        people = []
        for i in range(patients):
            patient = Patient(
                first_name=rng.choice(["Amelia", "Oliver", "Isla", "George", "Ava", "Noah"]),
                last_name=f"Bench{i}",
                date_of_birth=date(1950, 1, 1) + timedelta(days=rng.randrange(20_000)),
                email=f"bench.{i}@example.org",
                phone=f"+4479{i:08d}",
                reminder_channel="email",
            )
            patient.search_text = patient_search_text(patient)
            people.append(patient)
        Patient.objects.bulk_create(people, batch_size=BATCH)
        patient_ids = list(
            Patient.objects.filter(email__startswith="bench.").values_list("id", flat=True)
        )
        group = Group.objects.get(name=Role.PRACTITIONER.value)
        staff = []
        for i in range(PRACTITIONERS):
            user = User.objects.create(username=f"bench-practitioner-{i}", first_name=f"P{i}")
            user.groups.add(group)
            staff.append(user)
            for weekday in range(6):
                WorkingHours.objects.create(
                    practitioner=user, weekday=weekday, starts=clock(8), ends=clock(21)
                )
        rooms = [Room.objects.create(name=f"Bench room {i}") for i in range(PRACTITIONERS)]
        form = ConsentForm.objects.create(title="Bench consent", created_by=staff[0])
        sheet = AftercareSheet.objects.create(
            title="Bench aftercare",
            introduction="-",
            do_advice="-",
            avoid_advice="-",
            warning_signs="-",
        )
        protocols = [
            Protocol.objects.create(
                name=f"Bench protocol {i}",
                indication="-",
                default_areas=["face"],
                default_sessions=6,
                interval=Interval.FORTNIGHTLY,
                session_minutes=45,
                maintenance_months=6,
                consent_form=form,
                aftercare_sheet=sheet,
            )
            for i in range(5)
        ]
        self.stdout.write(
            f"Inserted {patients} patients and the clinic in {time.perf_counter() - started:.1f} s"
        )

        today = timezone.localdate()
        target = today - timedelta(days=today.weekday()) + timedelta(days=7)  # next Monday
        week_days = {target + timedelta(days=d) for d in range(7)}
        week_rows = [
            (target + timedelta(days=d), 9 * 60 + 45 * q)
            for d in range(5)
            for q in range(WEEK_PER_DAY)
        ]
        history = bookings - len(week_rows) * PRACTITIONERS
        slots_per_day = 25  # every 30 minutes from 08:00
        days_needed = -(-history // (slots_per_day * PRACTITIONERS))
        history_days = [
            d
            for d in (target - timedelta(days=days_needed // 2 + 7) + timedelta(days=n)
                      for n in range(days_needed + 14))
            if d not in week_days
        ][:days_needed]  # fmt: skip
        creator = staff[0]
        counter = 0
        batch: list[Booking] = []
        started = time.perf_counter()

        def add(day: date, minute: int, length: timedelta, index: int, status: str) -> None:
            nonlocal counter, batch
            starts = local_to_utc(day, clock(minute // 60, minute % 60), fold=0)
            batch.append(
                Booking(
                    patient_id=patient_ids[counter % len(patient_ids)],
                    practitioner=staff[index],
                    room=rooms[index],
                    protocol=protocols[counter % len(protocols)],
                    starts_at=starts,
                    ends_at=starts + length,
                    status=status,
                    created_by=creator,
                )
            )
            counter += 1
            if len(batch) >= BATCH:
                Booking.objects.bulk_create(batch)
                batch = []

        made = 0
        for day in history_days:
            for slot in range(slots_per_day):
                for index in range(PRACTITIONERS):
                    if made >= history:
                        break
                    status = BookingStatus.COMPLETED if day < today else BookingStatus.BOOKED
                    add(day, 8 * 60 + 30 * slot, SESSION, index, status)
                    made += 1
        for day, minute in week_rows:
            for index in range(PRACTITIONERS):
                add(day, minute, timedelta(minutes=45), index, BookingStatus.BOOKED)
        Booking.objects.bulk_create(batch)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE treatments_booking")
            cursor.execute("ANALYZE patients_patient")
            cursor.execute("SHOW server_version")
            version = cursor.fetchone()[0]
        total = Booking.objects.count()
        span = (min(history_days[0], target), max(history_days[-1], target))
        self.stdout.write(
            f"Inserted {counter} bookings ({total} in the table) from {span[0]} to {span[1]}"
            f" in {time.perf_counter() - started:.1f} s; PostgreSQL {version}"
        )

        reception = User.objects.create(username="bench-reception")
        reception.groups.add(Group.objects.get(name=Role.RECEPTIONIST.value))
        device = TOTPDevice.objects.create(user=reception, name="bench", confirmed=True)
        host = settings.ALLOWED_HOSTS[0] if settings.ALLOWED_HOSTS else "localhost"
        client = Client(HTTP_HOST=host if host != "*" else "localhost")
        client.force_login(reception)
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session.save()
        url = f"{reverse('treatments:calendar')}?view=week&date={target.isoformat()}"
        first = client.get(url, secure=True)
        shown = first.content.decode().count('data-testid="booking"')
        if first.status_code != 200:
            self.stderr.write(f"The week view answered {first.status_code}")
            return
        timings = []
        counts = set()
        for _ in range(repeat):
            with CaptureQueriesContext(connection) as queries:
                t0 = time.perf_counter()
                response = client.get(url, secure=True)
                timings.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200
            counts.add(len(queries))
        slowest = sorted(queries.captured_queries, key=lambda q: -float(q["time"]))[:4]
        timings.sort()
        p95 = timings[max(0, round(0.95 * len(timings)) - 1)]
        self.stdout.write(
            f"\nWeek view of {target} (10 practitioners, {shown} bookings shown), {repeat} runs:"
        )
        self.stdout.write(
            f"median {statistics.median(timings):.1f} ms, p95 {p95:.1f} ms,"
            f" max {timings[-1]:.1f} ms; queries per request: {sorted(counts)}"
        )
        db_ms = sum(float(q["time"]) for q in queries.captured_queries) * 1000
        self.stdout.write(f"Database time in the last request: {db_ms:.1f} ms; slowest queries:")
        for query in slowest:
            self.stdout.write(f"  {float(query['time']) * 1000:6.1f} ms  {query['sql'][:110]}")

"""Measure the batch recall list on a large clinic, then leave no trace.

    python manage.py benchmark_recall --patients 50000 --bookings 200000

Inside one transaction: inserts synthetic patients, bookings (most completed,
with session records and cocktail lines; a few hundred lines use the measured
batch), times the recall selector and the recall page (median and p95),
prints the query plan of the cocktail-line lookup, and rolls back. Its names
start with "bench-recall" so that no other benchmark's rows are in its way.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connection, transaction
from django.test import Client
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from clinic.models import User
from clinic.roles import Role
from consent.models import ConsentForm
from patients.models import Patient
from patients.services import patient_search_text
from treatments.models import (
    AftercareSheet,
    Batch,
    Booking,
    BookingStatus,
    CocktailLine,
    Ingredient,
    Product,
    Protocol,
    Room,
    SessionRecord,
)
from treatments.selectors.catalogue import RECIPIENT_SOURCES, batch_recipients

TAG = "bench-recall"
PRACTITIONERS = 10
SLOT = timedelta(minutes=30)
CHUNK = 5_000


class _RollbackError(Exception):
    pass


def _bulk(model: Any, rows: list[Any]) -> list[Any]:
    created: list[Any] = []
    for start in range(0, len(rows), CHUNK):
        created.extend(model.objects.bulk_create(rows[start : start + CHUNK]))
    return created


def _timed(repeat: int, run: Callable[[], object]) -> tuple[float, float, float]:
    timings = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run()
        timings.append((time.perf_counter() - t0) * 1000)
    timings.sort()
    p95 = timings[min(len(timings) - 1, round(0.95 * (len(timings) - 1)))]
    return statistics.median(timings), p95, timings[-1]


class Command(BaseCommand):
    help = "Time the batch recall list on synthetic data (rolled back afterwards)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--patients", type=int, default=50_000)
        parser.add_argument("--bookings", type=int, default=200_000)
        parser.add_argument(
            "--measured-every",
            type=int,
            default=500,
            help="one completed session in N uses the measured batch",
        )
        parser.add_argument("--repeat", type=int, default=30, help="timed runs of each")

    def handle(self, *args: Any, **options: Any) -> None:
        # The page is requested in-process, inside the transaction: keep the
        # request signals from closing the connection between requests.
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        try:
            with transaction.atomic():
                self._run(options)
                raise _RollbackError
        except _RollbackError:
            self.stdout.write("Rolled back: no synthetic row is left in the database.")
        finally:
            request_started.connect(close_old_connections)
            request_finished.connect(close_old_connections)

    def _catalogue(self, author: User) -> tuple[Protocol, list[Batch], Batch]:
        form = ConsentForm.objects.create(title=f"{TAG} consent", created_by=author)
        sheet = AftercareSheet.objects.create(
            title=f"{TAG} aftercare",
            introduction="-",
            do_advice="-",
            avoid_advice="-",
            warning_signs="-",
        )
        protocol = Protocol.objects.create(
            name=f"{TAG} protocol",
            indication="-",
            default_areas=["face"],
            default_sessions=6,
            interval="fortnightly",
            maintenance_months=6,
            consent_form=form,
            aftercare_sheet=sheet,
        )
        batches = []
        received = timezone.localdate() - timedelta(days=600)
        for p in range(5):
            ingredient = Ingredient.objects.create(name=f"{TAG} ingredient {p}", category="vitamin")
            product = Product.objects.create(name=f"{TAG} product {p}", maker="Benchmark")
            product.ingredients.set([ingredient])
            for lot in range(4):
                batches.append(
                    Batch.objects.create(
                        product=product,
                        lot_number=f"BENCH-{p}-{lot}",
                        received_on=received,
                        expiry_date=received + timedelta(days=900),
                        quantity_received=1000,
                    )
                )
        return protocol, batches, batches[0]

    def _run(self, options: dict[str, Any]) -> None:
        rng = random.Random(20261123)  # noqa: S311 - repeatable test data, not secrets
        n_patients, n_bookings = options["patients"], options["bookings"]
        started = time.perf_counter()

        staff = _bulk(
            User,
            [
                User(username=f"{TAG}-practitioner-{i}", first_name="Bench", last_name=f"P{i}")
                for i in range(PRACTITIONERS)
            ],
        )
        rooms = _bulk(Room, [Room(name=f"{TAG} room {i}") for i in range(PRACTITIONERS)])
        protocol, batches, measured = self._catalogue(staff[0])
        others = [b for b in batches if b != measured]

        patient_rows = []
        for i in range(n_patients):
            patient = Patient(
                first_name="Bench",
                last_name=f"Patient{i}",
                date_of_birth=date(1950, 1, 1) + timedelta(days=i % 20_000),
                email=f"bench.patient{i}@example.org",
                phone=f"+4479{i:08d}",
                reminder_channel="email",
            )
            patient.search_text = patient_search_text(patient)
            patient_rows.append(patient)
        patients = _bulk(Patient, patient_rows)

        # Booking i: practitioner and room i % 10, in slot i // 10 from a start
        # in the past, so no practitioner, room or patient overlaps.
        first_slot = timezone.now().replace(microsecond=0, second=0, minute=0) - SLOT * (
            n_bookings // PRACTITIONERS + 48
        )
        booking_rows = []
        for i in range(n_bookings):
            roll = rng.random()
            status = (
                BookingStatus.COMPLETED
                if roll < 0.85
                else BookingStatus.NO_SHOW
                if roll < 0.93
                else BookingStatus.CANCELLED
            )
            starts = first_slot + SLOT * (i // PRACTITIONERS)
            booking_rows.append(
                Booking(
                    patient=patients[i % n_patients],
                    practitioner=staff[i % PRACTITIONERS],
                    room=rooms[i % PRACTITIONERS],
                    protocol=protocol,
                    starts_at=starts,
                    ends_at=starts + SLOT,
                    status=status,
                    cancel_reason="Benchmark" if status == BookingStatus.CANCELLED else "",
                    created_by=staff[0],
                )
            )
        bookings = _bulk(Booking, booking_rows)
        completed = [b for b in bookings if b.status == BookingStatus.COMPLETED]
        records = _bulk(
            SessionRecord,
            [
                SessionRecord(
                    booking=b,
                    numbing_cream=False,
                    completed_at=b.ends_at,
                    completed_by=b.practitioner,
                )
                for b in completed
            ],
        )
        line_rows = []
        every = options["measured_every"]
        for n, record in enumerate(records):
            chosen = [measured] if n % every == 0 else []
            chosen += rng.sample(others, k=1 + (n % 2))
            for batch in chosen:
                line_rows.append(
                    CocktailLine(
                        session=record,
                        batch=batch,
                        amount=Decimal("2.00"),
                        unit="ml",
                        area="face",
                        technique="nappage",
                        depth_mm=Decimal("1.0"),
                        needle_gauge=32,
                        device="meso_gun",
                    )
                )
        _bulk(CocktailLine, line_rows)
        with connection.cursor() as cursor:
            for table in (
                "patients_patient",
                "treatments_booking",
                "treatments_sessionrecord",
                "treatments_cocktailline",
            ):
                cursor.execute(f"ANALYZE {table}")
            cursor.execute("SHOW server_version")
            version = cursor.fetchone()[0]
        measured_lines = sum(1 for line in line_rows if line.batch is measured)
        self.stdout.write(
            f"Inserted {n_patients} patients, {n_bookings} bookings, {len(records)} session "
            f"records, {len(line_rows)} cocktail lines ({measured_lines} with the measured "
            f"batch) in {time.perf_counter() - started:.1f} s; PostgreSQL {version}"
        )

        rows = batch_recipients(batch=measured)
        self.stdout.write(f"Recall list of the measured batch: {len(rows)} rows")
        for source in RECIPIENT_SOURCES:
            queryset = source(measured)
            if queryset.model is CocktailLine:
                self.stdout.write("\nPlan of the cocktail-line lookup:")
                self.stdout.write(queryset.explain(analyze=True))

        manager = User.objects.create(username=f"{TAG}-manager", first_name="Bench")
        manager.groups.set(manager.groups.model.objects.filter(name=str(Role.MANAGER)))
        device = TOTPDevice.objects.create(user=manager, name="benchmark", confirmed=True)
        client = Client(HTTP_HOST="localhost")
        client.force_login(manager)
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session.save()
        url = measured.get_absolute_url()
        response = client.get(url, secure=True)
        if response.status_code != 200:
            self.stderr.write(
                f"The recall page answered {response.status_code} {response.get('Location', '')}"
            )
            return

        repeat = options["repeat"]
        self.stdout.write(f"\n{'what':<36} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}")
        for label, run in (
            ("recall selector (batch_recipients)", lambda: batch_recipients(batch=measured)),
            ("recall page (GET, whole request)", lambda: client.get(url, secure=True)),
        ):
            median, p95, worst = _timed(repeat, run)
            self.stdout.write(f"{label:<36} {median:>10.1f} {p95:>8.1f} {worst:>8.1f}")

"""Measure the patient search box on a large register, then leave no trace.

    python manage.py benchmark_search --patients 50000

Inserts synthetic patients inside one transaction (one in 50 with a name to
fold: Müller, O-Grady...), runs the search selector the way the page does and
the duplicate check the way registration does, prints timings and the plans of
the selector's own queries, and rolls back.
"""

from __future__ import annotations

import random
import statistics
import time
from datetime import date, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from clinic.models import User
from clinic.roles import Role
from patients.models import Patient
from patients.selectors import patient_possible_duplicates, patient_search
from patients.services import patient_search_text

FIRST = [
    "Amelia",
    "Oliver",
    "Isla",
    "George",
    "Ava",
    "Noah",
    "Mia",
    "Leo",
    "Ivy",
    "Arthur",
    "Freya",
    "Oscar",
    "Lily",
    "Harry",
    "Grace",
    "Jack",
    "Sophia",
    "Theo",
    "Rosie",
    "Finn",
]
LAST = [
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Patel",
    "Wright",
    "Robinson",
    "Thompson",
    "Evans",
    "Walker",
    "White",
    "Roberts",
    "Green",
    "Hall",
    "Wood",
    "Jackson",
    "Clarke",
    "Hughes",
    "Edwards",
    "Turner",
    "Hill",
    "Moore",
    "Khan",
]
# One patient in 50 gets a name that needs folding, typed as the clinic would
# store it (accents, a typographic apostrophe, a decomposed accent).
ACCENTED = [
    "Müller",
    "Bélanger",
    "O\u2019Grady",
    "Ødegård",
    "Łukasiewicz",
    "Be\u0301langer",
]


class _RollbackError(Exception):
    pass


class Command(BaseCommand):
    help = "Time the patient search on N synthetic patients (rolled back afterwards)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--patients", type=int, default=50_000)
        parser.add_argument("--repeat", type=int, default=30, help="searches per query kind")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            with transaction.atomic():
                self._run(options["patients"], options["repeat"])
                raise _RollbackError
        except _RollbackError:
            self.stdout.write("Rolled back: no synthetic patient is left in the database.")
        if not connection.in_atomic_block:
            # The rolled-back rows stay in the table and its trigram index as
            # dead entries until vacuumed; left there, they slow the next run
            # (eight runs in a row doubled the name-part search).
            with connection.cursor() as cursor:
                cursor.execute("VACUUM (ANALYZE) patients_patient")
            self.stdout.write("Vacuumed patients_patient.")

    def _run(self, count: int, repeat: int) -> None:
        rng = random.Random(20261122)  # noqa: S311 - repeatable test data, not secrets
        started = time.perf_counter()
        batch = []
        for i in range(count):
            first, last = rng.choice(FIRST), f"{rng.choice(LAST)}{i % 97 or ''}"
            if i % 50 == 0:
                last = ACCENTED[(i // 50) % len(ACCENTED)]
            patient = Patient(
                first_name=first,
                last_name=last,
                date_of_birth=date(1940, 1, 1) + timedelta(days=rng.randrange(25_000)),
                email=f"{first}.{last}.{i}@example.org".lower(),
                phone=f"+4479{i:08d}",
                reminder_channel="email",
            )
            patient.search_text = patient_search_text(patient)
            batch.append(patient)
            if len(batch) == 5_000:
                Patient.objects.bulk_create(batch)
                batch = []
        Patient.objects.bulk_create(batch)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE patients_patient")
            cursor.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_indexes"
                " WHERE indexname = 'patients_patient_search_trgm')"
            )
            indexed = cursor.fetchone()[0]
        self.stdout.write(f"Inserted {count} patients in {time.perf_counter() - started:.1f} s")
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            version = cursor.fetchone()[0]
        self.stdout.write(f"PostgreSQL {version}; trigram index: {'yes' if indexed else 'no'}")

        user = User(username="benchmark")
        user._roles_cache = frozenset({Role.RECEPTIONIST})
        kinds = {
            "name part (3 letters)": lambda i: rng.choice(LAST)[:3],
            "full name": lambda i: f"{rng.choice(FIRST)} {rng.choice(LAST)}",
            "phone part (6 digits)": lambda i: f"{rng.randrange(count):08d}"[-6:],
            "email part": lambda i: f"{rng.choice(FIRST).lower()}.{rng.choice(LAST).lower()}",
            "date of birth": lambda i: (
                date(1940, 1, 1) + timedelta(days=rng.randrange(25_000))
            ).strftime("%d/%m/%Y"),
            "no match": lambda i: "zzqx",
            "accented name, typed plain": lambda i: rng.choice(
                ["muller", "mueller", "ogrady", "belanger", "odegaard", "lukasiewicz"]
            ),
            "name typed with accents": lambda i: rng.choice(
                ["Müller", "O'Grady", "Ødegård", "Bélanger", f"{rng.choice(FIRST)} Müller"]
            ),
        }  # fmt: skip
        self.stdout.write(
            f"\n{'query':<28} {'median ms':>10} {'p95 ms':>8} {'max ms':>8} {'min ms':>8}"
        )
        for label, make in kinds.items():
            timings = []
            for i in range(repeat):
                query = make(i)
                t0 = time.perf_counter()
                patient_search(user=user, query=query)
                timings.append((time.perf_counter() - t0) * 1000)
            self._row(label, timings)
        timings = []
        for _i in range(repeat):
            born = date(1940, 1, 1) + timedelta(days=rng.randrange(25_000))
            t0 = time.perf_counter()
            patient_possible_duplicates(
                user=user,
                first_name=rng.choice(FIRST),
                last_name="Mueller",
                date_of_birth=born,
                email=f"{rng.choice(FIRST)}.x@example.org",
                phone=f"+4479{rng.randrange(count):08d}",
            )
            timings.append((time.perf_counter() - t0) * 1000)
        self._row("duplicate check", timings)
        plans = (
            ("a phone search", "123456"),
            ("a folded name search", "Müller"),
            ("an email part", "amelia.smith"),
        )
        for label, query in plans:
            self.stdout.write(f"\nPlan for {label} ({query!r}, the selector's own query):")
            self.stdout.write(self._plan(user, query))

    def _row(self, label: str, timings: list[float]) -> None:
        timings.sort()
        p95 = timings[max(0, int(len(timings) * 0.95) - 1)]
        self.stdout.write(
            f"{label:<28} {statistics.median(timings):>10.1f} {p95:>8.1f} {timings[-1]:>8.1f}"
            f" {timings[0]:>8.1f}"
        )

    def _plan(self, user: User, query: str) -> str:
        """EXPLAIN ANALYZE of exactly the SQL the search selector ran."""
        with CaptureQueriesContext(connection) as queries:
            patient_search(user=user, query=query)
        [sql] = [q["sql"] for q in queries.captured_queries if "search_text" in q["sql"]]
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, COSTS OFF) {sql}")
            return "\n".join(row[0] for row in cursor.fetchall())

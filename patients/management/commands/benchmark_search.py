"""Measure the patient search on a large register, beside the anchor, then leave no trace.

    python manage.py benchmark_search --patients 50000 500000

Inside one transaction, rolled back at the end: inserts synthetic patients
with one INSERT ... SELECT generate_series per size (one in 50 with a name to
fold: Müller, O'Grady...; their search text checked against the services'
own `patient_search_text`), then at each size, in ascending order (the rows
of the smaller register stay and the larger one is completed from them):

- the anchor (`clinic.benchmarking`), signed in and out;
- the search selector for each kind of query (name parts, two-letter terms,
  phone, email, birth date, accented names) and the duplicate check;
- the search results page, its htmx results (what each keystroke of the
  search box fetches) and the booking form's patient typeahead, through the
  test client signed in as a receptionist;
- the query plans (EXPLAIN ANALYZE) of the selector for a late-alphabet name
  part and a two-letter term.

Then a table of each figure's growth from the smallest register to the
largest. Only this run's rows are made (a staff account, its session and
audit events, the patients): all rolled back, then the table vacuumed.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from clinic.benchmarking import (
    TABLE_HEAD,
    Timings,
    anchors,
    benchmark_urls,
    load_average,
    signed_in_client,
    staff_member,
    time_request,
)
from clinic.models import User
from clinic.roles import Role
from patients.models import Patient
from patients.selectors import patient_possible_duplicates, patient_search
from patients.services import patient_search_text

FIRST = [
    "Amelia", "Oliver", "Isla", "George", "Ava", "Noah", "Mia", "Leo", "Ivy", "Arthur",
    "Freya", "Oscar", "Lily", "Harry", "Grace", "Jack", "Sophia", "Theo", "Rosie", "Finn",
]  # fmt: skip
LAST = [
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel",
    "Wright", "Robinson", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall",
    "Wood", "Jackson", "Clarke", "Hughes", "Edwards", "Turner", "Hill", "Moore", "Khan",
]  # fmt: skip
# One patient in 50 gets a name that needs folding, typed as the clinic would
# store it (accents, a typographic apostrophe, a decomposed accent), with the
# plain spelling its synthetic email address uses.
ACCENTED = [
    ("Müller", "muller"),
    ("Bélanger", "belanger"),
    ("O\u2019Grady", "ogrady"),
    ("Ødegård", "odegard"),
    ("Łukasiewicz", "lukasiewicz"),
    ("Be\u0301langer", "belanger"),
]
LATE_ALPHABET = ("smi", "wil")
TWO_LETTERS = ("sm", "wi")

# Patients number i from `low` to `high`: first name, last name (a number
# 1-96 appended, so names differ), birth date and the accented names drawn
# from i by PostgreSQL's integer hash; phone +4479 and i on 8 digits; email
# first.last.i@example.org. The search text is what patient_search_text
# writes, built in SQL (checked against it after each insert).
INSERT_SQL = """
INSERT INTO patients_patient (
    uuid, first_name, last_name, date_of_birth, email, phone, address, postcode,
    emergency_contact_name, emergency_contact_phone, gp_details, reminder_channel,
    consents_to_messages, search_text, created_at, updated_at, version
)
SELECT gen_random_uuid(), first, last, born, email, '+4479' || digits, '', '', '', '', '',
    'email', false,
    names || ' ' || replace(email, '.', '') || ' 4479' || digits || ' 079' || digits
        || ' ' || to_char(born, 'YYYY-MM-DD') || ' ' || to_char(born, 'DD/MM/YYYY'),
    now(), now(), 1
FROM (
    SELECT first, last, born, digits,
        CASE WHEN accented THEN accented_part ELSE lower(first || ' ' || last) END AS names,
        lower(first) || '.' || CASE WHEN accented THEN plain_last ELSE lower(last) END
            || '.' || i || '@example.org' AS email
    FROM (
        SELECT i, accented, lpad(i::text, 8, '0') AS digits,
            first_names[f] AS first,
            CASE WHEN accented THEN accented_last[a]
                ELSE last_names[1 + abs(hashint4(i + 7)) %% 27]
                    || CASE WHEN i %% 97 = 0 THEN '' ELSE (i %% 97)::text END
            END AS last,
            accented_names[(a - 1) * 20 + f] AS accented_part,
            plain[a] AS plain_last,
            date '1940-01-01' + abs(hashint4(i + 13)) %% 25000 AS born
        FROM (
            SELECT i, 1 + abs(hashint4(i)) %% 20 AS f, 1 + (i / 50) %% 6 AS a,
                i %% 50 = 0 AS accented
            FROM generate_series(%(low)s::int, %(high)s::int) AS i
        ) AS drawn,
        (SELECT %(first)s::text[] AS first_names, %(last)s::text[] AS last_names,
                %(accented_last)s::text[] AS accented_last, %(plain)s::text[] AS plain,
                %(accented_names)s::text[] AS accented_names) AS lists
    ) AS named
) AS made
"""


def _searching(user: User, make: Callable[[int], str]) -> Callable[[int], object]:
    def search(i: int) -> object:
        return patient_search(user=user, query=make(i))

    return search


class _RollbackError(Exception):
    pass


class Command(BaseCommand):
    help = (
        "Time the patient search (selector, results page, typeaheads) on N synthetic "
        "patients beside the anchor, with plans; rolled back afterwards."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--patients",
            type=int,
            nargs="+",
            default=[50_000],
            help="register sizes, measured in ascending order in one run (e.g. 50000 500000)",
        )
        parser.add_argument("--repeat", type=int, default=20, help="requests per figure")

    def handle(self, *args: Any, **options: Any) -> None:
        sizes = sorted(set(options["patients"]))
        if sizes[0] < 1_000 or sizes[-1] > 5_000_000:
            raise CommandError("--patients takes sizes from 1,000 to 5,000,000.")
        try:
            with transaction.atomic(), benchmark_urls():
                self._run(sizes, max(3, options["repeat"]))
                raise _RollbackError
        except _RollbackError:
            self.stdout.write("\nRolled back: no synthetic patient, account or event is left.")
        if not connection.in_atomic_block:
            # The rolled-back rows stay in the table and its trigram index as
            # dead entries until vacuumed; left there, they slow the next run.
            with connection.cursor() as cursor:
                cursor.execute("VACUUM (ANALYZE) patients_patient")
            self.stdout.write("Vacuumed patients_patient.")

    def _run(self, sizes: list[int], repeat: int) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            version = cursor.fetchone()[0]
            cursor.execute("SELECT count(*) FROM patients_patient")
            already = cursor.fetchone()[0]
        self.stdout.write(f"PostgreSQL {version}; {already} patients already in the database.")
        user = staff_member(f"bench-search-{time.monotonic_ns()}", Role.RECEPTIONIST)
        page = signed_in_client(user)
        htmx = signed_in_client(user)
        htmx.defaults["HTTP_HX_REQUEST"] = "true"
        results: dict[int, dict[str, Timings]] = {}
        anchor_of: dict[int, Timings] = {}
        made = 0
        for size in sizes:
            started = time.perf_counter()
            self._insert(made + 1, size)
            made = size
            self.stdout.write(
                f"\n## {size:,} synthetic patients (inserted in"
                f" {time.perf_counter() - started:.0f} s)\n"
            )
            anchor, anchor_out = anchors(page, repeat=repeat)
            figures = {
                **self._selector(user, size, repeat),
                **self._pages(page, htmx, repeat),
            }
            results[size], anchor_of[size] = figures, anchor
            self.stdout.write(f"Load average: {load_average()}\n")
            self.stdout.write(TABLE_HEAD)
            self.stdout.write(anchor.row("anchor, signed in", anchor))
            self.stdout.write(anchor_out.row("anchor, signed out", anchor))
            for label, timings in figures.items():
                self.stdout.write(timings.row(label, anchor))
            self._plans(user)
        if len(sizes) > 1:
            self._growth(sizes[0], sizes[-1], results, anchor_of)

    def _insert(self, low: int, high: int) -> None:
        """Patients numbered `low` to `high`, one statement; then ANALYZE and a check."""
        accented_names = [
            patient_search_text(Patient(first_name=first, last_name=last))
            for last, _plain in ACCENTED
            for first in FIRST
        ]
        with connection.cursor() as cursor:
            cursor.execute(
                INSERT_SQL,
                {
                    "low": low,
                    "high": high,
                    "first": FIRST,
                    "last": LAST,
                    "accented_last": [last for last, _plain in ACCENTED],
                    "plain": [plain for _last, plain in ACCENTED],
                    "accented_names": accented_names,
                },
            )
            cursor.execute("ANALYZE patients_patient")
        # The search text written in SQL must be what the services write.
        sample = Patient.objects.filter(email__endswith="@example.org", phone__startswith="+4479")
        for patient in sample.filter(pk__in=sample.order_by("-pk").values("pk")[:200]):
            if patient.search_text != patient_search_text(patient):
                raise CommandError(
                    f"Synthetic search text differs from the services' for {patient.pk}:"
                    f" {patient.search_text!r} != {patient_search_text(patient)!r}"
                )

    def _selector(self, user: User, count: int, repeat: int) -> dict[str, Timings]:
        rng = random.Random(20261122)  # noqa: S311 - repeatable test data, not secrets
        kinds: dict[str, Callable[[int], str]] = {
            "selector: late-alphabet name part (smi, wil)": lambda i: LATE_ALPHABET[i % 2],
            "selector: two-letter term (sm, wi)": lambda i: TWO_LETTERS[i % 2],
            "selector: name part (3 letters)": lambda i: rng.choice(LAST)[:3],
            "selector: full name": lambda i: f"{rng.choice(FIRST)} {rng.choice(LAST)}",
            "selector: phone part (6 digits)": lambda i: f"{rng.randrange(count):08d}"[-6:],
            "selector: email part": lambda i: (
                f"{rng.choice(FIRST).lower()}.{rng.choice(LAST).lower()}"
            ),
            "selector: date of birth": lambda i: (
                date(1940, 1, 1) + timedelta(days=rng.randrange(25_000))
            ).strftime("%d/%m/%Y"),
            "selector: no match": lambda i: "zzqx",
            "selector: accented name, typed plain": lambda i: rng.choice(
                ["muller", "mueller", "ogrady", "belanger", "odegaard", "lukasiewicz"]
            ),
            "selector: name typed with accents": lambda i: rng.choice(
                ["Müller", "O'Grady", "Ødegård", "Bélanger", f"{rng.choice(FIRST)} Müller"]
            ),
        }  # fmt: skip
        figures: dict[str, Timings] = {}
        for label, make in kinds.items():
            figures[label] = self._timed(repeat, _searching(user, make))
        figures["selector: duplicate check"] = self._timed(
            repeat,
            lambda i: patient_possible_duplicates(
                user=user,
                first_name=rng.choice(FIRST),
                last_name="Mueller",
                date_of_birth=date(1940, 1, 1) + timedelta(days=rng.randrange(25_000)),
                email=f"{rng.choice(FIRST)}.x@example.org",
                phone=f"+4479{rng.randrange(count):08d}",
            ),
        )
        return figures

    @staticmethod
    def _timed(repeat: int, call: Callable[[int], object]) -> Timings:
        call(-1)  # warm
        samples = []
        for i in range(repeat):
            started = time.perf_counter()
            call(i)
            samples.append((time.perf_counter() - started) * 1000)
        return Timings(samples=tuple(samples))

    def _pages(self, page: Client, htmx: Client, repeat: int) -> dict[str, Timings]:
        search = reverse("patients:list")
        booking = reverse("treatments:booking_patient_search")

        def at(url: str, query: str) -> str:
            return f"{url}?{urlencode({'q': query})}"

        figures = {
            "results page 'smi'": time_request(page, at(search, "smi"), repeat=repeat),
            "results page 'amelia smith'": time_request(
                page, at(search, "amelia smith"), repeat=repeat
            ),
        }
        # The search box as a person types "wilson": what each keystroke fetches.
        for typed in ("wi", "wil", "wils", "wilson"):
            figures[f"search box (htmx) '{typed}'"] = time_request(
                htmx, at(search, typed), repeat=repeat
            )
        for typed in ("sm", "smi"):
            figures[f"booking typeahead '{typed}'"] = time_request(
                htmx, at(booking, typed), repeat=repeat
            )
        return figures

    def _plans(self, user: User) -> None:
        for label, query in (
            ("a late-alphabet name part", LATE_ALPHABET[0]),
            ("a two-letter term", TWO_LETTERS[0]),
        ):
            self.stdout.write(f"\nPlan for {label} ({query!r}, the selector's own query):\n")
            self.stdout.write("```")
            self.stdout.write(self._plan(user, query))
            self.stdout.write("```")

    def _plan(self, user: User, query: str) -> str:
        """EXPLAIN ANALYZE of exactly the SQL the search selector ran."""
        with CaptureQueriesContext(connection) as queries:
            patient_search(user=user, query=query)
        [sql] = [q["sql"] for q in queries.captured_queries if "search_text" in q["sql"]]
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, COSTS OFF) {sql}")
            return "\n".join(row[0] for row in cursor.fetchall())

    def _growth(
        self,
        small: int,
        large: int,
        results: dict[int, dict[str, Timings]],
        anchor_of: dict[int, Timings],
    ) -> None:
        self.stdout.write(f"\n## Growth from {small:,} to {large:,} patients\n")
        self.stdout.write(f"Load average: {load_average()}\n")
        self.stdout.write(
            f"| figure | median ms at {small:,} | median ms at {large:,} | growth"
            " | x anchor, small | x anchor, large |\n|---|---|---|---|---|---|"
        )
        for label, before in results[small].items():
            after = results[large][label]
            self.stdout.write(
                f"| {label} | {before.median:.1f} | {after.median:.1f}"
                f" | {after.median / before.median:.2f} | {before.ratio_to(anchor_of[small]):.1f}"
                f" | {after.ratio_to(anchor_of[large]):.1f} |"
            )

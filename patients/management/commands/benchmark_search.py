"""Measure the patient search on a large register, beside the anchor, then leave no trace.

    python manage.py benchmark_search --patients 50000 500000

Inside one transaction, rolled back at the end: inserts synthetic patients
with one INSERT ... SELECT generate_series per size (one in 50 with a name to
fold: Müller, O'Grady...; their search text checked against the services'
own `patient_search_text`, and their words in the word index against it),
then at each size, in ascending order (the rows of the smaller register stay
and the larger one is completed from them):

- the anchor (`clinic.benchmarking`), signed in and out;
- the search selector for each kind of query (name parts, two-letter terms,
  phone, email, birth date, accented names, terms found inside a word) and
  the duplicate check;
- the search results page, its htmx results (what each keystroke of the
  search box fetches) and the booking form's patient typeahead, through the
  test client signed in as a receptionist;
- the query plans (EXPLAIN ANALYZE) of every query the selector ran for two
  late-alphabet name parts, a two-letter term and a term found inside words.

Each figure has its wall-clock time and its CPU time: this process's and the
database server's process for the connection (from /proc, when the server
runs on this machine), which the machine's other work disturbs far less.
Then a table of each figure's growth from the smallest register to the
largest. Only this run's rows are made (a staff account, its session and
audit events, the patients and their words): all rolled back, then the
tables vacuumed.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from clinic.benchmarking import (
    ANCHOR_PATH,
    ANCHOR_SIGNED_OUT_PATH,
    Timings,
    benchmark_urls,
    load_average,
    signed_in_client,
    staff_member,
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
# Found only inside words: no word of the register starts with them.
INSIDE_WORDS = ("mit", "ilso")
# The plans printed: (what the term is, the term).
PLANS = (
    ("a late-alphabet name part", "smi"),
    ("a late-alphabet name part", "wil"),
    ("a two-letter term", "sm"),
    ("a term found inside words", "mit"),
)

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


def _signed_out_client() -> Client:
    """A test client of nobody, speaking to a host the settings allow (as
    the anchor of `clinic.benchmarking` does)."""
    host = next((h for h in settings.ALLOWED_HOSTS if h not in ("*", "")), "localhost")
    return Client(HTTP_HOST=host.lstrip("."))


class _CpuClock:
    """CPU time, in nanoseconds, of this process and of the database server's
    process serving `connection` (`/proc/<pid>/schedstat`; this process's
    alone when the server is elsewhere or the file cannot be read)."""

    def __init__(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            self.server = f"/proc/{cursor.fetchone()[0]}/schedstat"
        self.with_server = self._server_ns() is not None

    def _server_ns(self) -> int | None:
        try:
            with open(self.server) as handle:
                return int(handle.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def now(self) -> int:
        return time.process_time_ns() + (self._server_ns() or 0)

    @property
    def label(self) -> str:
        return "this process and the database server's" if self.with_server else "this process"


@dataclass(frozen=True)
class Figure:
    """One figure: wall-clock times and CPU times (ms) of each repetition."""

    wall: Timings
    cpu: tuple[float, ...]

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)

    def row(self, label: str, anchor: Figure) -> str:
        ratio = self.cpu_median / anchor.cpu_median if anchor.cpu_median else float("inf")
        return (
            self.wall.row(label, anchor.wall).rstrip() + f" {self.cpu_median:.2f} | {ratio:.1f} |"
        )


TABLE_HEAD = (
    "| page | median ms | p95 ms | max ms | queries | x anchor | CPU ms | CPU x anchor |\n"
    "|---|---|---|---|---|---|---|---|"
)


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
            # The rolled-back rows stay in the tables and their indexes as
            # dead entries until vacuumed; left there, they slow the next run.
            tables = ["patients_patient", *self._word_table()]
            with connection.cursor() as cursor:
                for table in tables:
                    cursor.execute(f"VACUUM (ANALYZE) {table}")
            self.stdout.write(f"Vacuumed {' and '.join(tables)}.")

    @staticmethod
    def _word_table() -> list[str]:
        """The word index's table, where the schema has one."""
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass('patients_patientsearchword')::text")
            table = cursor.fetchone()[0]
        return [table] if table else []

    def _run(self, sizes: list[int], repeat: int) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            version = cursor.fetchone()[0]
            cursor.execute("SELECT count(*) FROM patients_patient")
            already = cursor.fetchone()[0]
        self.stdout.write(f"PostgreSQL {version}; {already} patients already in the database.")
        self.clock = _CpuClock()  # the connection's server process, now it is open
        self.stdout.write(f"CPU time: {self.clock.label}.")
        user = staff_member(f"bench-search-{time.monotonic_ns()}", Role.RECEPTIONIST)
        page = signed_in_client(user)
        htmx = signed_in_client(user)
        htmx.defaults["HTTP_HX_REQUEST"] = "true"
        results: dict[int, dict[str, Figure]] = {}
        anchor_of: dict[int, Figure] = {}
        made = 0
        for size in sizes:
            started = time.perf_counter()
            self._insert(made + 1, size)
            made = size
            self.stdout.write(
                f"\n## {size:,} synthetic patients (inserted in"
                f" {time.perf_counter() - started:.0f} s; {self._sizes()})\n"
            )
            anchor = self._request(page, ANCHOR_PATH, repeat)
            anchor_out = self._request(_signed_out_client(), ANCHOR_SIGNED_OUT_PATH, repeat)
            figures = {
                **self._selector(user, size, repeat),
                **self._pages(page, htmx, repeat),
            }
            results[size], anchor_of[size] = figures, anchor
            self.stdout.write(f"Load average: {load_average()}\n")
            self.stdout.write(TABLE_HEAD)
            self.stdout.write(anchor.row("anchor, signed in", anchor))
            self.stdout.write(anchor_out.row("anchor, signed out", anchor))
            for label, figure in figures.items():
                self.stdout.write(figure.row(label, anchor))
            self._plans(user)
        if len(sizes) > 1:
            self._growth(sizes[0], sizes[-1], results, anchor_of)

    @staticmethod
    def _sizes() -> str:
        """The on-disk size of the patients' table and of the search's indexes."""
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT relname, pg_size_pretty(pg_total_relation_size(oid)) FROM pg_class"
                " WHERE relname IN ('patients_patient', 'patients_patient_search_trgm',"
                " 'patients_patientsearchword') ORDER BY relname"
            )
            return ", ".join(f"{name} {size}" for name, size in cursor.fetchall())

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
            for table in ("patients_patient", *self._word_table()):
                cursor.execute(f"ANALYZE {table}")
        # The search text written in SQL must be what the services write, and
        # the word index must hold its words.
        sample = Patient.objects.filter(email__endswith="@example.org", phone__startswith="+4479")
        checked = list(sample.filter(pk__in=sample.order_by("-pk").values("pk")[:200]))
        for patient in checked:
            if patient.search_text != patient_search_text(patient):
                raise CommandError(
                    f"Synthetic search text differs from the services' for {patient.pk}:"
                    f" {patient.search_text!r} != {patient_search_text(patient)!r}"
                )
        if self._word_table():
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM patients_patientsearchword WHERE patient_id = ANY(%s)",
                    [[p.pk for p in checked]],
                )
                words = cursor.fetchone()[0]
            if words != sum(len(set(p.search_text.split())) for p in checked):
                raise CommandError("The word index does not hold the synthetic patients' words.")

    def _selector(self, user: User, count: int, repeat: int) -> dict[str, Figure]:
        rng = random.Random(20261122)  # noqa: S311 - repeatable test data, not secrets
        kinds: dict[str, Callable[[int], str]] = {
            "selector: late-alphabet name part (smi, wil)": lambda i: LATE_ALPHABET[i % 2],
            "selector: two-letter term (sm, wi)": lambda i: TWO_LETTERS[i % 2],
            "selector: name part (3 letters)": lambda i: rng.choice(LAST)[:3],
            "selector: full name": lambda i: f"{rng.choice(FIRST)} {rng.choice(LAST)}",
            "selector: full name being typed (first name, 2 letters)": lambda i: (
                f"{rng.choice(FIRST)} {rng.choice(LAST)[:2]}"
            ),
            "selector: phone part (6 digits)": lambda i: f"{rng.randrange(count):08d}"[-6:],
            "selector: start of a phone number (8 digits)": lambda i: (
                f"079{rng.randrange(count):08d}"[:8]
            ),
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
            "selector: inside a word (mit, ilso)": lambda i: INSIDE_WORDS[i % 2],
        }  # fmt: skip
        figures: dict[str, Figure] = {}
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

    def _timed(self, repeat: int, call: Callable[[int], object]) -> Figure:
        call(-1)  # warm
        samples, cpu = [], []
        for i in range(repeat):
            started, used = time.perf_counter(), self.clock.now()
            call(i)
            samples.append((time.perf_counter() - started) * 1000)
            cpu.append((self.clock.now() - used) / 1e6)
        return Figure(Timings(samples=tuple(samples)), tuple(cpu))

    def _request(self, client: Client, url: str, repeat: int) -> Figure:
        """GET `url` twice untimed, then `repeat` times timed (as
        `clinic.benchmarking.time_request`), with the CPU time of each."""
        for _ in range(2):
            response = client.get(url, secure=True)
            if response.status_code != 200:
                raise CommandError(f"{url} answered {response.status_code}")
        samples, cpu, counts = [], [], []
        for _ in range(repeat):
            with CaptureQueriesContext(connection) as queries:
                started, used = time.perf_counter(), self.clock.now()
                response = client.get(url, secure=True)
                samples.append((time.perf_counter() - started) * 1000)
                cpu.append((self.clock.now() - used) / 1e6)
            if response.status_code != 200:
                raise CommandError(f"{url} answered {response.status_code}")
            counts.append(len(queries))
        return Figure(Timings(samples=tuple(samples), queries=tuple(counts)), tuple(cpu))

    def _pages(self, page: Client, htmx: Client, repeat: int) -> dict[str, Figure]:
        search = reverse("patients:list")
        booking = reverse("treatments:booking_patient_search")

        def at(url: str, query: str) -> str:
            return f"{url}?{urlencode({'q': query})}"

        figures = {
            "results page 'smi'": self._request(page, at(search, "smi"), repeat),
            "results page 'amelia smith'": self._request(page, at(search, "amelia smith"), repeat),
        }
        # The search box as a person types "wilson": what each keystroke fetches.
        for typed in ("wi", "wil", "wils", "wilson"):
            figures[f"search box (htmx) '{typed}'"] = self._request(htmx, at(search, typed), repeat)
        for typed in ("sm", "smi"):
            figures[f"booking typeahead '{typed}'"] = self._request(
                htmx, at(booking, typed), repeat
            )
        return figures

    def _plans(self, user: User) -> None:
        for label, query in PLANS:
            self.stdout.write(f"\nPlan for {label} ({query!r}, the selector's own queries):\n")
            self.stdout.write("```")
            self.stdout.write("\n\n".join(self._plan(user, query)))
            self.stdout.write("```")

    def _plan(self, user: User, query: str) -> list[str]:
        """EXPLAIN ANALYZE of exactly the SQL the search selector ran, each query."""
        with CaptureQueriesContext(connection) as queries:
            patient_search(user=user, query=query)
        plans = []
        for sql in [q["sql"] for q in queries.captured_queries if "search_text" in q["sql"]]:
            with connection.cursor() as cursor:
                cursor.execute(f"EXPLAIN (ANALYZE, COSTS OFF) {sql}")
                plans.append("\n".join(row[0] for row in cursor.fetchall()))
        return plans

    def _growth(
        self,
        small: int,
        large: int,
        results: dict[int, dict[str, Figure]],
        anchor_of: dict[int, Figure],
    ) -> None:
        self.stdout.write(f"\n## Growth from {small:,} to {large:,} patients\n")
        self.stdout.write(f"Load average: {load_average()}\n")
        self.stdout.write(
            f"| figure | median ms at {small:,} | at {large:,} | growth"
            f" | CPU ms at {small:,} | at {large:,} | CPU growth"
            " | CPU x anchor, small | CPU x anchor, large |\n|---|---|---|---|---|---|---|---|---|"
        )
        for label, before in results[small].items():
            after = results[large][label]
            self.stdout.write(
                f"| {label} | {before.wall.median:.1f} | {after.wall.median:.1f}"
                f" | {after.wall.median / before.wall.median:.2f}"
                f" | {before.cpu_median:.2f} | {after.cpu_median:.2f}"
                f" | {after.cpu_median / before.cpu_median:.2f}"
                f" | {before.cpu_median / anchor_of[small].cpu_median:.1f}"
                f" | {after.cpu_median / anchor_of[large].cpu_median:.1f} |"
            )

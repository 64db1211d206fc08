"""Time reception's follow-up list beside the anchor at 400,000 reminders.

Seeds the register benchmark_audit seeds (by default 50,000 patients, 30,000
courses of which 300 running, 200,000 bookings over four years, 400,000
reminders, one in 200 failed; `--patients` and `--bookings` make it smaller
or larger) inside one transaction, times the anchor and the follow-up list's
pages through the test client signed in as a receptionist, wall clock and
process (CPU) time, prints the plan of each list's query (EXPLAIN ANALYZE,
BUFFERS), and rolls everything back. `--profile` adds what one request does:
templates rendered and included, translations looked up, dates formatted,
URLs reversed and queries run, and where its process time goes. The audit
trail's size does not enter: the list reads no audit events (it writes one
per patient shown), and benchmark_audit measures it at 3 million.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import statistics
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.template.base import Template
from django.template.loader_tags import IncludeNode
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import reverse
from django.utils import formats
from django.utils.translation import trans_real

from clinic.benchmarking import (
    ANCHOR_PATH,
    TABLE_HEAD,
    anchors,
    benchmark_urls,
    load_average,
    signed_in_client,
    staff_member,
    time_request,
)
from clinic.management.commands.benchmark_audit import (
    BOOKINGS,
    COURSES,
    PATIENTS,
    TABLES,
)
from clinic.management.commands.benchmark_audit import Command as AuditBenchmark
from clinic.roles import Role
from treatments.selectors.reminders import courses_to_book, reminder_followups

# What --profile counts in one request: Django's own functions, found in
# the profile by their code.
COUNTED: tuple[tuple[str, Callable[..., Any]], ...] = (
    ("templates rendered", Template._render),  # type: ignore[attr-defined]
    ("templates included", IncludeNode.render),
    ("translations looked up", trans_real.gettext),
    ("dates formatted by Django", formats.date_format),
    ("URLs reversed", reverse),
)


class _RollbackError(Exception):
    """Raised to roll the seeded rows back."""


def _cpu_ms(client: Client, url: str, *, repeat: int, expect: int = 200) -> float:
    """Median process time (ms) of GET `url` in this process: the web
    worker's own work, without the database's or other processes' time."""
    samples = []
    for _ in range(repeat):
        started = time.process_time()
        response = client.get(url, secure=True)
        samples.append((time.process_time() - started) * 1000)
        assert response.status_code == expect, f"{url} answered {response.status_code}"
    return statistics.median(samples)


class Command(BaseCommand):
    help = (
        "Time the follow-up list beside the anchor at 200,000 bookings and 400,000 "
        "reminders (everything rolled back afterwards)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--repeat", type=int, default=10, help="timed requests per page")
        parser.add_argument(
            "--patients",
            type=int,
            default=PATIENTS,
            help=f"patients in the register (default {PATIENTS:,}); three in five have a "
            "course, one course in a hundred is running",
        )
        parser.add_argument(
            "--bookings",
            type=int,
            default=BOOKINGS,
            help=f"bookings over the years (default {BOOKINGS:,}), two reminders each",
        )
        parser.add_argument(
            "--profile",
            action="store_true",
            help="also count what one request does and where its process time goes",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["repeat"] < 1 or options["patients"] < 100 or options["bookings"] < 144:
            raise CommandError(
                "--repeat is at least 1, --patients at least 100 (one running course) and "
                "--bookings at least 144 (one day of the calendar)."
            )
        started = time.perf_counter()
        try:
            # A test client asks for "testserver" unless told otherwise.
            hosts = [*settings.ALLOWED_HOSTS, "testserver"]
            with benchmark_urls(), override_settings(ALLOWED_HOSTS=hosts), transaction.atomic():
                self._run(options)
                raise _RollbackError
        except _RollbackError:
            self.stdout.write("Rolled back: nothing the benchmark made is left.")
        # The rolled-back rows are dead: vacuumed, they do not slow the next
        # run (not possible inside an outer transaction, as under tests).
        if not connection.in_atomic_block:
            with connection.cursor() as cursor:
                for table in TABLES:
                    cursor.execute(f"VACUUM (ANALYZE) {table}")
        self.stdout.write(f"Total {time.perf_counter() - started:.0f} s.")

    def _run(self, options: dict[str, Any]) -> None:
        repeat = options["repeat"]
        seeder = AuditBenchmark()
        seeder.stdout = self.stdout  # its progress lines in this command's output
        clinic = seeder._clinic()
        seeder._seed_records(
            clinic,
            patients=options["patients"],
            courses=COURSES * options["patients"] // PATIENTS,
            bookings=options["bookings"],
        )
        with connection.cursor() as cursor:
            cursor.execute(
                "ANALYZE treatments_booking; ANALYZE treatments_treatmentcourse;"
                " ANALYZE treatments_reminder; ANALYZE patients_patient"
            )
        reception = staff_member(f"followup-reception-{clinic.tag}", Role.RECEPTIONIST)
        client = signed_in_client(reception)
        url = reverse("treatments:reminder_followups")
        failed, to_book = reminder_followups(), courses_to_book()
        self.stdout.write(
            f"\n{failed.total} failed reminders in the window, {to_book.total} courses to "
            f"book ({to_book.pages} pages); load average {load_average()}\n"
        )
        inside, outside = anchors(client, repeat=repeat * 2)
        rows = [inside.row("anchor, signed in"), outside.row("anchor, signed out")]
        pages = [
            ("follow-up list", url),
            ("follow-up list, courses page 2", f"{url}?courses_page=2"),
            ("follow-up list, page 999999999 (the last)", f"{url}?courses_page=999999999"),
        ]
        for label, page in pages:
            rows.append(time_request(client, page, repeat=repeat).row(label, inside))
        bad = time_request(client, f"{url}?courses_page=x", repeat=repeat, expect=400)
        rows.append(bad.row("follow-up list, courses_page=x (400)", inside))
        self.stdout.write(TABLE_HEAD)
        self.stdout.write("\n".join(rows))
        self.stdout.write(f"\nload average after: {load_average()}\n")

        # Process time: what the web worker itself spends, steadier than the
        # wall clock on a shared machine.
        self.stdout.write("Process (CPU) time, median ms, in the same run:")
        self.stdout.write("| page | process ms | x anchor |\n|---|---|---|")
        anchor_cpu = _cpu_ms(client, ANCHOR_PATH, repeat=repeat * 2)
        self.stdout.write(f"| anchor, signed in | {anchor_cpu:.1f} | - |")
        for label, page in pages:
            cpu = _cpu_ms(client, page, repeat=repeat)
            self.stdout.write(f"| {label} | {cpu:.1f} | {cpu / anchor_cpu:.1f} |")
        self.stdout.write(f"load average after: {load_average()}\n")

        if options["profile"]:
            self._profile(client, url)
        self.stdout.write("Plans (EXPLAIN ANALYZE, BUFFERS):")
        for label, read in (
            ("courses to book", courses_to_book),
            ("failed reminders", reminder_followups),
        ):
            self.stdout.write(f"--- {label}")
            self.stdout.write(_plan(read))

    def _profile(self, client: Client, url: str) -> None:
        """What one request of the first page does, and where its process
        time goes (cProfile, timed in process time)."""
        profiler = cProfile.Profile(time.process_time)
        with CaptureQueriesContext(connection) as queries:
            profiler.enable()
            client.get(url, secure=True)
            profiler.disable()
        stats = pstats.Stats(profiler)
        by_code = {key: row[1] for key, row in stats.stats.items()}  # type: ignore[attr-defined]
        self.stdout.write("One request of the first page:")
        for label, function in COUNTED:
            code = function.__code__
            calls = by_code.get((code.co_filename, code.co_firstlineno, code.co_name), 0)
            self.stdout.write(f"  {label}: {calls}")
        self.stdout.write(f"  queries: {len(queries)}")
        out = io.StringIO()
        stats.stream = out  # type: ignore[attr-defined]
        stats.sort_stats("cumulative").print_stats(r"(clinic|treatments|patients|consent)/", 20)
        self.stdout.write(out.getvalue())


def _plan(read: Any) -> str:
    """The plan of the (last) query `read` runs, as PostgreSQL prints it."""
    with CaptureQueriesContext(connection) as captured:
        read()
    sql = captured.captured_queries[-1]["sql"]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
        return "\n".join(line for (line,) in cursor.fetchall())

"""Time reception's follow-up list beside the anchor at 400,000 reminders.

Seeds the register benchmark_audit seeds (50,000 patients, 30,000 courses of
which 300 running, 200,000 bookings over four years, 400,000 reminders, one in
200 failed) inside one transaction, times the anchor and the follow-up list's
pages through the test client signed in as a receptionist, prints the plan of
each list's query (EXPLAIN ANALYZE, BUFFERS), and rolls everything back. The
audit trail's size does not enter: the list reads no audit events (it writes
one per patient shown), and benchmark_audit measures it at 3 million.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import reverse

from clinic.benchmarking import (
    TABLE_HEAD,
    anchors,
    benchmark_urls,
    load_average,
    signed_in_client,
    staff_member,
    time_request,
)
from clinic.management.commands.benchmark_audit import TABLES
from clinic.management.commands.benchmark_audit import Command as AuditBenchmark
from clinic.roles import Role
from treatments.selectors.reminders import courses_to_book, reminder_followups


class _RollbackError(Exception):
    """Raised to roll the seeded rows back."""


class Command(BaseCommand):
    help = (
        "Time the follow-up list beside the anchor at 200,000 bookings and 400,000 "
        "reminders (everything rolled back afterwards)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--repeat", type=int, default=10, help="timed requests per page")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        try:
            # A test client asks for "testserver" unless told otherwise.
            hosts = [*settings.ALLOWED_HOSTS, "testserver"]
            with benchmark_urls(), override_settings(ALLOWED_HOSTS=hosts), transaction.atomic():
                self._run(options["repeat"])
                raise _RollbackError
        except _RollbackError:
            self.stdout.write("Rolled back: nothing the benchmark made is left.")
        with connection.cursor() as cursor:
            for table in TABLES:
                cursor.execute(f"VACUUM (ANALYZE) {table}")
        self.stdout.write(f"Total {time.perf_counter() - started:.0f} s.")

    def _run(self, repeat: int) -> None:
        seeder = AuditBenchmark()
        seeder.stdout = self.stdout  # its progress lines in this command's output
        clinic = seeder._clinic()
        seeder._seed_records(clinic)
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
        self.stdout.write("Plans (EXPLAIN ANALYZE, BUFFERS):")
        for label, read in (
            ("courses to book", courses_to_book),
            ("failed reminders", reminder_followups),
        ):
            self.stdout.write(f"--- {label}")
            self.stdout.write(_plan(read))


def _plan(read: Any) -> str:
    """The plan of the (last) query `read` runs, as PostgreSQL prints it."""
    with CaptureQueriesContext(connection) as captured:
        read()
    sql = captured.captured_queries[-1]["sql"]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
        return "\n".join(line for (line,) in cursor.fetchall())

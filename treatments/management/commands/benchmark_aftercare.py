"""Measure aftercare sheet rendering: one sheet, then N sheets with worker processes.

    python manage.py benchmark_aftercare --sheets 1000 [--workers 2] [--max-tasks-per-child 0]

Makes N synthetic completed sessions (patients without email, so no mail is
sent), then:
1. renders 20 sheets in this process and prints the median time of one
   render (HTML to PDF) and of the whole service call (database, file, row);
2. starts `--workers` Celery worker processes (the Celery CLI, solo pool, on
   this project's broker), queues the N documents and times until every one
   is ready: the throughput;
3. reads each worker's resident memory (RSS) after 100 sheets and after all N.
The workers connect to the database this command runs against.

Session records are append-only, so the synthetic patients, bookings and
sessions (all under the "bench-aftercare" practitioner, room and protocol)
stay in the database, and the next run uses them again, adding only those it
lacks; the documents and their files are removed. Run it on a benchmark
database, never a clinic's.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlunsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.utils import timezone

from clinic.documents import next_attempt_default
from clinic.models import User
from patients.models import Patient
from patients.services import patient_search_text
from treatments.management.benchmarking import benchmark_protocol
from treatments.models import (
    Booking,
    BookingStatus,
    PatientDocument,
    PatientDocumentStatus,
    Room,
    SessionRecord,
)
from treatments.services.aftercare import (
    PDF_TEMPLATE,
    aftercare_context,
    aftercare_enqueue,
    aftercare_render,
)

TAG = "bench-aftercare"


def _rss_kib(pid: int) -> int:
    """Resident memory of a process and its children (a prefork pool), in KiB."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for one in pids:
        try:
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            continue
    return total


def _database_url() -> str:
    """This command's own database as a DATABASE_URL, for the worker processes
    (under the tests, the test database rather than the environment's)."""
    s = connection.settings_dict
    login = quote(str(s["USER"] or ""), safe="")
    if s.get("PASSWORD"):
        login += ":" + quote(str(s["PASSWORD"]), safe="")
    where = f"{s['HOST'] or 'localhost'}:{s['PORT'] or 5432}"
    return urlunsplit(("postgres", f"{login}@{where}", "/" + str(s["NAME"]), "", ""))


class Command(BaseCommand):
    help = "Time aftercare sheet rendering, throughput with worker processes, and worker memory."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--sheets", type=int, default=1000)
        parser.add_argument("--workers", type=int, default=2)
        parser.add_argument(
            "--max-tasks-per-child",
            type=int,
            default=0,
            help="Run each worker as a one-process prefork pool recycled after this many tasks.",
        )
        parser.add_argument("--timeout", type=int, default=1800)

    def handle(self, *args: Any, **options: Any) -> None:
        number = options["sheets"]
        if number < 100:
            raise CommandError("Use at least 100 sheets (memory is read after 100).")
        documents = self._setup(number)
        try:
            self._single(documents[:20])
            self._throughput(documents, options)
        finally:
            self._cleanup(documents)

    # --- Data --------------------------------------------------------------------------

    def _setup(self, number: int) -> list[int]:
        self.stdout.write(f"Making {number} completed sessions...")
        with transaction.atomic():
            practitioner, _ = User.objects.get_or_create(
                username=TAG, defaults={"first_name": "Bench"}
            )
            room, _ = Room.objects.get_or_create(name=TAG)
            protocol = benchmark_protocol(
                tag=TAG,
                created_by=practitioner,
                sheet={
                    "introduction": "What to expect after your session, and how to look "
                    "after your skin over the next few days.",
                    "do_advice": "Use a cold compress for swelling.\nWear sunscreen every day."
                    "\nKeep the area clean.",
                    "avoid_advice": "No make-up for 12 hours.\nNo sauna, steam or sport for "
                    "48 hours.\nNo sun bed for two weeks.",
                    "warning_signs": "Spreading redness, heat or pus.\nFever.\nA lump that grows.",
                },
            )
            # An earlier run's sessions first (their documents were removed).
            reused = list(
                SessionRecord.objects.filter(
                    booking__room=room,
                    booking__practitioner=practitioner,
                    aftercare_document__isnull=True,
                )
                .select_related("booking")
                .order_by("pk")[:number]
            )
            made = number - len(reused)
            patients = Patient.objects.bulk_create(
                [self._patient(i, practitioner) for i in range(made)]
            )
            # Past, non-overlapping slots in one room for one practitioner.
            latest = Booking.objects.filter(room=room).order_by("-starts_at").first()
            start = (latest.ends_at if latest else timezone.now() - timedelta(days=400)).replace(
                microsecond=0
            ) + timedelta(minutes=1)
            bookings = Booking.objects.bulk_create(
                [
                    Booking(
                        patient=patient,
                        practitioner=practitioner,
                        room=room,
                        protocol=protocol,
                        starts_at=start + timedelta(minutes=31 * i),
                        ends_at=start + timedelta(minutes=31 * i + 30),
                        status=BookingStatus.COMPLETED,
                        created_by=practitioner,
                    )
                    for i, patient in enumerate(patients)
                ]
            )
            records = reused + SessionRecord.objects.bulk_create(
                [
                    SessionRecord(
                        booking=booking,
                        numbing_cream=True,
                        completed_at=booking.ends_at,
                        completed_by=practitioner,
                    )
                    for booking in bookings
                ]
            )
            now = timezone.now()
            documents = PatientDocument.objects.bulk_create(
                [
                    PatientDocument(
                        patient_id=record.booking.patient_id,
                        session=record,
                        status=PatientDocumentStatus.QUEUED,
                        queued_at=now,
                    )
                    for record in records
                ]
            )
        self.stdout.write(f"({len(reused)} sessions of an earlier run used again)")
        return [d.pk for d in documents]

    @staticmethod
    def _patient(index: int, by: User) -> Patient:
        patient = Patient(
            first_name=f"Bench{index}",
            last_name="Aftercare",
            date_of_birth=date(1980, 1, 1) + timedelta(days=index % 7000),
            email="",
            reminder_channel="none",
            created_by=by,
        )
        patient.search_text = patient_search_text(patient)
        return patient

    def _cleanup(self, documents: list[int]) -> None:
        rows = PatientDocument.objects.filter(pk__in=documents)
        for row in rows.exclude(file=""):
            row.file.storage.delete(row.file.name)
        rows.delete()

    # --- Measurements --------------------------------------------------------------------

    def _single(self, sample: list[int]) -> None:
        from clinic.pdf import render_pdf

        rows = list(
            PatientDocument.objects.filter(pk__in=sample).select_related(
                "patient", "session__booking__protocol__aftercare_sheet"
            )
        )
        render_pdf(PDF_TEMPLATE, aftercare_context(rows[0]))  # warm up fonts and templates
        render_times = []
        for row in rows:
            began = time.perf_counter()
            render_pdf(PDF_TEMPLATE, aftercare_context(row))
            render_times.append(time.perf_counter() - began)
        service_times = []
        for row in rows:
            began = time.perf_counter()
            aftercare_render(document_id=row.pk)
            service_times.append(time.perf_counter() - began)
        # Back to queued for the throughput run.
        PatientDocument.objects.filter(pk__in=sample).update(
            status=PatientDocumentStatus.QUEUED, attempts=0, next_attempt_at=next_attempt_default()
        )
        self.stdout.write(
            f"One sheet, HTML to PDF: median {statistics.median(render_times):.3f} s "
            f"(min {min(render_times):.3f}, max {max(render_times):.3f}, n={len(rows)})"
        )
        self.stdout.write(
            f"One sheet, whole service (queries, PDF, file, row): "
            f"median {statistics.median(service_times):.3f} s"
        )

    def _start_workers(self, count: int, per_child: int, logs: Path) -> list[subprocess.Popen]:
        env = {**os.environ, "DATABASE_URL": _database_url(), "EMAIL_URL": "dummymail://"}
        base = [sys.executable, "-m", "celery", "-A", "clinic", "worker", "--without-gossip"]
        base += ["--without-mingle", "--without-heartbeat", "--loglevel", "WARNING"]
        if per_child:
            pool = ["--pool", "prefork", "--concurrency", "1"]
            pool += ["--max-tasks-per-child", str(per_child)]
        else:
            pool = ["--pool", "solo"]
        workers = []
        for index in range(count):
            log = open(logs / f"worker{index}.log", "wb")  # noqa: SIM115
            workers.append(
                subprocess.Popen(  # noqa: S603 (a fixed command line of this project)
                    [*base, *pool, "-n", f"bench{index}@%h"],
                    env=env,
                    cwd=settings.BASE_DIR,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        time.sleep(6)  # let them connect before the clock starts
        return workers

    def _throughput(self, documents: list[int], options: dict[str, Any]) -> None:
        number = len(documents)
        logs = Path(tempfile.mkdtemp(prefix="benchmark-aftercare-"))
        workers = self._start_workers(options["workers"], options["max_tasks_per_child"], logs)
        rows = PatientDocument.objects.filter(pk__in=documents)
        try:
            idle = [_rss_kib(w.pid) for w in workers]
            began = time.perf_counter()
            for pk in documents:
                aftercare_enqueue(document_id=pk)
            after_100: list[int] = []
            deadline = time.monotonic() + options["timeout"]
            done = 0
            while time.monotonic() < deadline:
                done = rows.exclude(status=PatientDocumentStatus.QUEUED).count()
                if not after_100 and done >= 100:
                    after_100 = [_rss_kib(w.pid) for w in workers]
                if done >= number:
                    break
                time.sleep(0.2)
            elapsed = time.perf_counter() - began
            at_end = [_rss_kib(w.pid) for w in workers]
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            for worker in workers:
                try:
                    worker.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    worker.kill()
        failed = rows.filter(status=PatientDocumentStatus.FAILED).count()
        self.stdout.write(
            f"{done} of {number} sheets by {len(workers)} worker processes in {elapsed:.1f} s: "
            f"{done / elapsed:.1f} sheets/s ({failed} failed)"
        )
        for index, (first, hundred, end) in enumerate(
            zip(idle, after_100 or idle, at_end, strict=True)
        ):
            self.stdout.write(
                f"Worker {index} RSS: idle {first / 1024:.0f} MiB, after 100 sheets "
                f"{hundred / 1024:.0f} MiB, after {number} {end / 1024:.0f} MiB"
            )
        self.stdout.write(f"Worker logs: {logs}")

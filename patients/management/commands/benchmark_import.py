"""Measure a patient import from a file to the register, then leave no trace.

    python manage.py benchmark_import --rows 10000 --existing 20000

Inside one transaction, rolled back at the end: a register of `--existing`
synthetic patients (their search words made by the triggers), then a CSV
file of `--rows` new patients as another system exports it (UTF-8 with a
byte-order mark, day/month/year dates, national and international phone
numbers, one name in 25 with an accent to fold) taken through the import's
own services as the pages and the Celery task call them:

- upload: reading the file and keeping its rows (`patient_import_upload`);
- check: matching the columns and checking every row, with the duplicate
  look-ups against the register (`patient_import_map`);
- import: the task's body (`patient_import_run`): every row checked again
  under the register's lock, every patient created with its search text,
  the search words written by the triggers, the contact changes and the
  audit event.

Each step has its wall-clock time, this process's CPU time and the
database server's (its process for this connection, from /proc, when the
server runs on this machine); the load average is printed with them, since
the machine's other work disturbs the wall-clock times far more. Only
this run's rows are made: all rolled back.
"""

from __future__ import annotations

import time
from datetime import date, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction

from clinic.benchmarking import load_average, staff_member
from clinic.roles import Role
from patients.imports import (
    IMPORT_MAX_ROWS,
    patient_import_confirm,
    patient_import_map,
    patient_import_run,
    patient_import_upload,
)
from patients.models import Patient, PatientImportStatus, PatientSearchWord

FIRST = ["Anna", "Zoë", "Ben", "Chloé", "Dev", "Ewa", "Femi", "Gus", "Hana", "Iain"]
LAST = ["Smith", "Müller", "O'Grady", "Jones", "Patel", "Nguyen", "Øster", "Brown"]


class _RollbackError(Exception):
    pass


def _csv(rows: int) -> bytes:
    lines = ["First name,Surname,Date of birth,Email,Mobile,Address,Postcode"]
    start = date(1940, 1, 1)
    for n in range(rows):
        accent = n % 25 == 0
        first = FIRST[n % len(FIRST)] if accent else f"Bench{n}"
        last = LAST[n % len(LAST)] if accent else f"Import{n}"
        born = start + timedelta(days=(n * 37) % 25_000)
        phone = f"07911 {n % 1_000_000:06d}" if n % 2 else f"+44 7911 {n % 1_000_000:06d}"
        lines.append(
            f"{first},{last},{born:%d/%m/%Y},bench{n}@example.org,{phone},"
            f'"{n} High Street, Leeds",LS1 {n % 9}AB'
        )
    return b"\xef\xbb\xbf" + ("\r\n".join(lines) + "\r\n").encode()


class Command(BaseCommand):
    help = "Measure importing a patient list (read, check, import); everything rolled back."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rows", type=int, default=10_000)
        parser.add_argument("--existing", type=int, default=20_000)

    def handle(self, *args: Any, **options: Any) -> None:
        rows, existing = options["rows"], options["existing"]
        if not 1 <= rows <= IMPORT_MAX_ROWS:
            raise CommandError(f"--rows must be between 1 and {IMPORT_MAX_ROWS}")
        self.stdout.write(f"Load average before: {load_average()}")
        try:
            with transaction.atomic():
                self._measure(rows, existing)
                raise _RollbackError
        except _RollbackError:
            self.stdout.write("Rolled back: nothing of this run is kept.")
        self.stdout.write(f"Load average after: {load_average()}")

    def _server_cpu(self) -> float:
        """CPU seconds of the database server's process serving this
        connection (/proc/<pid>/schedstat; 0 when the server is elsewhere)."""
        try:
            with open(self._server) as handle:
                return int(handle.read().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            return 0.0

    def _step(self, label: str, work: Any) -> Any:
        wall, cpu, server = time.perf_counter(), time.process_time(), self._server_cpu()
        result = work()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        server = self._server_cpu() - server
        self.stdout.write(f"| {label} | {wall:.2f} | {cpu:.2f} | {server:.2f} |")
        for index, value in enumerate((wall, cpu, server)):
            self._total[index] += value
        return result

    def _measure(self, rows: int, existing: int) -> None:
        self._total = [0.0, 0.0, 0.0]
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            self._server = f"/proc/{cursor.fetchone()[0]}/schedstat"
        manager = staff_member("benchmark-import-manager", Role.MANAGER)
        Patient.objects.bulk_create(
            Patient(
                first_name=f"Kept{n}",
                last_name=f"Register{n}",
                date_of_birth=date(1950, 1, 1) + timedelta(days=n % 20_000),
                reminder_channel="none",
                search_text=f"kept{n} register{n}",
            )
            for n in range(existing)
        )
        data = _csv(rows)
        self.stdout.write(
            f"{rows:,} rows ({len(data) / 1024 / 1024:.1f} MB) into a register of "
            f"{existing:,} patients\n\n| step | wall s | CPU s, this process | CPU s, database "
            "server |\n|---|---|---|---|"
        )
        job = self._step(
            "upload: read and keep the rows",
            lambda: patient_import_upload(created_by=manager, data=data, file_name="bench.csv"),
        )
        job = self._step(
            "check: match columns, check every row",
            lambda: patient_import_map(
                job=job, user=manager, mapping=job.mapping, expected_version=job.version
            ),
        )
        if job.problems:
            raise CommandError(f"{len(job.problems)} rows have problems: {job.problems}")
        patient_import_confirm(job=job, user=manager, expected_version=job.version)
        job = self._step(
            "import: check again, create all", lambda: patient_import_run(job_id=job.pk)
        )
        if job is None or job.status != PatientImportStatus.DONE:
            raise CommandError(f"The import did not finish: {job and job.error}")
        wall, cpu, server = self._total
        self.stdout.write(f"| **upload to imported** | {wall:.2f} | {cpu:.2f} | {server:.2f} |")
        created = Patient.objects.filter(created_by=manager).count()
        words = PatientSearchWord.objects.filter(
            patient_id__in=Patient.objects.filter(created_by=manager).values("id")
        ).count()
        self.stdout.write(f"\nPatients created: {created:,}; their search words: {words:,}")

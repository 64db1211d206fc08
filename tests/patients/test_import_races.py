"""A patient registered at reception while an import runs, each over its own
connection: one of the two sees the other's patient, never neither."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
import time_machine
from django.db import connection, connections, transaction

from clinic.models import User
from patients.imports import patient_import_confirm, patient_import_run
from patients.models import Patient, PatientImport, PatientImportStatus
from patients.services import PossibleDuplicateError, patient_create
from tests.patients.test_import import csv_bytes, good_rows, mapped, problems_of

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
# Row 3 of good_rows (the file's line 5): Anna3 Patient3, born 4 April 1953.
ANNA3: dict[str, Any] = {
    "first_name": "Anna3",
    "last_name": "Patient3",
    "date_of_birth": date(1953, 4, 4),
}


@pytest.fixture(autouse=True)
def frozen_clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


def confirmed(manager: User, monkeypatch: pytest.MonkeyPatch) -> PatientImport:
    """An import confirmed with no problems, its task not published (the test runs it)."""
    import patients.imports

    monkeypatch.setattr(patients.imports, "enqueue", lambda task, job_id, label: True)
    job = mapped(manager, csv_bytes(good_rows(5)))
    assert job.problems == {}
    return patient_import_confirm(job=job, user=manager, expected_version=job.version)


def in_thread(work: Callable[[], Any], results: dict[str, Any], name: str) -> threading.Thread:
    def body() -> None:
        try:
            results[name] = work()
        except Exception as error:  # the outcome is what the test checks
            results[name] = error
        finally:
            connections.close_all()

    thread = threading.Thread(target=body)
    thread.start()
    return thread


def wait_for_waiters(count: int) -> None:
    """Until `count` other connections wait for a lock (10 s at most)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0] >= count:
                return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} connections waited for a lock")


def test_a_registration_made_while_an_import_runs_sees_the_imported_patient(
    manager: User, receptionist: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = confirmed(manager, monkeypatch)
    results: dict[str, Any] = {}
    # Hold the import at its commit, its patients inserted and its check
    # passed: the manager's row is locked, and the import's patients refer to it.
    with transaction.atomic():
        User.objects.select_for_update().get(pk=manager.pk)
        importing = in_thread(lambda: patient_import_run(job_id=job.pk), results, "import")
        wait_for_waiters(1)
        registering = in_thread(
            lambda: patient_create(created_by=receptionist, reminder_channel="none", **ANNA3),
            results,
            "registration",
        )
        wait_for_waiters(2)
    importing.join(timeout=60)
    registering.join(timeout=60)
    assert results["import"].status == PatientImportStatus.DONE, results["import"].error
    # Reception is told the person is already registered: one record, not two.
    assert isinstance(results["registration"], PossibleDuplicateError), results["registration"]
    assert Patient.objects.filter(first_name="Anna3").count() == 1


def test_an_import_run_while_a_registration_saves_stops_naming_the_row(
    manager: User, receptionist: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = confirmed(manager, monkeypatch)
    results: dict[str, Any] = {}
    saved, release = threading.Event(), threading.Event()

    def register() -> Patient:
        with transaction.atomic():
            patient = patient_create(created_by=receptionist, reminder_channel="none", **ANNA3)
            saved.set()
            release.wait(timeout=30)
        return patient

    registering = in_thread(register, results, "registration")
    assert saved.wait(timeout=30)
    importing = in_thread(lambda: patient_import_run(job_id=job.pk), results, "import")
    wait_for_waiters(1)
    release.set()
    registering.join(timeout=60)
    importing.join(timeout=60)
    assert isinstance(results["registration"], Patient), results["registration"]
    job = results["import"]
    assert job.status == PatientImportStatus.FAILED
    assert "Nothing was imported" in job.error
    assert "May already be registered as Anna3 Patient3, born 4 April 1953" in (problems_of(job)[5])
    assert Patient.objects.count() == 1

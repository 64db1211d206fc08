"""A real Celery worker process runs a confirmed patient import, once."""

from __future__ import annotations

import subprocess
import time

import pytest

from clinic.models import AuditEvent, User
from patients.imports import (
    patient_import_confirm,
    patient_import_enqueue,
    patient_import_map,
    patient_import_upload,
)
from patients.models import Patient, PatientImport, PatientImportStatus, PatientSearchWord
from tests.patients.test_import import HEADER, csv_bytes, good_rows
from tests.treatments.test_aftercare_worker import worker  # noqa: F401 (fixture)


def _wait_for(job: PatientImport, done: set[str], seconds: float = 90) -> PatientImport:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status in done:
            return job
        time.sleep(0.5)
    return job


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_a_worker_process_imports_every_row_and_a_second_message_adds_nothing(
    worker: subprocess.Popen,  # noqa: F811
    manager: User,
) -> None:
    data = csv_bytes(good_rows(300), header=HEADER)
    job = patient_import_upload(created_by=manager, data=data, file_name="list.csv")
    job = patient_import_map(
        job=job, user=manager, mapping=job.mapping, expected_version=job.version
    )
    assert job.problems == {}
    # Queued on commit (autocommit here): the worker process takes it.
    patient_import_confirm(job=job, user=manager, expected_version=job.version)
    job = _wait_for(job, {PatientImportStatus.DONE, PatientImportStatus.FAILED})
    assert job.status == PatientImportStatus.DONE, job.error
    assert job.imported_count == 300
    assert Patient.objects.count() == 300
    assert PatientSearchWord.objects.filter(word="anna299").count() == 1
    # The same message delivered again (a redelivery after a lost ack).
    assert patient_import_enqueue(job_id=job.pk)
    time.sleep(3)
    assert Patient.objects.count() == 300
    events = AuditEvent.objects.filter(object_type="patients.patientimport", action="create")
    assert [e.changed_fields for e in events] == [["patients:300"], ["file"]]
    assert worker.poll() is None

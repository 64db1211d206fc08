"""A real Celery worker process renders a queued aftercare sheet, once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from tests.dbroles import url_of_test_database
from tests.factories import PatientFactory
from tests.treatments.test_aftercare import completed_session
from treatments.models import PatientDocument, PatientDocumentStatus
from treatments.services import aftercare as service

BASE_DIR = Path(settings.BASE_DIR)


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[subprocess.Popen]:
    env = {
        **os.environ,
        "DATABASE_URL": url_of_test_database(),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "EMAIL_URL": "dummymail://",
    }
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "clinic", "worker", "--pool", "solo",
         "--without-gossip", "--without-mingle", "--loglevel", "INFO"],
        env=env, cwd=BASE_DIR, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    yield process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_a_worker_process_renders_a_queued_sheet_and_a_second_message_changes_nothing(
    worker: subprocess.Popen,
) -> None:
    record = completed_session(patient=PatientFactory(email="", reminder_channel="none"))
    document = service.aftercare_queue(session=record)  # queued on commit (autocommit here)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        document.refresh_from_db()
        if document.status != PatientDocumentStatus.QUEUED:
            break
        time.sleep(0.5)
    assert document.status == PatientDocumentStatus.READY, document.error
    assert document.file.name == f"documents/{document.uuid}.pdf"
    first_sum = document.sha256
    # The same message delivered again (a redelivery after a lost ack).
    assert service.aftercare_enqueue(document_id=document.pk)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        document.refresh_from_db()
        if document.attempts >= 2:
            break
        time.sleep(0.5)
    assert document.attempts >= 2
    assert document.sha256 == first_sum
    assert PatientDocument.objects.filter(session=record).count() == 1
    assert worker.poll() is None

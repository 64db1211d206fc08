"""The one document pipeline (clinic.documents), for both kinds of document it
makes: signed-consent PDFs and aftercare sheets. Each behaviour is checked
for both kinds, through each kind's own services, tasks and staff pages:
retries with growing waits, giving up as failed, renders that never report,
the same words and the same "Try again" for staff, and logs that carry ids,
never patient data."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.test import Client, override_settings
from django.urls import reverse

from clinic.documents import (
    INTERRUPTED,
    MAX_ATTEMPTS,
    RETRY_DELAYS,
    DocumentStatus,
    GeneratedDocument,
)
from clinic.models import User
from consent.models import SignedConsentPDF
from consent.services import consent_pdf_render_now, consent_pdf_requeue_stale
from patients.models import Patient
from tests.conftest import sign_in
from tests.consent.helpers import signed_consent_for
from tests.factories import ConsentFormVersionFactory, PatientFactory
from tests.treatments.test_aftercare import completed_session, queued_document
from treatments.models import PatientDocument
from treatments.services.aftercare import aftercare_render, aftercare_requeue_stale

pytestmark = pytest.mark.django_db

START = datetime(2026, 5, 12, 9, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Kind:
    """One kind of generated document, driven through its own app's code."""

    name: str
    model: type[GeneratedDocument]
    make: Callable[[Patient, User], tuple[int, str, str]]  # pk, staff page, retry URL
    render: Callable[[int], GeneratedDocument]
    sweep: Callable[[], int]


def _consent(patient: Patient, practitioner: User) -> tuple[int, str, str]:
    signed = signed_consent_for(
        patient=patient, version=ConsentFormVersionFactory(), witness=practitioner
    )
    kwargs = {"patient": patient.uuid, "signed": signed.uuid}
    return signed.pk, signed.get_absolute_url(), reverse("consent:pdf_retry", kwargs=kwargs)


def _aftercare(patient: Patient, practitioner: User) -> tuple[int, str, str]:
    document = queued_document(completed_session(patient=patient))
    page = reverse("treatments:session_record", kwargs={"booking": document.session.booking.uuid})
    kwargs = {"patient": patient.uuid, "document": document.uuid}
    return document.pk, page, reverse("treatments:document_regenerate", kwargs=kwargs)


KINDS = [
    Kind(
        "consent",
        SignedConsentPDF,
        _consent,
        lambda pk: consent_pdf_render_now(signed_consent_id=pk),
        consent_pdf_requeue_stale,
    ),
    Kind(
        "aftercare",
        PatientDocument,
        _aftercare,
        lambda pk: aftercare_render(document_id=pk),
        aftercare_requeue_stale,
    ),
]


@pytest.fixture(params=KINDS, ids=[k.name for k in KINDS])
def kind(request: pytest.FixtureRequest) -> Kind:
    return request.param


@pytest.fixture(autouse=True)
def media_root(tmp_path: Path) -> Iterator[Path]:
    storages = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path)},
        },
    }
    with override_settings(STORAGES=storages, MEDIA_ROOT=str(tmp_path)):
        yield tmp_path


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    with time_machine.travel(START, tick=False) as frozen:
        yield frozen


@pytest.fixture
def eager() -> Iterator[None]:
    """Tasks sent by the sweep run at once, in this process (what a worker would run)."""
    from clinic.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


class RendererBrokeError(RuntimeError):
    pass


@pytest.fixture
def broken_renderer(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """WeasyPrint failing for every document; call the returned function to mend it."""
    from clinic import pdf

    real = pdf.render_pdf

    def broken(template: str, context: dict[str, Any]) -> bytes:
        raise RendererBrokeError("no font for this text")

    monkeypatch.setattr(pdf, "render_pdf", broken)
    return lambda: monkeypatch.setattr(pdf, "render_pdf", real)


class WorkerDied(BaseException):
    """The worker process killed mid-render: nothing after this line runs."""


def _row(kind: Kind, pk: int) -> GeneratedDocument:
    return kind.model.objects.get(pk=pk)


def test_a_failing_render_is_tried_again_after_growing_waits_then_shown_failed(
    kind: Kind,
    practitioner: User,
    clock: time_machine.Coordinates,
    eager: None,
    broken_renderer: Callable[[], None],
) -> None:
    pk, _page, _retry = kind.make(PatientFactory(), practitioner)

    first = kind.render(pk)
    assert first.status == DocumentStatus.QUEUED  # not given up after one try
    assert first.error == "RendererBrokeError"
    assert first.attempts == 1
    assert kind.sweep() == 0  # nothing before the wait is over

    waits = []
    now = START
    for _ in range(MAX_ATTEMPTS - 1):
        row = _row(kind, pk)
        assert row.status == DocumentStatus.QUEUED
        waits.append(row.next_attempt_at - now)
        now = row.next_attempt_at
        clock.move_to(now)
        assert kind.sweep() == 1  # queued again; the task runs here and fails again
    assert waits == list(RETRY_DELAYS)
    row = _row(kind, pk)
    assert row.status == DocumentStatus.FAILED
    assert row.attempts == MAX_ATTEMPTS
    assert row.next_attempt_at is None
    clock.move_to(now + timedelta(hours=1))
    assert kind.sweep() == 0  # failed stays failed until staff try again


def test_renders_that_never_report_are_given_up_as_failed_not_prepared_for_ever(
    kind: Kind, practitioner: User, clock: time_machine.Coordinates, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clinic import pdf

    pk, _page, _retry = kind.make(PatientFactory(), practitioner)

    def dies(template: str, context: dict[str, Any]) -> bytes:
        raise WorkerDied

    monkeypatch.setattr(pdf, "render_pdf", dies)
    for attempt in range(MAX_ATTEMPTS):
        clock.move_to(START + timedelta(minutes=3 * attempt))
        with pytest.raises(WorkerDied):
            kind.render(pk)  # a delivery of the task; the worker dies mid-render
    assert _row(kind, pk).status == DocumentStatus.QUEUED

    clock.move_to(START + timedelta(minutes=3 * MAX_ATTEMPTS))
    kind.sweep()
    row = _row(kind, pk)
    assert row.status == DocumentStatus.FAILED
    assert row.attempts == MAX_ATTEMPTS


def test_staff_read_the_same_words_for_a_pdf_not_made_and_try_again(
    kind: Kind,
    practitioner: User,
    clock: time_machine.Coordinates,
    eager: None,
    broken_renderer: Callable[[], None],
    django_capture_on_commit_callbacks: Any,
) -> None:
    pk, page, retry = kind.make(PatientFactory(), practitioner)
    for attempt in range(MAX_ATTEMPTS):
        clock.move_to(START + timedelta(minutes=10 * attempt))
        kind.render(pk)
    assert _row(kind, pk).status == DocumentStatus.FAILED
    client = sign_in(Client(), practitioner)

    body = client.get(page).content.decode()
    assert "PDF could not be made" in body
    assert 'data-testid="document-retry"' in body
    assert f'action="{retry}"' in body
    assert ">Try again<" in body

    broken_renderer()  # the font is installed
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(retry)
    assert response.status_code == 302
    row = _row(kind, pk)
    assert row.status == DocumentStatus.READY
    assert row.attempts == 1  # counted afresh from the retry
    body = client.get(page).content.decode()
    assert "PDF could not be made" not in body


def test_reception_cannot_try_again(
    kind: Kind,
    practitioner: User,
    receptionist: User,
    clock: time_machine.Coordinates,
    broken_renderer: Callable[[], None],
) -> None:
    pk, _page, retry = kind.make(PatientFactory(), practitioner)
    for attempt in range(MAX_ATTEMPTS):
        clock.move_to(START + timedelta(minutes=10 * attempt))
        kind.render(pk)
    response = sign_in(Client(), receptionist).post(retry)
    assert response.status_code == 403
    assert _row(kind, pk).status == DocumentStatus.FAILED


def test_a_sweep_gives_up_a_document_its_renders_left_queued_from_before(
    kind: Kind, practitioner: User, clock: time_machine.Coordinates
) -> None:
    """A row left queued after MAX_ATTEMPTS (as the code before the shared pipeline
    left consent PDFs) is failed by the next sweep, with the reason "interrupted"."""
    pk, _page, _retry = kind.make(PatientFactory(), practitioner)
    kind.model.objects.filter(pk=pk).update(attempts=MAX_ATTEMPTS)
    clock.move_to(START + timedelta(minutes=3))
    kind.sweep()
    row = _row(kind, pk)
    assert (row.status, row.error) == (DocumentStatus.FAILED, INTERRUPTED)


# --- Logs carry ids, never patient data -------------------------------------------------


SECRET_PATIENT = {
    "first_name": "Philippa",
    "last_name": "Quennell-Zborowski",
    "date_of_birth": date(1979, 2, 14),
    "email": "pqz.private@example.org",
    "phone": "+447700900123",
}
SECRETS = (
    "Philippa",
    "Quennell",
    "Zborowski",
    "1979-02-14",
    "14/02/1979",
    "14 February 1979",
    "pqz.private",
    "+447700900123",
    "7700900123",
    "07700 900123",
)


def test_a_failing_render_logs_the_document_and_the_error_type_never_the_patient(
    kind: Kind,
    practitioner: User,
    clock: time_machine.Coordinates,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from clinic import pdf

    patient = PatientFactory(**SECRET_PATIENT)
    pk, _page, _retry = kind.make(patient, practitioner)
    caplog.set_level(logging.DEBUG)
    caplog.clear()

    def quoting(template: str, context: dict[str, Any]) -> bytes:
        # As a template or font error would: the message quotes the text at fault.
        who = context["patient"]
        try:
            raise LookupError(f"{who.email} {who.phone} {who.date_of_birth:%d/%m/%Y}")
        except LookupError as cause:
            raise ValueError(
                f"cannot lay out {who.first_name} {who.last_name}, born {who.date_of_birth}, "
                f"{who.date_of_birth:%d %B %Y}"
            ) from cause

    monkeypatch.setattr(pdf, "render_pdf", quoting)
    row = kind.render(pk)

    assert row.error == "ValueError"
    written = [caplog.text]
    for record in caplog.records:
        written.append(record.getMessage())
        if record.exc_info:
            written.append(logging.Formatter().formatException(record.exc_info))
        if record.exc_text:
            written.append(record.exc_text)
        if record.stack_info:
            written.append(record.stack_info)
    everything = "\n".join(written)
    leaked = [secret for secret in SECRETS if secret in everything]
    assert leaked == []
    # What is logged is enough to find the row: its key and the kind of error.
    assert any(str(pk) in r.getMessage() and "ValueError" in r.getMessage() for r in caplog.records)

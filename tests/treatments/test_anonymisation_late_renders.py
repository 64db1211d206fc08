"""A render under way when its document is queued afresh (the record
anonymised, staff's "Try again") read the old source: whenever it finishes,
its PDF is discarded, never written and never marked ready, and a failure of
it is not recorded against the new request. Both kinds of document of the
one pipeline (clinic.documents), with real renders and real files."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import pytest
import time_machine

from clinic.documents import (
    DocumentStatus,
    _claim,
    document_render_failed,
    document_render_succeeded,
)
from clinic.models import User
from consent.models import SignedConsentPDF
from consent.services import (
    PDF_RELATED,
    consent_pdf_render_now,
    consent_pdf_render_pdf,
    consent_pdf_retry,
)
from patients.models import Patient
from tests.treatments import test_anonymisation as anonymisation
from tests.treatments.test_aftercare import completed_session, ready_document
from tests.treatments.test_anonymisation import SIGNED_ON, _anonymise, _pdf_text, _signed
from tests.treatments.test_erasure import erase, frozen, media_root  # noqa: F401 (fixtures)
from treatments.models import PatientDocument
from treatments.services.aftercare import RENDER_RELATED, aftercare_render, aftercare_render_pdf

pytestmark = pytest.mark.django_db

amelia = anonymisation.amelia


def _discarded(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "outcome is discarded" in r.getMessage()]


def test_a_consent_pdf_render_finishing_after_the_anonymisation_and_its_remake_is_discarded(
    amelia: Patient,
    practitioner: User,
    tmp_path: Path,
    django_capture_on_commit_callbacks: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    signed = _signed(amelia, practitioner)
    consent_pdf_render_now(signed_consent_id=signed.pk)
    # A worker claims the PDF and renders it from the record as it is: named.
    slow = _claim(SignedConsentPDF, signed.pk, PDF_RELATED)
    named = consent_pdf_render_pdf(slow)
    erase(amelia, practitioner)
    _anonymise(django_capture_on_commit_callbacks)
    remade = consent_pdf_render_now(signed_consent_id=signed.pk)
    assert remade.status == DocumentStatus.READY

    with caplog.at_level(logging.INFO, logger="clinic.documents"):
        row = document_render_succeeded(row=slow, pdf=named)

    pdf = SignedConsentPDF.objects.get(pk=signed.pk)
    assert row.status == pdf.status == DocumentStatus.READY
    text = _pdf_text(pdf.file, tmp_path)
    assert "Quillfeather" not in text
    assert "Anonymised record" in text
    assert pdf.sha256 == hashlib.sha256(Path(pdf.file.path).read_bytes()).hexdigest()
    assert pdf.sha256 == remade.sha256
    assert len(_discarded(caplog)) == 1
    assert "Quillfeather" not in caplog.text


def test_an_aftercare_render_finishing_before_the_remake_leaves_the_sheet_queued_and_unwritten(
    amelia: Patient,
    practitioner: User,
    tmp_path: Path,
    django_capture_on_commit_callbacks: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with time_machine.travel(SIGNED_ON, tick=False):
        document = ready_document(completed_session(patient=amelia))
    sheet = Path(document.file.path)
    slow = _claim(PatientDocument, document.pk, RENDER_RELATED)
    named = aftercare_render_pdf(slow)
    erase(amelia, practitioner)
    _anonymise(django_capture_on_commit_callbacks)
    assert not sheet.exists()

    with caplog.at_level(logging.INFO, logger="clinic.documents"):
        document_render_succeeded(row=slow, pdf=named)

    # Nothing named the patient again: no file, nothing downloadable.
    document.refresh_from_db()
    assert document.status == DocumentStatus.QUEUED
    assert not document.file
    assert not sheet.exists()
    assert len(_discarded(caplog)) == 1
    # The remake makes it, from the anonymised record.
    remade = aftercare_render(document_id=document.pk)
    assert remade.status == DocumentStatus.READY
    assert "Quillfeather" not in _pdf_text(remade.file, tmp_path)


def test_a_render_failing_after_staff_tried_again_is_not_counted_against_the_new_request(
    amelia: Patient, practitioner: User, django_capture_on_commit_callbacks: Any
) -> None:
    signed = _signed(amelia, practitioner)
    slow = _claim(SignedConsentPDF, signed.pk, PDF_RELATED)
    with django_capture_on_commit_callbacks(execute=False):
        consent_pdf_retry(signed=signed, requested_by=practitioner)
    queued = SignedConsentPDF.objects.get(pk=signed.pk)

    document_render_failed(row=slow, exc=OSError("disk full"))

    pdf = SignedConsentPDF.objects.get(pk=signed.pk)
    assert pdf.status == DocumentStatus.QUEUED
    assert not pdf.is_retrying
    assert (pdf.error, pdf.attempts, pdf.next_attempt_at) == (
        "",
        0,
        queued.next_attempt_at,
    )


def test_a_failure_of_a_render_overtaken_by_a_later_one_is_left_to_the_later_one(
    amelia: Patient, practitioner: User
) -> None:
    signed = _signed(amelia, practitioner)
    first = _claim(SignedConsentPDF, signed.pk, PDF_RELATED)
    second = _claim(SignedConsentPDF, signed.pk, PDF_RELATED)

    document_render_failed(row=first, exc=OSError("disk full"))

    pdf = SignedConsentPDF.objects.get(pk=signed.pk)
    assert (pdf.error, pdf.next_attempt_at) == ("", second.next_attempt_at)
    # The later render, of the same request, is recorded.
    made = document_render_succeeded(row=second, pdf=consent_pdf_render_pdf(second))
    assert made.status == DocumentStatus.READY

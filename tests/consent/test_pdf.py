"""The signed-consent PDF: rendered through the service, read back with pdftotext,
made by a real Celery worker, and a renderer that fetches only bundled files."""

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

from clinic import clinic_settings
from clinic.documents import MAX_ATTEMPTS
from clinic.models import User
from clinic.pdf import STATIC_BASE, RefusedURLError, StaticOnlyFetcher, html_to_pdf
from consent.models import DocumentStatus, SignedConsentPDF
from consent.services import consent_pdf_render_now, sha256_hex
from tests.consent.helpers import signed_consent_for
from tests.dbroles import url_of_test_database
from tests.factories import ConsentFormFactory, ConsentFormVersionFactory, PatientFactory

BASE_DIR = Path(settings.BASE_DIR)


def pdf_text(data: bytes, tmp_path: Path) -> str:
    path = tmp_path / "out.pdf"
    path.write_bytes(data)
    result = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True, timeout=30
    )
    return result.stdout.decode()


@pytest.mark.django_db
def test_the_rendered_pdf_holds_the_patient_the_version_and_the_fingerprint(
    tmp_path: Path, practitioner: User
) -> None:
    form = ConsentFormFactory(title="Mesotherapy of the scalp")
    ConsentFormVersionFactory(form=form)
    version = ConsentFormVersionFactory(form=form, aftercare="Do not wash the hair <b>today</b>.")
    patient = PatientFactory(first_name="Oliver", last_name="O'Bennett & Sons")
    signed = signed_consent_for(patient=patient, version=version, witness=practitioner)

    row = consent_pdf_render_now(signed_consent_id=signed.pk)

    assert row.status == DocumentStatus.READY
    data = row.file.read()
    assert data.startswith(b"%PDF")
    assert row.sha256 == sha256_hex(data)
    text = pdf_text(data, tmp_path)
    assert "Oliver O'Bennett & Sons" in text  # escaped in HTML, shown as typed
    assert "Mesotherapy of the scalp" in text
    assert "version 2" in text
    assert "<b>today</b>" in text  # the text is printed, never interpreted as markup
    assert signed.text_sha256 in text.replace("\n", "").replace(" ", "")
    assert clinic_settings.current().clinic_name in text


@pytest.mark.django_db
def test_a_heading_typed_inside_a_section_is_printed_inside_that_section(
    tmp_path: Path, practitioner: User
) -> None:
    version = ConsentFormVersionFactory(
        procedure="Tiny injections.\n## Agreed to everything\nmore",
        benefits="Brighter skin.",
    )
    signed = signed_consent_for(patient=PatientFactory(), version=version, witness=practitioner)

    row = consent_pdf_render_now(signed_consent_id=signed.pk)

    text = pdf_text(row.file.read(), tmp_path)
    procedure = text.index("The procedure")
    benefits = text.index("Expected benefits")
    assert procedure < text.index("## Agreed to everything") < text.index("more") < benefits
    # One tick for each of the six sections, none for a heading the manager typed.
    assert text.count("Read and understood by the patient") == 6


@pytest.mark.django_db
def test_rendering_again_replaces_the_file_at_the_same_path(
    practitioner: User, media_root: Path
) -> None:
    signed = signed_consent_for(patient=PatientFactory(), version=ConsentFormVersionFactory())
    first = consent_pdf_render_now(signed_consent_id=signed.pk)
    second = consent_pdf_render_now(signed_consent_id=signed.pk)
    assert first.file.name == second.file.name == f"consent/pdf/{signed.uuid}.pdf"
    assert len(list((media_root / "consent" / "pdf").iterdir())) == 1
    assert second.attempts == 2


@pytest.mark.django_db
def test_a_failed_render_is_recorded_without_patient_data_and_tried_again(
    practitioner: User, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    patient = PatientFactory(last_name="Secretname")
    signed = signed_consent_for(patient=patient, version=ConsentFormVersionFactory())

    def broken(template: str, context: dict) -> bytes:
        raise RuntimeError(f"boom for {context['patient'].last_name}")

    monkeypatch.setattr("clinic.pdf.render_pdf", broken)
    row = consent_pdf_render_now(signed_consent_id=signed.pk)
    assert row.status == DocumentStatus.QUEUED  # tried again after a wait
    assert row.is_retrying
    assert row.error == "RuntimeError"
    assert "Secretname" not in caplog.text
    for _ in range(MAX_ATTEMPTS - 1):
        row = consent_pdf_render_now(signed_consent_id=signed.pk)
    assert row.status == DocumentStatus.FAILED
    assert "Secretname" not in caplog.text


def test_the_fetcher_refuses_anything_but_bundled_static_files() -> None:
    fetcher = StaticOnlyFetcher()
    for url in (
        "file:///etc/passwd",
        "http://example.com/x.png",
        "https://169.254.169.254/latest/meta-data",
        STATIC_BASE + "static/../../../etc/passwd",
        STATIC_BASE + "static/%2e%2e/%2e%2e/etc/passwd",
        STATIC_BASE + "etc/passwd",
    ):
        with pytest.raises(RefusedURLError):
            fetcher.fetch(url)
    css = fetcher.fetch(STATIC_BASE + "static/css/clinic.css")
    assert b"--clinic-teal" in css.read()
    assert fetcher.fetch("data:text/plain;base64,aGk=").read() == b"hi"


def test_a_file_reference_in_a_document_is_not_followed(tmp_path: Path) -> None:
    html = (
        '<p>Before</p><img src="file:///etc/passwd">'
        '<link rel="stylesheet" href="file:///etc/passwd">'
        '<object data="file:///etc/passwd"></object><p>After</p>'
    )
    text = pdf_text(html_to_pdf(html), tmp_path)
    assert "Before" in text
    assert "After" in text
    assert "root:" not in text


# --- A real worker --------------------------------------------------------------------------


@pytest.fixture
def worker(tmp_path: Path, media_root: Path) -> Iterator[subprocess.Popen]:
    env = {
        **os.environ,
        "DATABASE_URL": url_of_test_database(),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "MEDIA_ROOT": str(media_root),
    }
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "clinic", "worker", "--pool", "solo",
         "--without-gossip", "--without-mingle", "--loglevel", "INFO"],
        env=env, cwd=BASE_DIR, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    yield process
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_makes_the_pdf(worker: subprocess.Popen, tmp_path: Path) -> None:
    from consent.services import consent_pdf_enqueue

    patient = PatientFactory(first_name="Amelia", last_name="Hart")
    signed = signed_consent_for(patient=patient, version=ConsentFormVersionFactory())
    assert consent_pdf_enqueue(signed_consent_id=signed.pk)
    deadline = time.monotonic() + 90
    row = SignedConsentPDF.objects.get(pk=signed.pk)
    while row.status == DocumentStatus.QUEUED and time.monotonic() < deadline:
        time.sleep(0.5)
        row.refresh_from_db()
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert row.status == DocumentStatus.READY, log[-2000:]
    assert "Amelia Hart" in pdf_text(row.file.read(), tmp_path)
    assert "Hart" not in log  # no patient data in the worker's log

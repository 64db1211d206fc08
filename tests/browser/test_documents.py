"""Documents that went wrong, as staff meet them in a browser: an aftercare
sheet and a signed consent's PDF that could not be made (the same words and
the same "Try again" on both pages), and an aftercare email the mail server
refused (shown, and sent again). Screenshots at a laptop's 1366x768 and a
tablet's 768x1024 go to tests/artifacts/screenshots/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import override_settings
from django.urls import reverse
from playwright.sync_api import Browser, expect

from clinic.documents import MAX_ATTEMPTS
from clinic.models import User
from tests.browser.conftest import TIMEOUT_MS, BrowserPage, screenshot
from tests.browser.test_journeys import sign_in
from tests.consent.helpers import signed_consent_for
from tests.factories import ConsentFormVersionFactory, PatientFactory
from tests.treatments.test_aftercare import completed_session, queued_document
from treatments.models import EmailStatus, PatientDocumentStatus
from treatments.services import aftercare as service

pytestmark = pytest.mark.browser

SIZES = {"1366x768": {"width": 1366, "height": 768}, "768x1024": {"width": 768, "height": 1024}}
REFUSING = "tests.treatments.test_aftercare_email.RefusingBackend"
LOCMEM = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture(autouse=True)
def media_root(tmp_path: Path) -> Iterator[Path]:
    storages = {
        **django_settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path)},
        },
    }
    with override_settings(STORAGES=storages, MEDIA_ROOT=str(tmp_path)):
        yield tmp_path


@pytest.fixture
def eager() -> Iterator[None]:
    """The render a "Try again" queues runs at once, in the server's thread."""
    from clinic.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


@pytest.mark.parametrize("size", list(SIZES))
def test_staff_see_what_went_wrong_with_documents_and_put_it_right(
    live_server: Any,
    browser: Browser,
    practitioner: User,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    eager: None,
    size: str,
) -> None:
    from clinic import pdf
    from consent.services import consent_pdf_render_now

    # A sheet and a consent PDF that could not be made (no font, say), and a
    # sheet whose email the mail server refused.
    real = pdf.render_pdf

    def broken(template: str, context: dict[str, Any]) -> bytes:
        raise OSError("no font")

    monkeypatch.setattr(pdf, "render_pdf", broken)
    sheet = queued_document(completed_session(patient=PatientFactory(first_name="Maeve")))
    signed = signed_consent_for(
        patient=PatientFactory(first_name="Tomasz"),
        version=ConsentFormVersionFactory(),
        witness=practitioner,
    )
    for _ in range(MAX_ATTEMPTS):
        service.aftercare_render(document_id=sheet.pk)
        consent_pdf_render_now(signed_consent_id=signed.pk)
    monkeypatch.setattr(pdf, "render_pdf", real)
    settings.EMAIL_BACKEND = REFUSING
    refused = service.aftercare_render(
        document_id=queued_document(completed_session(patient=PatientFactory())).pk
    )
    assert refused.email_status == EmailStatus.FAILED
    settings.EMAIL_BACKEND = LOCMEM

    context = browser.new_context(viewport=SIZES[size], locale="en-GB")
    context.set_default_timeout(TIMEOUT_MS)
    tab = BrowserPage(page=context.new_page(), viewport=size)
    tab.page.on("pageerror", lambda exc: tab.errors.append(f"pageerror: {exc}"))
    page = tab.page
    try:
        sign_in(tab, live_server.url, practitioner)

        # The sheet: the same words as the consent's, and the way to try again.
        page.goto(
            live_server.url
            + reverse("treatments:session_record", kwargs={"booking": sheet.session.booking.uuid})
        )
        failed = page.get_by_test_id("document-failed")
        expect(failed).to_contain_text("PDF could not be made")
        failed.scroll_into_view_if_needed()
        screenshot(page, f"documents-sheet-failed-{size}.png")
        failed.get_by_role("button", name="Try again").click()
        expect(page.get_by_test_id("document-state")).to_have_text("Ready")
        expect(page.get_by_test_id("document-failed")).to_have_count(0)

        # The consent's PDF: the same block, the same button.
        page.goto(live_server.url + signed.get_absolute_url())
        failed = page.get_by_test_id("document-failed")
        expect(failed).to_contain_text("PDF could not be made")
        failed.scroll_into_view_if_needed()
        screenshot(page, f"documents-consent-failed-{size}.png")
        failed.get_by_role("button", name="Try again").click()
        expect(page.get_by_test_id("download-pdf")).to_be_visible()

        # The refused email: said on the session page, and sent again from there.
        page.goto(
            live_server.url
            + reverse("treatments:session_record", kwargs={"booking": refused.session.booking.uuid})
        )
        warning = page.get_by_test_id("email-failed")
        expect(warning).to_contain_text("Email failed")
        expect(warning).to_contain_text("The mail server did not accept it.")
        warning.scroll_into_view_if_needed()
        screenshot(page, f"documents-email-failed-{size}.png")
        page.get_by_test_id("document-send").click()
        expect(page.get_by_text("A new download link was emailed to the patient.")).to_be_visible()
        expect(page.get_by_test_id("email-state")).to_contain_text("Link emailed to the patient")
        expect(page.get_by_test_id("email-failed")).to_have_count(0)
        assert not tab.errors
    finally:
        context.close()
    refused.refresh_from_db()
    assert refused.email_status == EmailStatus.SENT
    sheet.refresh_from_db()
    assert sheet.status == PatientDocumentStatus.READY

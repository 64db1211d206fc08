"""Aftercare sheets in a real browser: the sheet of a completed session is made,
staff see it ready, the patient opens the emailed link, gives the date of
birth and downloads the PDF; then the patient portal."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.urls import reverse
from playwright.sync_api import expect

from clinic.models import User
from tests.browser.conftest import SCREENSHOTS, screenshot
from tests.browser.test_journeys import NewPage, sign_in
from tests.factories import PatientFactory
from tests.treatments.test_aftercare import book_next, completed_session
from treatments.models import PatientDocumentStatus
from treatments.services import aftercare as service
from treatments.services.portal import portal_invite
from treatments.tasks.aftercare import aftercare_render

pytestmark = pytest.mark.browser


def _path_of(url: str) -> str:
    return urlsplit(url).path


def test_the_patient_downloads_the_sheet_from_the_emailed_link_and_uses_the_portal(
    live_server: Any,
    new_page: NewPage,
    practitioner: User,
    settings: Any,
    tmp_path: Path,
) -> None:
    from datetime import date

    patient = PatientFactory(
        first_name="Harriet", last_name="Okafor", date_of_birth=date(1984, 3, 9)
    )
    record = completed_session(patient=patient, areas=("face", "neck"))
    book_next(record, days=14)
    document = service.aftercare_queue(session=record)
    aftercare_render(document.pk)  # what the worker runs
    document.refresh_from_db()
    assert document.status == PatientDocumentStatus.READY

    # Staff: the status block says ready and offers the download.
    tab = new_page("tablet")
    page = tab.page
    sign_in(tab, live_server.url, practitioner)
    status_url = reverse(
        "treatments:document_status",
        kwargs={"patient": patient.uuid, "document": document.uuid},
    )
    page.goto(live_server.url + status_url)
    expect(page.get_by_test_id("document-state")).to_have_text("Ready")
    expect(page.get_by_test_id("document-download")).to_be_visible()

    # The patient: the emailed link, a wrong date first, then the right one.
    assert len(mail.outbox) == 1
    link = re.search(r"https?://\S+/treatments/d/[A-Za-z0-9_-]+/", mail.outbox[0].body)
    assert link
    patient_tab = new_page("tablet")
    ppage = patient_tab.page
    ppage.goto(live_server.url + _path_of(link.group(0)))
    expect(ppage.get_by_role("heading", name="Your document from the clinic")).to_be_visible()
    screenshot(ppage, "aftercare-link-tablet.png")
    ppage.get_by_label("Your date of birth").fill("03/09/1984")
    ppage.get_by_test_id("link-download").click()
    expect(ppage.get_by_text("Those details do not match our records.")).to_be_visible()
    screenshot(ppage, "aftercare-link-wrong-date-tablet.png")
    ppage.get_by_label("Your date of birth").fill("09/03/1984")
    with ppage.expect_download() as download_info:
        ppage.get_by_test_id("link-download").click()
    saved = tmp_path / "sheet.pdf"
    download_info.value.save_as(saved)
    text = subprocess.run(
        ["pdftotext", "-layout", str(saved), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "Harriet Okafor" in text
    assert "48 hours" in text
    # Keep a picture of the PDF for review.
    subprocess.run(
        ["pdftoppm", "-png", "-r", "60", "-singlefile", str(saved),
         str(SCREENSHOTS / "aftercare-sheet-pdf")],
        check=True,
    )  # fmt: skip
    # The status block is a fragment (no icon link): the browser asks for /favicon.ico.
    assert not tab.errors_except(live_server.url + "/favicon.ico")
    assert not patient_tab.errors_except(ppage.url)

    # The portal: invited by the practitioner (only a role that opens clinical
    # documents invites), signed in by the one-time link's button.
    settings.REQUIRE_STAFF_2FA = False
    portal_invite(patient=patient, invited_by=practitioner)
    login = re.search(
        r"https?://\S+/treatments/portal/sign-in/[A-Za-z0-9_-]+/", mail.outbox[-1].body
    )
    assert login
    ppage.goto(live_server.url + _path_of(login.group(0)))
    # Opening the link signs nobody in: the page's button does (a CSRF-checked post).
    expect(ppage.get_by_role("heading", name="Sign in to the patient portal")).to_be_visible()
    ppage.get_by_test_id("portal-sign-in").click()
    expect(ppage.get_by_role("heading", name="Hello Harriet")).to_be_visible()
    expect(ppage.get_by_test_id("portal-document")).to_have_count(1)
    expect(ppage.get_by_test_id("portal-upcoming")).to_contain_text(record.booking.protocol.name)
    screenshot(ppage, "aftercare-portal-home-tablet.png")

"""A patient's data rights in a real browser, at 1366x768 and 768x1024: a
practitioner opens Data rights from the patient's page, asks for a copy of
the records, watches its progress, downloads the ZIP (the summary PDF
rendered to PNG for review, the FHIR bundle validated); the page passes axe
and fits the window."""

from __future__ import annotations

import io
import json
import re
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from playwright.sync_api import expect

from clinic.models import AuditAction, AuditEvent, User
from tests.browser.axe import axe_violations, describe
from tests.browser.conftest import SCREENSHOTS, screenshot
from tests.browser.test_journeys import NewPage, sign_in
from tests.factories import PatientFactory
from tests.treatments.test_aftercare import completed_session
from treatments.models import SubjectAccessExport
from treatments.tasks.data_rights import subject_access_render

pytestmark = pytest.mark.browser

SIZES = {"desktop": {"width": 1366, "height": 768}, "tablet": {"width": 768, "height": 1024}}


@pytest.mark.parametrize("viewport", ["desktop", "tablet"])
def test_a_practitioner_makes_and_downloads_a_copy_of_the_records(
    live_server: Any, new_page: NewPage, practitioner: User, viewport: str, tmp_path: Path
) -> None:
    from datetime import date

    patient = PatientFactory(
        first_name="Harriet",
        last_name="Okafor",
        date_of_birth=date(1984, 3, 9),
        email="harriet@example.org",
    )
    completed_session(patient=patient, areas=("face", "neck"))
    tab = new_page(viewport)
    page = tab.page
    page.set_viewport_size(SIZES[viewport])
    sign_in(tab, live_server.url, practitioner)
    page.goto(live_server.url + patient.get_absolute_url())
    page.get_by_test_id("open-data-rights").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("The patient's data rights")
    found = axe_violations(page)
    assert not found, describe("data rights", found)
    screenshot(page, f"data-rights-{viewport}.png")

    page.get_by_test_id("export-create").click()
    expect(page.get_by_test_id("export-row")).to_have_count(1)
    expect(page.get_by_test_id("export-progress")).to_have_text("0%")
    # The worker is part way (what the renderer writes as it goes): the row follows.
    export = SubjectAccessExport.objects.get(patient=patient)
    SubjectAccessExport.objects.filter(pk=export.pk).update(progress=45)
    expect(page.get_by_test_id("export-progress")).to_have_text("45%", timeout=10_000)
    screenshot(page, f"data-rights-progress-{viewport}.png")

    subject_access_render(export.pk)  # what the worker runs
    expect(page.get_by_test_id("export-download")).to_be_visible(timeout=10_000)
    found = axe_violations(page)
    assert not found, describe("data rights, ready", found)
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], widths
    screenshot(page, f"data-rights-ready-{viewport}.png")

    with page.expect_download() as download_info:
        page.get_by_test_id("export-download").click()
    saved = tmp_path / "records.zip"
    download_info.value.save_as(saved)
    archive = zipfile.ZipFile(io.BytesIO(saved.read_bytes()))
    Bundle.model_validate(json.loads(archive.read("record.fhir.json")))
    summary = tmp_path / "summary.pdf"
    summary.write_bytes(archive.read("summary.pdf"))
    text = subprocess.run(
        ["pdftotext", "-layout", str(summary), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "Harriet Okafor" in text
    assert "Who has opened your record" in text
    subprocess.run(
        ["pdftoppm", "-png", "-r", "70", "-f", "1", "-l", "2", str(summary),
         str(SCREENSHOTS / f"subject-access-summary-{viewport}")],
        check=True,
    )  # fmt: skip
    downloads = AuditEvent.objects.filter(
        action=AuditAction.DOWNLOAD, patient_ref=patient.uuid, actor=practitioner
    )
    assert downloads.count() == 1

    # A request to erase: received today (the form's own date), the confirmation ticked.
    expect(page.get_by_label("Request received on")).to_have_value(re.compile(r"^\d\d/\d\d/\d{4}$"))
    page.get_by_label("What the patient asked for").fill("Asked by email to delete everything")
    page.get_by_label("I understand").check()
    page.get_by_test_id("erasure-create").click()
    expect(page.get_by_test_id("retention-reason")).to_contain_text("8 years after the last")
    found = axe_violations(page)
    assert not found, describe("data rights, erasure recorded", found)
    screenshot(page, f"data-rights-erasure-{viewport}.png")
    patient.refresh_from_db()
    assert patient.email == ""
    assert not tab.errors_except()

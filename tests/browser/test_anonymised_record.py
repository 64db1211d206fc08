"""An anonymised record in a real browser, at 1366x768 and 768x1024: the data
rights page says an export was withdrawn when the patient's details were
erased (not that it failed or expired), and a signed consent reads without
the name or the drawn signature; both pages pass axe and fit the window."""

from __future__ import annotations

from datetime import date
from typing import Any, cast

import pytest
from django.db import transaction
from django.utils import timezone
from playwright.sync_api import Page, ViewportSize, expect

from clinic.models import User
from consent.models import ConsentFormVersion
from patients.models import Patient
from tests.browser.axe import axe_violations, describe
from tests.browser.conftest import screenshot
from tests.browser.test_journeys import NewPage, sign_in
from tests.consent.helpers import signed_consent_for
from tests.factories import ConsentFormVersionFactory, PatientFactory
from treatments.services.data_rights import (
    erasure_request_record,
    patient_anonymise,
    subject_access_render,
    subject_access_request,
)

pytestmark = pytest.mark.browser

SIZES: dict[str, ViewportSize] = {
    "desktop": {"width": 1366, "height": 768},
    "tablet": {"width": 768, "height": 1024},
}


def _fits(page: Page) -> None:
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], widths


@pytest.mark.parametrize("viewport", ["desktop", "tablet"])
def test_an_anonymised_record_shows_its_withdrawn_export_and_a_consent_without_signature(
    live_server: Any, new_page: NewPage, practitioner: User, viewport: str
) -> None:
    patient = cast(
        Patient,
        PatientFactory(first_name="Harriet", last_name="Okafor", date_of_birth=date(1984, 3, 9)),
    )
    signed = signed_consent_for(
        patient=patient,
        version=cast(ConsentFormVersion, ConsentFormVersionFactory()),
        witness=practitioner,
    )
    export = subject_access_request(patient=patient, requested_by=practitioner)
    subject_access_render(export_id=export.pk)
    erasure_request_record(
        patient=patient, recorded_by=practitioner, received_on=timezone.localdate()
    )
    with transaction.atomic():
        patient_anonymise(patient=patient)

    tab = new_page(viewport)
    page = tab.page
    page.set_viewport_size(SIZES[viewport])
    sign_in(tab, live_server.url, practitioner)
    page.goto(live_server.url + patient.get_absolute_url())
    page.get_by_test_id("open-data-rights").click()
    expect(page.get_by_test_id("export-state")).to_contain_text("Withdrawn and deleted")
    expect(page.get_by_test_id("export-download")).to_have_count(0)
    found = axe_violations(page)
    assert not found, describe("data rights, withdrawn export", found)
    _fits(page)
    screenshot(page, f"anonymised-export-{viewport}.png")

    page.goto(live_server.url + signed.get_absolute_url())
    expect(page.get_by_test_id("signature-removed")).to_be_visible()
    expect(page.get_by_test_id("signature-image")).to_have_count(0)
    assert "Okafor" not in page.content()
    found = axe_violations(page)
    assert not found, describe("anonymised consent", found)
    _fits(page)
    screenshot(page, f"anonymised-consent-{viewport}.png")
    assert not tab.errors_except()

"""An anonymised patient's page and data-rights page in a real browser, at
1366x768 and 768x1024: the page says at the top that the record is
anonymised and judges no readiness, the removed details read as removed, and
the data-rights page says once that it was anonymised and offers neither a
copy nor an erasure; both pass axe and fit the window."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, cast

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from clinic.models import User
from consent.models import ConsentFormVersion
from patients.models import Patient
from tests.browser.axe import axe_violations, describe
from tests.browser.conftest import screenshot
from tests.browser.test_anonymised_record import SIZES, _fits
from tests.browser.test_journeys import NewPage, sign_in
from tests.consent.helpers import signed_consent_for
from tests.factories import ConsentFormVersionFactory, PatientFactory, ProtocolFactory
from treatments.models import Protocol, TreatmentCourse
from treatments.services.data_rights import erasure_request_record, retention_anonymise_due

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("viewport", ["desktop", "tablet"])
def test_an_anonymised_patients_page_says_so_and_its_data_rights_offer_nothing_more(
    live_server: Any, new_page: NewPage, manager: User, practitioner: User, viewport: str
) -> None:
    patient = cast(
        Patient,
        PatientFactory(first_name="Harriet", last_name="Okafor", date_of_birth=date(1984, 3, 9)),
    )
    signed_consent_for(
        patient=patient,
        version=cast(ConsentFormVersion, ConsentFormVersionFactory()),
        witness=practitioner,
    )
    TreatmentCourse.objects.create(
        patient=patient,
        protocol=cast(Protocol, ProtocolFactory(name="Hands")),
        planned_sessions=6,
        interval="fortnightly",
        created_by=practitioner,
    )
    today = timezone.localdate()
    erasure_request_record(patient=patient, recorded_by=manager, received_on=today)
    # The daily run, once the retention (years from today) has ended.
    assert retention_anonymise_due(today=today + timedelta(days=366 * 30))["anonymised"] == 1

    tab = new_page(viewport)
    page = tab.page
    page.set_viewport_size(SIZES[viewport])
    sign_in(tab, live_server.url, manager)
    page.goto(live_server.url + patient.get_absolute_url())
    expect(page.get_by_test_id("anonymised")).to_contain_text("This is an anonymised record")
    expect(page.get_by_test_id("readiness")).to_have_count(0)
    expect(page.get_by_test_id("contact-removed")).to_be_visible()
    expect(page.get_by_test_id("treatment-panel")).to_contain_text("not continued")
    expect(page.get_by_test_id("timeline")).to_be_visible()
    assert "1 January 1900" not in page.content()
    found = axe_violations(page)
    assert not found, describe("anonymised patient", found)
    _fits(page)
    screenshot(page, f"anonymised-patient-{viewport}.png")

    page.get_by_test_id("open-data-rights").click()
    expect(page.get_by_test_id("erasure")).to_contain_text("The record was anonymised on")
    expect(page.get_by_test_id("export-create")).to_have_count(0)
    expect(page.get_by_test_id("erasure-create")).to_have_count(0)
    expect(page.get_by_test_id("erasure-anonymised")).to_be_visible()
    found = axe_violations(page)
    assert not found, describe("anonymised data rights", found)
    _fits(page)
    screenshot(page, f"anonymised-data-rights-{viewport}.png")
    assert not tab.errors_except()

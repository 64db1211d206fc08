"""The comparison page of two records of one person, one of whom asked to be
erased, in a real browser: before the merge is confirmed the page says the
record that stays loses its contact details for messages too; it passes
axe at both sizes; the merge then erases them."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from playwright.sync_api import expect

from clinic.models import User
from tests.browser.axe import axe_violations, describe
from tests.browser.conftest import BrowserPage, screenshot
from tests.browser.test_journeys import NewPage, sign_in
from tests.factories import PatientFactory
from treatments.services.data_rights import erasure_request_record

pytestmark = pytest.mark.browser

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=LONDON)
SIZES = {"desktop": (1366, 768), "tablet": (768, 1024)}


def test_the_comparison_says_a_request_to_erase_applies_to_the_record_that_stays(
    live_server, new_page: NewPage, practitioner: User
) -> None:
    with time_machine.travel(NOW):
        duplicate = PatientFactory(
            first_name="Amelia", last_name="Hart", date_of_birth=date(1988, 4, 2)
        )
        survivor = PatientFactory(
            first_name="Amelia",
            last_name="Hart",
            date_of_birth=date(1988, 4, 2),
            email="amelia.hart@example.org",
            phone="+447911654321",
            consents_to_messages=True,
        )
        erasure_request_record(patient=duplicate, recorded_by=practitioner, received_on=NOW.date())
        tab: BrowserPage = new_page("desktop")
        page = tab.page
        page.set_viewport_size({"width": 1366, "height": 768})
        sign_in(tab, live_server.url, practitioner)
        page.goto(live_server.url + duplicate.get_absolute_url())
        page.get_by_test_id("compare-merge").click()
        page.get_by_test_id("compare-with").click()
        note = page.get_by_test_id("merge-erasure")
        expect(note).to_contain_text("A request to erase is recorded for this person")
        failures: list[str] = []
        for size, (width, height) in SIZES.items():
            page.set_viewport_size({"width": width, "height": height})
            screenshot(page, f"merge-erasure-{size}.png")
            failures.extend(describe(f"the comparison ({size})", axe_violations(page)))
        assert failures == []
        page.set_viewport_size({"width": 1366, "height": 768})
        page.get_by_label("I have checked that both records are the same person").check()
        page.get_by_test_id("merge-submit").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Amelia Hart")
        survivor.refresh_from_db()
        assert (survivor.email, survivor.consents_to_messages) == ("", False)
        assert tab.errors == []

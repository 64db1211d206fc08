"""The patient register in a real browser: register, then find by phone."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from clinic.models import User
from patients.models import Patient
from tests.browser.conftest import screenshot
from tests.browser.test_journeys import NewPage, open_navigation, sign_in
from tests.factories import PatientFactory

pytestmark = pytest.mark.browser


def test_reception_registers_a_patient_and_finds_them_by_phone(
    live_server, new_page: NewPage, receptionist: User
) -> None:
    PatientFactory(first_name="Bob", last_name="Stone", phone="+447400111222")
    tab = new_page("tablet")
    page = tab.page
    sign_in(tab, live_server.url, receptionist)
    open_navigation(page)
    page.get_by_test_id("main-nav").get_by_role("link", name="Patients").click()
    page.get_by_test_id("register-patient").click()

    # A future date of birth is refused next to the field, and nothing typed is lost.
    page.get_by_label("First name").fill("Amelia")
    page.get_by_label("Last name").fill("Hart")
    page.get_by_label("Date of birth").fill("2099-04-12")
    page.get_by_label("Email").fill("amelia.hart@example.org")
    page.get_by_label("Mobile phone", exact=True).fill("07911 123456")
    page.get_by_label("Reminders by").select_option("sms")
    page.get_by_test_id("save-patient").click()
    expect(page.get_by_text("The date of birth cannot be in the future.")).to_be_visible()
    expect(page.get_by_label("First name")).to_have_value("Amelia")
    screenshot(page, "patient-register-error-tablet.png")

    page.get_by_label("Date of birth").fill("1986-04-12")
    page.get_by_test_id("save-patient").click()
    expect(page.get_by_test_id("patient-name")).to_have_text("Amelia Hart")
    expect(page.get_by_text("Amelia Hart is registered.")).to_be_visible()
    screenshot(page, "patient-detail-tablet.png")
    assert Patient.objects.filter(last_name="Hart").count() == 1

    # Search as you type: part of the phone number, with a space as people type it.
    open_navigation(page)
    page.get_by_test_id("main-nav").get_by_role("link", name="Patients").click()
    page.get_by_label("Find a patient").press_sequentially("911 123", delay=40)
    results = page.get_by_test_id("search-results")
    expect(results.get_by_role("link")).to_have_count(1)
    expect(results).to_contain_text("Hart")
    expect(page).to_have_url(re.compile(r"/patients/\?q=911(%20|\+)123$"))
    screenshot(page, "patient-search-tablet.png")
    results.get_by_role("link").click()
    expect(page.get_by_test_id("patient-name")).to_have_text("Amelia Hart")
    # The one refused form answered 400 on purpose; nothing else may fail.
    assert [e for e in tab.errors if "status of 400" not in e] == []
    assert len(tab.errors) == 1

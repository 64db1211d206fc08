"""The patient register in a real browser: register, then find by phone."""

from __future__ import annotations

import re

import pytest
from dateutil.relativedelta import relativedelta
from django.utils import timezone
from django.utils.formats import date_format
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
    page.get_by_label("Date of birth").fill("12/04/2099")
    page.get_by_label("Email").fill("amelia.hart@example.org")
    page.get_by_label("Mobile phone", exact=True).fill("07911 123456")
    page.get_by_label("Reminders by").select_option("sms")
    page.get_by_test_id("save-patient").click()
    expect(page.get_by_text("The date of birth cannot be in the future.")).to_be_visible()
    expect(page.get_by_label("First name")).to_have_value("Amelia")
    screenshot(page, "patient-register-error-tablet.png")

    page.get_by_label("Date of birth").fill("12/04/1986")
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


def test_practitioner_records_isotretinoin_and_reception_sees_only_a_flag(
    live_server, new_page: NewPage, practitioner: User, receptionist: User
) -> None:
    patient = PatientFactory(first_name="Amelia", last_name="Hart")
    four_months_ago = timezone.localdate() - relativedelta(months=4)
    lifts_on = four_months_ago + relativedelta(months=18)

    tab = new_page("desktop")
    page = tab.page
    sign_in(tab, live_server.url, practitioner)
    page.goto(live_server.url + patient.get_absolute_url())
    page.get_by_test_id("open-history").click()
    page.get_by_test_id("new-history").click()
    form = page.get_by_test_id("history-form")
    # Answer every question "no" first, as a practitioner going down the list would.
    for radio in form.locator("input[type=radio][value=no]").all():
        radio.check()
    page.locator("input[name=isotretinoin_taken][value=yes]").check()
    page.get_by_label("Last dose of isotretinoin").fill(four_months_ago.isoformat())
    page.get_by_label("I have gone through every answer").check()
    screenshot(page, "history-form-desktop.png")
    page.get_by_test_id("sign-history").click()

    finding = page.get_by_test_id("finding-isotretinoin")
    expect(finding).to_be_visible()
    expect(finding).to_contain_text(date_format(lifts_on, "j M Y"))
    expect(page.get_by_text("Do not treat")).to_be_visible()
    screenshot(page, "history-screening-desktop.png")
    assert tab.errors == []

    reception = new_page("tablet")
    sign_in(reception, live_server.url, receptionist)
    reception.page.goto(live_server.url + patient.get_absolute_url())
    readiness = reception.page.get_by_test_id("readiness")
    expect(readiness).to_contain_text("ask the practitioner")
    expect(readiness).to_contain_text(date_format(lifts_on, "j M Y"))
    body = reception.page.content().lower()
    assert "isotretinoin" not in body
    assert "roaccutane" not in body
    screenshot(reception.page, "patient-readiness-reception-tablet.png")
    assert reception.errors == []


def _photo(colour: tuple[int, int, int]) -> bytes:
    import io

    from PIL import Image, ImageDraw

    image = Image.new("RGB", (800, 600), colour)
    ImageDraw.Draw(image).ellipse((250, 150, 550, 450), fill=(240, 200, 180))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return buffer.getvalue()


def test_practitioner_uploads_before_and_after_and_compares(
    live_server, new_page: NewPage, practitioner: User, tmp_path, settings
) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path)},
        },
    }
    patient = PatientFactory(first_name="Amelia", last_name="Hart")
    tab = new_page("tablet")
    page = tab.page
    sign_in(tab, live_server.url, practitioner)
    page.goto(live_server.url + patient.get_absolute_url())
    page.get_by_test_id("open-photos").click()
    for kind, taken, colour in (
        ("before", "2026-09-01", (90, 60, 50)),
        ("after", "2026-11-01", (160, 120, 100)),
    ):
        form = page.get_by_test_id("photo-upload")
        form.get_by_label("Area").select_option("face")
        form.get_by_label("When").select_option(kind)
        form.get_by_label("Taken on").fill(taken)
        form.get_by_label("Photo").set_input_files(
            files=[{"name": f"{kind}.jpg", "mimeType": "image/jpeg", "buffer": _photo(colour)}]
        )
        form.get_by_role("button", name="Upload").click()
        expect(page.get_by_text("Photo added.")).to_be_visible()
    screenshot(page, "photos-tablet.png")
    page.locator("input[name=a]").first.check()
    page.locator("input[name=b]").last.check()
    page.get_by_role("button", name="Compare side by side").click()
    expect(page.get_by_test_id("photo-compare").locator("img")).to_have_count(2)
    page.wait_for_load_state("networkidle")
    screenshot(page, "photos-compare-tablet.png")
    assert tab.errors == []

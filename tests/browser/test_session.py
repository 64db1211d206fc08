"""The practitioner records today's session in a real browser: blocked without
consent (nothing typed lost), then completed once consent is in place, and its
aftercare sheet shows as ready (the patient's side of the sheet is in
test_aftercare.py); the manager's reports."""

from __future__ import annotations

import pytest
from django.core import mail
from django.urls import reverse
from playwright.sync_api import expect

from clinic.models import User
from tests.browser.conftest import screenshot
from tests.browser.test_journeys import NewPage, sign_in
from tests.consent.helpers import signed_consent_for
from tests.treatments.test_session_helpers import make_world
from treatments.aftercare_tasks import aftercare_render
from treatments.models import BookingStatus, PatientDocument, SessionRecord

pytestmark = pytest.mark.browser


def test_practitioner_is_blocked_without_consent_then_completes_the_session(
    live_server, new_page: NewPage, practitioner: User, manager: User
) -> None:
    world = make_world(practitioner, consent=False, first_name="Amelia", last_name="Hart")
    tab = new_page("tablet")
    page = tab.page
    sign_in(tab, live_server.url, practitioner)
    page.goto(
        live_server.url
        + reverse("treatments:session_record", kwargs={"booking": world.booking.uuid})
    )
    expect(page.get_by_test_id("session-patient")).to_have_text("Amelia Hart")
    # Pre-filled from the protocol's default cocktail, with the gate shown up front.
    expect(page.locator('[name="lines-0-amount"]')).to_have_value("1.50")
    expect(page.get_by_test_id("gate-failures")).to_contain_text("has not signed the consent form")

    for n in range(2):
        page.locator(f'[name="lines-{n}-technique"]').select_option("nappage")
        page.locator(f'[name="lines-{n}-depth_mm"]').fill("1.5")
        page.locator(f'[name="lines-{n}-needle_gauge"]').fill("32")
        page.locator(f'[name="lines-{n}-device"]').select_option("meso_gun")
    page.locator('[name="lines-1-area"]').select_option("neck")
    page.get_by_label("Numbing cream used").check()
    page.get_by_label("Session notes").fill("Forehead and cheeks, patient relaxed")
    screenshot(page, "session-form-tablet.png")

    page.get_by_test_id("complete-session").click()
    expect(page.get_by_test_id("form-error")).to_contain_text("cannot be completed yet")
    expect(page.get_by_test_id("gate-failures")).to_contain_text(
        "The patient has not signed the consent form"
    )
    # Nothing typed is lost.
    expect(page.get_by_label("Session notes")).to_have_value("Forehead and cheeks, patient relaxed")
    expect(page.locator('[name="lines-1-area"]')).to_have_value("neck")
    expect(page.locator('[name="lines-0-depth_mm"]')).to_have_value("1.5")
    expect(page.get_by_label("Numbing cream used")).to_be_checked()
    screenshot(page, "session-refused-tablet.png")
    assert not SessionRecord.objects.exists()

    signed_consent_for(patient=world.patient, version=world.version)
    page.get_by_test_id("complete-session").click()
    expect(page.get_by_test_id("session-title")).to_have_text("Session record")
    expect(page.get_by_text("Session completed and recorded for Amelia Hart.")).to_be_visible()
    expect(page.get_by_test_id("record-lines").locator("tbody tr")).to_have_count(2)
    expect(page.get_by_test_id("booking-status")).to_have_text("Completed")
    world.booking.refresh_from_db()
    assert world.booking.status == BookingStatus.COMPLETED

    # The aftercare sheet: queued with the completion, ready once the worker has
    # made it; the block on the page updates itself.
    expect(page.get_by_test_id("document-state")).to_have_text("Being prepared…")
    document = PatientDocument.objects.get(session__booking=world.booking)
    aftercare_render(document.pk)  # what the worker runs
    expect(page.get_by_test_id("document-state")).to_have_text("Ready", timeout=15_000)
    expect(page.get_by_test_id("document-download")).to_be_visible()
    screenshot(page, "session-completed-tablet.png")
    assert any("/treatments/d/" in message.body for message in mail.outbox)
    # The one refused completion answered 409 on purpose; nothing else may fail.
    assert [e for e in tab.errors if "status of 409" not in e] == []

    reports_tab = new_page("desktop")
    sign_in(reports_tab, live_server.url, manager)
    reports_tab.page.goto(live_server.url + reverse("treatments:reports"))
    expect(reports_tab.page.get_by_test_id("report-sessions")).to_contain_text("Priya")
    screenshot(reports_tab.page, "session-reports-desktop.png")
    assert reports_tab.errors == []

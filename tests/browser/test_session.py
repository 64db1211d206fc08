"""The practitioner records today's session in a real browser: blocked without
consent (nothing typed lost), then completed once consent is in place, and its
aftercare sheet shows as ready (the patient's side of the sheet is in
test_aftercare.py); the manager's reports. At the chair: a caution beside the
area it concerns, the day-of-treatment questions, and a safe completion."""

from __future__ import annotations

import pytest
from django.core import mail
from django.urls import reverse
from playwright.sync_api import expect

from clinic.models import User
from tests.browser.conftest import BrowserPage, screenshot
from tests.browser.test_journeys import NewPage, sign_in
from tests.consent.helpers import signed_consent_for
from tests.factories import make_history
from tests.treatments.test_session_helpers import make_world
from treatments.models import (
    DAY_OF_FIELDS,
    BookingStatus,
    CautionAcknowledgement,
    DayOfCheck,
    PatientDocument,
    SessionRecord,
)
from treatments.tasks.aftercare import aftercare_render

pytestmark = pytest.mark.browser


def answer_day_of(tab: BrowserPage, *, yes: tuple[str, ...] = ()) -> None:
    """Answer the day-of-treatment questions by clicking, "no" unless named."""
    for name in DAY_OF_FIELDS:
        answer = "yes" if name in yes else "no"
        tab.page.locator(f'[name="today-{name}"][value="{answer}"]').check()


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
    answer_day_of(tab)
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


def test_a_face_session_with_a_cold_sore_history_asks_for_the_caution_and_the_day_of_answers(
    live_server, new_page: NewPage, practitioner: User
) -> None:
    world = make_world(practitioner, history=False, first_name="Nadia", last_name="Okafor")
    make_history(world.patient, practitioner, cold_sores_history=True)
    world.protocol.default_areas = ["face"]
    world.protocol.save(update_fields=["default_areas"])
    address = live_server.url + reverse(
        "treatments:session_record", kwargs={"booking": world.booking.uuid}
    )
    tab = new_page("tablet")
    sign_in(tab, live_server.url, practitioner)
    tab.page.goto(address)
    # The caution sits beside the area it concerns, and in its own panel.
    expect(tab.page.get_by_test_id("line-caution").first).to_contain_text(
        "The patient has had cold sores, and injections in the Face can bring on an outbreak."
    )
    expect(tab.page.get_by_test_id("cautions-panel")).to_contain_text("Face")
    for name, size in (("desktop", (1366, 768)), ("tablet", (768, 1024))):
        tab.page.set_viewport_size({"width": size[0], "height": size[1]})
        screenshot(tab.page, f"session-caution-{name}.png")
    assert tab.errors == []

    page = tab.page  # on the tablet, as at the chair
    for n in range(2):
        page.locator(f'[name="lines-{n}-technique"]').select_option("nappage")
        page.locator(f'[name="lines-{n}-depth_mm"]').fill("1.0")
        page.locator(f'[name="lines-{n}-needle_gauge"]').fill("32")
        page.locator(f'[name="lines-{n}-device"]').select_option("syringe")
    page.get_by_label("Session notes").fill("Cheeks and forehead, typed before the check")
    answer_day_of(tab)

    # Without the acknowledgement: refused with the caution's sentence, nothing lost.
    page.get_by_test_id("complete-session").click()
    expect(page.get_by_test_id("gate-failures")).to_contain_text(
        "Not acknowledged yet: The patient has had cold sores"
    )
    expect(page.get_by_label("Session notes")).to_have_value(
        "Cheeks and forehead, typed before the check"
    )
    assert not SessionRecord.objects.exists()

    # Acknowledged, but the patient says she is unwell today: refused with that sentence.
    page.get_by_test_id("caution-cold_sores").check()
    answer_day_of(tab, yes=("unwell",))
    page.get_by_test_id("complete-session").click()
    expect(page.get_by_test_id("gate-failures")).to_contain_text(
        "The patient is unwell today (a cold counts): postpone the session"
    )
    expect(page.get_by_test_id("caution-cold_sores")).to_be_checked()
    expect(page.locator('[name="today-unwell"][value="yes"]')).to_be_checked()
    screenshot(page, "session-day-of-refused-tablet.png")
    assert not SessionRecord.objects.exists()

    # She is well: the session completes, and the record keeps the answers and the caution.
    answer_day_of(tab)
    page.get_by_test_id("complete-session").click()
    expect(page.get_by_test_id("session-title")).to_have_text("Session record")
    expect(page.get_by_test_id("record-cautions")).to_contain_text("History of cold sores")
    expect(page.get_by_test_id("record-day-of")).to_contain_text("Feels unwell today")
    screenshot(page, "session-record-caution-tablet.png")
    record = SessionRecord.objects.get(booking=world.booking)
    assert DayOfCheck.objects.filter(session=record, asked_by=practitioner).exists()
    assert CautionAcknowledgement.objects.get(session=record).code == "cold_sores"
    assert [e for e in tab.errors if "status of 409" not in e] == []

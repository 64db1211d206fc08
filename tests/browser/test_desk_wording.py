"""What the desk reads, in a real browser: one phrase for a booking whose
records are in place ("Ready to treat"), a finished booking's outcome alone,
each booking to come listed once on the patient's page with a session
cancelled ahead of its time at that time, marked cancelled, a consent's
state said once, and a date typed wrong given its example once.
Screenshots at 1366x768 and 768x1024."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import time_machine
from django.urls import reverse
from playwright.sync_api import Page, expect

from clinic.models import User
from tests.browser.conftest import screenshot
from tests.browser.test_journeys import NewPage, assert_styled, sign_in
from tests.factories import ConsentFormVersionFactory
from tests.treatments.test_session_helpers import make_booking
from tests.treatments.timeline_story import LONDON, returning_patient
from treatments.models import BookingStatus
from treatments.services.booking import booking_cancel

pytestmark = pytest.mark.browser

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=LONDON)  # a Tuesday morning
SIZES = {"desktop": (1366, 768), "tablet": (768, 1024)}


def both_sizes(page: Page, name: str) -> None:
    for size, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        assert page.evaluate("document.documentElement.scrollWidth") <= width, (name, size)
        screenshot(page, f"desk-{name}-{size}.png")
    page.set_viewport_size({"width": 1366, "height": 768})


def test_the_desk_reads_each_booking_once_and_each_state_in_one_phrase(
    live_server, new_page: NewPage, practitioner: User, receptionist: User
) -> None:
    with time_machine.travel(NOW):
        story = returning_patient(practitioner)
        later = make_booking(
            patient=story.patient,
            practitioner=practitioner,
            protocol=story.next_booking.protocol,
            starts_at=story.next_booking.starts_at + timedelta(days=14),
            status=BookingStatus.BOOKED,
        )
        booking_cancel(
            booking=story.next_booking,
            cancelled_by=receptionist,
            reason="Away that week",
            expected_version=story.next_booking.version,
        )
        ConsentFormVersionFactory(form=story.protocol.consent_form)  # re-consent needed

        desk = new_page("desktop")
        page = desk.page
        sign_in(desk, live_server.url, receptionist)
        page.goto(live_server.url + story.patient.get_absolute_url())
        panel = page.get_by_test_id("treatment-panel")
        cancelled = panel.get_by_test_id("upcoming-cancelled")
        expect(cancelled).to_contain_text("Tue 1 Dec")
        expect(cancelled).to_contain_text("Cancelled")
        expect(panel.get_by_test_id("upcoming-booking")).to_contain_text("Tue 15 Dec")
        timeline = page.get_by_test_id("timeline")
        expect(timeline.get_by_test_id("timeline-entry")).to_have_count(1)
        expect(timeline).not_to_contain_text("Tue 1 Dec")
        expect(timeline).not_to_contain_text("Tue 15 Dec")
        assert_styled(page)
        both_sizes(page, "patient-page")

        # The session given on 1 Nov: its outcome, no readiness.
        page.goto(live_server.url + story.session.booking.get_absolute_url())
        expect(page.get_by_test_id("booking-status")).to_have_text("Completed")
        expect(page.get_by_test_id("safe-to-treat")).to_have_count(0)
        both_sizes(page, "booking-completed")

        # The one to come: the calendar's phrase.
        page.goto(live_server.url + later.get_absolute_url())
        expect(page.get_by_text("Ready to treat?")).to_be_visible()
        both_sizes(page, "booking-to-come")

        page.goto(live_server.url + reverse("treatments:calendar") + "?view=week&date=2026-11-01")
        card = page.locator(f"[data-booking='{story.session.booking.uuid}']")
        expect(card).to_contain_text("Completed")
        expect(card.get_by_test_id("safe")).to_have_count(0)
        expect(card.get_by_test_id("not-ready")).to_have_count(0)
        both_sizes(page, "calendar-completed")

        assert desk.errors == []
        # A date and a phone typed wrong: each example once (the page answers 400).
        page.goto(live_server.url + "/patients/new/")
        page.get_by_label("First name").fill("Ada")
        page.get_by_label("Last name").fill("Lovelace")
        page.get_by_label("Date of birth").fill("31/02/1990")
        page.get_by_label("Mobile phone", exact=True).fill("12")
        page.get_by_test_id("save-patient").click()
        born = page.locator("#div_id_date_of_birth")
        expect(born).to_contain_text("Enter the date as dd/mm/yyyy")
        expect(born.get_by_text("for example", exact=False)).to_have_count(1)
        both_sizes(page, "form-errors")
        assert all("400 (Bad Request)" in error for error in desk.errors), desk.errors

        clinic = new_page("desktop")
        sign_in(clinic, live_server.url, practitioner)
        clinic.page.goto(
            live_server.url
            + reverse("consent:patient_consents", kwargs={"patient": story.patient.uuid})
        )
        state = clinic.page.get_by_test_id("consent-state").first
        expect(state).to_contain_text("version 1 signed")
        expect(state.get_by_text("re-consent needed", exact=False)).to_have_count(1)
        both_sizes(clinic.page, "consents")
        assert clinic.errors == []


@pytest.mark.parametrize("required", [True, False])
def test_the_invitation_page_follows_the_two_factor_setting(
    live_server, new_page: NewPage, manager: User, settings: object, required: bool
) -> None:
    settings.REQUIRE_STAFF_2FA = required  # type: ignore[attr-defined]
    with time_machine.travel(NOW):
        tab = new_page("desktop")
        sign_in(tab, live_server.url, manager)
        tab.page.goto(live_server.url + "/staff/invite/")
        steps = tab.page.get_by_test_id("staff-invite-steps")
        if required:
            expect(steps).to_contain_text("then set up two-factor authentication")
        else:
            expect(steps).to_contain_text("does not require two-factor authentication")
        both_sizes(tab.page, f"staff-invite-{'required' if required else 'optional'}")
        assert tab.errors == []

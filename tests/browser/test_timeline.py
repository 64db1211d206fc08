"""A returning patient's page in a real browser: the practitioner reads the
story newest first (the session of 1 November with the batch since recalled,
the caution acknowledged, the bruise still open above the timeline), follows
the bruise up and marks it resolved; reception reads the same timeline with
dates, protocol and status only. Screenshots at 1366x768 and 768x1024."""

from __future__ import annotations

from datetime import datetime

import pytest
import time_machine
from playwright.sync_api import Page, expect

from clinic.models import User
from tests.browser.conftest import BrowserPage, screenshot
from tests.browser.test_journeys import NewPage, sign_in
from tests.treatments.timeline_story import LONDON, RECALLED_LOT, returning_patient
from treatments.models import AdverseEventFollowUp
from treatments.services.session import adverse_event_follow_up

pytestmark = pytest.mark.browser

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=LONDON)  # a Tuesday morning
SIZES = {"desktop": (1366, 768), "tablet": (768, 1024)}


def both_sizes(page: Page, name: str) -> None:
    for size, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        screenshot(page, f"timeline-{name}-{size}.png")
    page.set_viewport_size({"width": 1366, "height": 768})


def test_a_returning_patients_timeline_as_practitioner_and_as_reception(
    live_server, new_page: NewPage, practitioner: User, receptionist: User, manager: User
) -> None:
    with time_machine.travel(NOW):
        story = returning_patient(practitioner, recall_by=manager)
        with time_machine.travel(datetime(2026, 11, 3, 9, 0, tzinfo=LONDON), tick=False):
            adverse_event_follow_up(
                event=story.bruise,
                recorded_by=practitioner,
                note="Phoned: bruise fading, arnica gel advised",
                resolved=False,
                at=datetime(2026, 11, 3, 9, 0, tzinfo=LONDON),
            )

        tab: BrowserPage = new_page("desktop")
        page = tab.page
        page.set_viewport_size({"width": 1366, "height": 768})
        sign_in(tab, live_server.url, practitioner)
        page.goto(live_server.url + story.patient.get_absolute_url())

        # The card agrees with the booking to come: nothing stands in its way.
        expect(page.get_by_test_id("readiness")).to_contain_text(
            "Nothing stands in the way of the session booked."
        )
        timeline = page.get_by_test_id("timeline")
        # Up to now: the session to come is under Sessions, not in the story.
        expect(timeline.get_by_test_id("timeline-entry")).to_have_count(5)
        expect(timeline).not_to_contain_text("Tue 1 Dec")
        session = timeline.get_by_test_id("timeline-entry").nth(0)
        expect(session).to_contain_text("Sun 1 Nov")
        expect(session).to_contain_text("Facial revitalisation")
        lines = session.get_by_test_id("timeline-lines")
        expect(lines).to_contain_text("Polyrevitalising solution")
        expect(lines).to_contain_text(RECALLED_LOT)
        expect(lines.get_by_test_id("batch-recalled")).to_have_text("recalled")
        expect(lines).to_contain_text("2.00 mL")
        expect(lines).to_contain_text("Nappage")
        expect(session.get_by_test_id("timeline-cautions")).to_contain_text("cold sores")
        expect(session.get_by_test_id("timeline-photos")).to_contain_text("Face, before")
        open_events = page.get_by_test_id("open-adverse-events")
        expect(open_events).to_contain_text("One adverse event still open")
        expect(open_events).to_contain_text("last followed up Tue 3 Nov")
        expect(page.get_by_test_id("treatment-panel")).to_contain_text("ready to treat")
        assert page.evaluate("document.documentElement.scrollWidth") <= 1366
        both_sizes(page, "practitioner")

        # Follow the bruise up from the strip, and mark it resolved.
        open_events.get_by_test_id("follow-up-open-event").click()
        event = page.locator(f"#event-{story.bruise.uuid}")
        expect(event.get_by_test_id("follow-ups")).to_contain_text("arnica gel advised")
        event.get_by_label("Follow-up").fill("Seen today: bruise gone, skin clear")
        event.get_by_label("Resolved: it has settled, nothing more to follow up").check()
        both_sizes(page, "follow-up-form")
        event.get_by_test_id("add-follow-up").click()
        expect(page.get_by_text("Follow-up added: the adverse event is resolved.")).to_be_visible()
        event = page.locator(f"#event-{story.bruise.uuid}")
        expect(event.get_by_test_id("event-resolved")).to_have_text("resolved Tue 24 Nov")
        expect(event.get_by_test_id("follow-up-form")).to_have_count(0)
        assert AdverseEventFollowUp.objects.filter(resolved=True, recorded_by=practitioner).exists()
        both_sizes(page, "follow-up-done")

        page.goto(live_server.url + story.patient.get_absolute_url())
        expect(page.get_by_test_id("timeline-entry").nth(0)).to_contain_text("resolved Tue 24 Nov")
        expect(page.get_by_test_id("open-adverse-events")).to_have_count(0)
        assert tab.errors == []

        # Reception: the same story, dates, protocol and status only.
        desk = new_page("tablet")
        sign_in(desk, live_server.url, receptionist)
        desk.page.goto(live_server.url + story.patient.get_absolute_url())
        timeline = desk.page.get_by_test_id("timeline")
        expect(timeline).to_contain_text("Story so far: past sessions and bookings")
        expect(timeline.get_by_test_id("timeline-entry")).to_have_count(1)
        expect(timeline).to_contain_text("Sun 1 Nov")
        expect(timeline).to_contain_text("Completed")
        # The session to come is listed once, under Sessions to come, with its readiness.
        expect(timeline).not_to_contain_text("Tue 1 Dec")
        expect(desk.page.get_by_test_id("treatment-panel")).to_contain_text("Tue 1 Dec")
        expect(desk.page.get_by_test_id("treatment-panel")).to_contain_text("ready to treat")
        body = desk.page.content()
        clinical_words = (RECALLED_LOT, "Polyrevitalising", "Bruising", "cold sores", "Medical")
        for clinical in clinical_words:
            assert clinical not in body, clinical
        both_sizes(desk.page, "reception")
        assert desk.errors == []

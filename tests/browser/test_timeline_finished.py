"""A session completed ten minutes before its booked start, in a real
browser: it is in the timeline at once with its cocktail, and the booking
still to happen is under Sessions. Screenshots at 1366x768 and 768x1024."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from playwright.sync_api import expect

from clinic.models import User
from tests.browser.conftest import BrowserPage
from tests.browser.test_journeys import NewPage, sign_in
from tests.browser.test_timeline import both_sizes
from tests.treatments.timeline_story import RECALLED_LOT, SESSION_AT, returning_patient

pytestmark = pytest.mark.browser

EARLY = SESSION_AT - timedelta(minutes=10)


def test_a_session_completed_early_is_in_the_past_with_its_cocktail(
    live_server, new_page: NewPage, practitioner: User
) -> None:
    with time_machine.travel(EARLY):
        story = returning_patient(practitioner)
        tab: BrowserPage = new_page("desktop")
        page = tab.page
        page.set_viewport_size({"width": 1366, "height": 768})
        sign_in(tab, live_server.url, practitioner)
        page.goto(live_server.url + story.patient.get_absolute_url())
        timeline = page.get_by_test_id("timeline")
        entries = timeline.get_by_test_id("timeline-entry")
        # The session still to come is listed under Sessions, not in the story.
        expect(timeline).not_to_contain_text("Tue 1 Dec")
        expect(page.get_by_test_id("treatment-panel")).to_contain_text("Tue 1 Dec")
        session = entries.first
        expect(session).to_contain_text("Sun 1 Nov")
        expect(session.get_by_test_id("timeline-lines")).to_contain_text(RECALLED_LOT)
        both_sizes(page, "completed-early")

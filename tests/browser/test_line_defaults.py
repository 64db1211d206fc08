"""Issue 15 in a real browser: a manager sets how a protocol is usually given
(technique, depth, needle, device) at the desk; the practitioner records the
patient's first session on a 768x1024 tablet, the lines starting from those
defaults with no empty line to scroll past, a line added when asked for; the
next session then starts from that one, and says so. Screenshots of the
protocol's form and page and of both session forms at 1366x768 and 768x1024;
axe finds nothing on them."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
import time_machine
from django.urls import reverse
from playwright.sync_api import Page, expect

from clinic.models import User
from tests.browser.axe import axe_violations
from tests.browser.conftest import screenshot
from tests.browser.test_journeys import NewPage, sign_in
from tests.browser.test_session import answer_day_of
from tests.treatments.test_session_helpers import make_booking, make_world
from tests.treatments.timeline_story import LONDON
from treatments.models import BookingStatus, CocktailLine, SessionRecord

pytestmark = pytest.mark.browser

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=LONDON)  # a Tuesday morning
SIZES = {"desktop": (1366, 768), "tablet": (768, 1024)}


def both_sizes(page: Page, name: str) -> None:
    for size, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        page.evaluate("window.scrollTo({top: 0, behavior: 'instant'})")
        screenshot(page, f"line-defaults-{name}-{size}.png")


def no_axe_violations(page: Page) -> None:
    found = axe_violations(page)
    assert found == [], json.dumps(found, indent=1)


def how_given(page: Page, index: int) -> list[str]:
    return [
        page.locator(f'[name="lines-{index}-{name}"]').input_value()
        for name in ("technique", "depth_mm", "needle_gauge", "device")
    ]


def test_a_session_recorded_on_a_tablet_starts_from_the_protocols_usual_way(
    live_server, new_page: NewPage, practitioner: User, manager: User
) -> None:
    with time_machine.travel(NOW):
        world = make_world(practitioner, first_name="Nora", last_name="Quinn")

        # The manager says how the protocol is usually given.
        desk = new_page("desktop")
        sign_in(desk, live_server.url, manager)
        desk.page.goto(
            live_server.url
            + reverse("treatments:protocol_edit", kwargs={"protocol": world.protocol.uuid})
        )
        how = desk.page.get_by_test_id("protocol-how-given")
        how.get_by_label("Technique").select_option("papule")
        how.get_by_label("Depth (mm)").fill("2.0")
        how.get_by_label("Needle (gauge)").fill("30")
        how.get_by_label("Given with").select_option("syringe")
        both_sizes(desk.page, "protocol-form")
        no_axe_violations(desk.page)
        desk.page.get_by_test_id("save-protocol").click()
        shown = desk.page.get_by_test_id("protocol-how-given")
        expect(shown).to_contain_text("Papule")
        expect(shown).to_contain_text("2.0 mm")
        expect(shown).to_contain_text("30G")
        expect(shown).to_contain_text("Syringe")
        both_sizes(desk.page, "protocol-page")
        no_axe_violations(desk.page)
        assert desk.errors == []

        # At the chair: the first session starts from the protocol's way.
        tab = new_page("tablet")
        page = tab.page
        sign_in(tab, live_server.url, practitioner)
        address = reverse("treatments:session_record", kwargs={"booking": world.booking.uuid})
        page.goto(live_server.url + address)
        lines = page.get_by_test_id("cocktail-line")
        expect(lines).to_have_count(2)  # the protocol's two products, no empty line
        expect(page.get_by_test_id("lines-source")).to_contain_text(
            "A new line's technique, depth, needle and device: from the protocol."
        )
        for index in range(2):
            assert how_given(page, index) == ["papule", "2.0", "30", "syringe"]
        # The cocktail section, on the tablet, ends with "Add a line" right
        # below the last line: nothing empty to scroll past.
        add = page.get_by_test_id("add-line")
        last = lines.nth(1).bounding_box()
        button = add.bounding_box()
        assert last is not None
        assert button is not None
        assert 0 <= button["y"] - (last["y"] + last["height"]) < 40
        both_sizes(page, "first-session")
        page.set_viewport_size({"width": 768, "height": 1024})

        # A line asked for starts the same way; left as it started, it is no line.
        add.click()
        expect(lines).to_have_count(3)
        assert how_given(page, 2) == ["papule", "2.0", "30", "syringe"]
        expect(page.locator('[name="lines-2-product"]')).to_be_focused()
        page.locator('[name="lines-1-area"]').select_option("neck")
        answer_day_of(tab)
        no_axe_violations(page)
        page.get_by_test_id("complete-session").click()
        expect(page.get_by_test_id("session-title")).to_have_text("Session record")
        record = SessionRecord.objects.get(booking=world.booking)
        assert [
            (line.technique, str(line.depth_mm), line.needle_gauge, line.device)
            for line in CocktailLine.objects.filter(session=record)
        ] == [("papule", "2.0", 30, "syringe")] * 2

        # A fortnight later: the lines and a new line start from that session.
        later = make_booking(
            patient=world.patient,
            practitioner=practitioner,
            protocol=world.protocol,
            room=world.room,
            starts_at=NOW + timedelta(days=14),
            status=BookingStatus.BOOKED,
        )
        page.goto(
            live_server.url + reverse("treatments:session_record", kwargs={"booking": later.uuid})
        )
        source = page.get_by_test_id("lines-source")
        expect(source).to_have_text(
            "Lines copied from the session on Tue 24 Nov; a new line takes its technique, "
            "depth, needle and device from that session too."
        )
        expect(lines).to_have_count(2)
        expect(page.locator('[name="lines-1-area"]')).to_have_value("neck")
        both_sizes(page, "next-session")
        no_axe_violations(page)
        # The later session is in the future: its gate is shown, that is all.
        assert tab.errors == []

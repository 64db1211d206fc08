"""The session form in a real browser, at 1366x768 and on a 768x1024 tablet:
each line's batch list offers only the line's product's batches, the batch
chosen reads in full (lot and expiry), and a caution ticked for the face is
shown again, unticked, for the face and under the eyes when a line moves
there. Screenshots at both sizes."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import time_machine
from django.urls import reverse
from playwright.sync_api import Page, expect

from clinic.models import User
from tests.browser.conftest import screenshot
from tests.browser.test_journeys import NewPage, sign_in
from tests.browser.test_session import answer_day_of
from tests.factories import BatchFactory, make_history
from tests.treatments.test_session_helpers import make_world
from tests.treatments.timeline_story import LONDON
from treatments.models import CautionAcknowledgement, CocktailLine, SessionRecord

pytestmark = pytest.mark.browser

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=LONDON)  # a Tuesday morning
SIZES = {"desktop": (1366, 768), "tablet": (768, 1024)}

# Whether a select shows its chosen option's text in full: the text's width
# in the select's font fits between its paddings (the arrow sits in the right one).
FITS = """(select) => {
  const style = getComputedStyle(select);
  const canvas = document.createElement("canvas").getContext("2d");
  canvas.font = style.font;
  const text = select.options[select.selectedIndex].text;
  const room = select.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  return canvas.measureText(text).width <= room;
}"""


WIDTHS = """(select) => {
  const style = getComputedStyle(select);
  const canvas = document.createElement("canvas").getContext("2d");
  canvas.font = style.font;
  return [select.clientWidth, style.paddingLeft, style.paddingRight,
          canvas.measureText(select.options[select.selectedIndex].text).width];
}"""


def offered(page: Page, line: int) -> list[str]:
    """The batch uuids line `line`'s list offers now (the blank left out)."""
    return page.locator(f'[name="lines-{line}-batch"] option').evaluate_all(
        "(options) => options.map((o) => o.value).filter(Boolean)"
    )


def test_batches_follow_the_product_and_read_in_full_and_cautions_follow_the_areas(
    live_server, new_page: NewPage, practitioner: User
) -> None:
    with time_machine.travel(NOW):
        world = make_world(practitioner, history=False, first_name="Ines", last_name="Moreau")
        make_history(world.patient, practitioner, cold_sores_history=True)
        world.protocol.default_areas = ["face"]
        world.protocol.save(update_fields=["default_areas"])
        first, second = world.batches
        first.product.name = "Hyaluronic acid 1.5% and vitamin complex"
        first.product.save(update_fields=["name"])
        today = NOW.date()
        longer = BatchFactory(
            product=first.product,
            lot_number="HA-2026-110-B",
            received_on=today - timedelta(days=10),
            expiry_date=today + timedelta(days=400),
        )

        tab = new_page("desktop")
        page = tab.page
        page.set_viewport_size({"width": 1366, "height": 768})
        sign_in(tab, live_server.url, practitioner)
        page.goto(
            live_server.url
            + reverse("treatments:session_record", kwargs={"booking": world.booking.uuid})
        )

        # Line 1 is of the first product: only its batches are offered.
        assert sorted(offered(page, 0)) == sorted([str(first.uuid), str(longer.uuid)])
        assert offered(page, 1) == [str(second.uuid)]
        # Another product for line 1: its batch is to be chosen again, among its own.
        page.locator('[name="lines-0-product"]').select_option(str(second.product.uuid))
        expect(page.locator('[name="lines-0-batch"]')).to_have_value("")
        assert offered(page, 0) == [str(second.uuid)]
        page.locator('[name="lines-0-product"]').select_option(str(first.product.uuid))
        page.locator('[name="lines-0-batch"]').select_option(str(longer.uuid))
        for line in range(2):
            page.locator(f'[name="lines-{line}-technique"]').select_option("nappage")
            page.locator(f'[name="lines-{line}-depth_mm"]').fill("1.0")
            page.locator(f'[name="lines-{line}-needle_gauge"]').fill("32")
            page.locator(f'[name="lines-{line}-device"]').select_option("meso_gun")

        # The caution ticked for the face; line 2 then moves under the eyes.
        caution = page.get_by_test_id("caution-cold_sores")
        caution.check()
        page.locator('[name="lines-1-area"]').select_option("under_eye")
        expect(caution).not_to_be_checked()
        expect(caution).to_have_attribute("value", "cold_sores:face,under_eye")
        panel = page.get_by_test_id("cautions-panel")
        expect(panel).to_contain_text(
            "The patient has had cold sores, and injections in the Face, Under-eye can bring on"
        )
        expect(panel).to_contain_text("The areas of the session changed")
        answer_day_of(tab)

        for size, (width, height) in SIZES.items():
            page.set_viewport_size({"width": width, "height": height})
            for line in range(2):
                for name in ("product", "batch", "unit", "device", "technique", "area"):
                    select = page.locator(f'[name="lines-{line}-{name}"]')
                    assert select.evaluate(FITS), (size, line, name, select.evaluate(WIDTHS))
            page.locator("#cocktail").scroll_into_view_if_needed()
            screenshot(page, f"session-form-lines-{size}.png")
            page.get_by_test_id("cautions-panel").scroll_into_view_if_needed()
            screenshot(page, f"session-form-cautions-{size}.png")
        page.set_viewport_size({"width": 1366, "height": 768})

        # Ticked again, knowing both areas: the session is completed.
        caution.check()
        page.get_by_test_id("complete-session").click()
        expect(page.get_by_test_id("session-title")).to_have_text("Session record")
        record = SessionRecord.objects.get(booking=world.booking)
        lines = list(CocktailLine.objects.filter(session=record).order_by("id"))
        assert [(line.batch, line.area) for line in lines] == [
            (longer, "face"),
            (second, "under_eye"),
        ]
        ack = CautionAcknowledgement.objects.get(session=record)
        assert ack.areas == ["face", "under_eye"]
        assert tab.errors == []


def test_the_areas_changed_note_goes_once_the_caution_is_ticked_and_comes_back_with_new_areas(
    live_server, new_page: NewPage, practitioner: User
) -> None:
    with time_machine.travel(NOW):
        world = make_world(practitioner, history=False, first_name="Lea", last_name="Martin")
        make_history(world.patient, practitioner, cold_sores_history=True)
        world.protocol.default_areas = ["face"]
        world.protocol.save(update_fields=["default_areas"])
        tab = new_page("tablet")
        page = tab.page
        sign_in(tab, live_server.url, practitioner)
        page.goto(
            live_server.url
            + reverse("treatments:session_record", kwargs={"booking": world.booking.uuid})
        )
        caution = page.get_by_test_id("caution-cold_sores")
        item = page.get_by_test_id("cautions-panel").locator(".form-check")
        note = item.locator("[data-caution-changed]")
        # One sentence naming the area treated and the reason.
        expect(item.locator("label")).to_have_text(
            "The patient has had cold sores, and injections in the Face can bring on an outbreak."
        )
        expect(note).to_be_hidden()
        caution.check()

        # Line 2 moves under the eyes: unticked, with the note.
        page.locator('[name="lines-1-area"]').select_option("under_eye")
        expect(caution).not_to_be_checked()
        expect(note).to_be_visible()
        expect(item.locator("label")).to_have_text(
            "The patient has had cold sores, and injections in the Face, Under-eye can bring "
            "on an outbreak."
        )
        # Ticked again for both areas: the note has done its work.
        caution.check()
        expect(note).to_be_hidden()
        page.get_by_test_id("cautions-panel").scroll_into_view_if_needed()
        screenshot(page, "session-form-caution-reticked-tablet.png")

        # The areas change again: unticked, and the note is back.
        page.locator('[name="lines-1-area"]').select_option("neck")
        expect(caution).not_to_be_checked()
        expect(note).to_be_visible()
        expect(caution).to_have_attribute("value", "cold_sores:face")
        caution.check()
        expect(note).to_be_hidden()
        assert tab.errors == []

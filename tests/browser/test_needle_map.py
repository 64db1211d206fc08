"""A session recorded on the face and body diagram in a real browser: at the
chair on a 768x1024 tablet with a finger (areas and papules tapped, a line
copied, a line added), read back on the record and the patient's timeline;
then the next session at a 1366x768 desk with the keyboard alone, starting
from the last session's map, cleared and marked again. Screenshots of each
screen at both sizes; axe finds nothing on the form or the record."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import time_machine
from django.urls import reverse
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from clinic.models import User
from tests.browser.axe import axe_violations
from tests.browser.conftest import (
    _CSP_LISTENER,
    TIMEOUT_MS,
    BrowserPage,
    _console_error,
    screenshot,
)
from tests.browser.test_journeys import NewPage, sign_in
from tests.browser.test_session import answer_day_of
from tests.treatments.test_session_helpers import make_booking, make_world
from tests.treatments.timeline_story import LONDON
from treatments.models import (
    BookingStatus,
    CocktailLine,
    InjectionPoint,
    SessionRecord,
    TreatmentCourse,
)

pytestmark = pytest.mark.browser

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=LONDON)  # a Tuesday morning
SIZES = {"desktop": (1366, 768), "tablet": (768, 1024)}


@pytest.fixture
def touch_tab(browser: Browser) -> Iterator[BrowserPage]:
    """A tablet (768x1024) that is touched, not clicked: taps are touch events.
    Without smooth scrolling, so that a place found on the screen stays there."""
    context = browser.new_context(
        viewport={"width": 768, "height": 1024},
        has_touch=True,
        locale="en-GB",
        reduced_motion="reduce",
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(_CSP_LISTENER)
    tab = BrowserPage(page=context.new_page(), viewport="tablet")

    def on_console(message: ConsoleMessage) -> None:
        if (error := _console_error(message)) is not None:
            tab.errors.append(error)

    tab.page.on("console", on_console)
    tab.page.on("pageerror", lambda exc: tab.errors.append(f"pageerror: {exc}"))
    yield tab
    context.close()


def on_screen(page: Page, view: str, x: float, y: float) -> tuple[float, float]:
    """Where a place of a view (in its own units) is on the screen, the view
    scrolled into sight first (at once: the page otherwise scrolls smoothly)."""
    found = page.evaluate(
        """([view, x, y]) => {
          const svg = document.querySelector(`[data-view-box="${view}"] svg`);
          svg.scrollIntoView({block: "center", behavior: "instant"});
          const point = svg.createSVGPoint();
          point.x = x; point.y = y;
          const at = point.matrixTransform(svg.getScreenCTM());
          return [at.x, at.y];
        }""",
        [view, x, y],
    )
    return found[0], found[1]


def points_of(page: Page, line: int) -> list[list[float | str]]:
    value = page.locator(f'[name="lines-{line}-points"]').input_value()
    return json.loads(value) if value else []


def both_sizes(page: Page, name: str) -> None:
    for size, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        # From the top: the diagram of the form stays in sight as the page scrolls.
        page.evaluate("window.scrollTo({top: 0, behavior: 'instant'})")
        screenshot(page, f"needle-map-{name}-{size}.png")


def no_axe_violations(page: Page) -> None:
    found = axe_violations(page)
    assert found == [], json.dumps(found, indent=1)


def test_a_session_marked_on_the_diagram_by_touch_then_the_next_by_keyboard(
    live_server, touch_tab: BrowserPage, new_page: NewPage, practitioner: User
) -> None:
    with time_machine.travel(NOW):
        world = make_world(practitioner, first_name="Lena", last_name="Marsh")
        world.protocol.default_technique, world.protocol.default_device = "nappage", "meso_gun"
        world.protocol.save(update_fields=["default_technique", "default_device"])
        course = TreatmentCourse.objects.create(
            patient=world.patient,
            protocol=world.protocol,
            planned_sessions=4,
            interval="fortnightly",
            created_by=practitioner,
        )
        world.booking.course = course
        world.booking.save(update_fields=["course"])
        tab = touch_tab
        page = tab.page
        sign_in(tab, live_server.url, practitioner)
        page.goto(
            live_server.url
            + reverse("treatments:session_record", kwargs={"booking": world.booking.uuid})
        )
        needle_map = page.get_by_test_id("needle-map")
        expect(needle_map).to_be_visible()
        expect(needle_map).to_contain_text("Marking Line 1")

        # Line 1, papules on the face (the protocol's first area): once the
        # technique is chosen, each tap on the face adds a point.
        expect(page.locator("#face")).to_have_attribute("aria-pressed", "true")
        page.locator('[name="lines-0-technique"]').select_option("papule")
        page.locator('[name="lines-0-depth_mm"]').fill("2.0")
        page.locator('[name="lines-0-needle_gauge"]').fill("30")
        page.locator('[name="lines-0-device"]').select_option("syringe")
        expect(page.get_by_label("adds an injection point")).to_be_checked()
        page.get_by_test_id("map-view-face").tap()
        for x, y in ((70, 150), (130, 150), (100, 70)):
            page.touchscreen.tap(*on_screen(page, "face", x, y))
        expect(page.get_by_test_id("map-live")).to_have_text("Line 1: 3 points.")
        tapped = points_of(page, 0)
        assert [point[0] for point in tapped] == ["face"] * 3
        # Where the finger went, to a percent or two of the view.
        assert abs(float(tapped[0][1]) - 70 / 200) < 0.02
        assert abs(float(tapped[0][2]) - 150 / 240) < 0.02
        # One too many: undone.
        page.touchscreen.tap(*on_screen(page, "face", 100, 180))
        page.get_by_test_id("map-undo").tap()
        assert len(points_of(page, 0)) == 3

        # Line 2 on the décolletage, from the body's front.
        page.get_by_role("button", name="Mark on the diagram").nth(1).tap()
        page.get_by_test_id("map-view-body_front").tap()
        page.locator('[name="lines-1-technique"]').select_option("nappage")
        page.locator('[name="lines-1-depth_mm"]').fill("1.0")
        page.locator('[name="lines-1-needle_gauge"]').fill("32")
        page.locator('[name="lines-1-device"]').select_option("meso_gun")
        page.touchscreen.tap(*on_screen(page, "body_front", 110, 100))
        expect(page.locator('[name="lines-1-area"]')).to_have_value("decolletage")

        # Line 2 copied: the copy given to the hands instead, and less of it.
        page.get_by_test_id("copy-line").nth(1).tap()
        expect(page.get_by_test_id("cocktail-line")).to_have_count(3)
        copy = page.get_by_test_id("cocktail-line").nth(2)
        expect(copy).to_contain_text("Line 3")
        expect(page.locator('[name="lines-2-technique"]')).to_have_value("nappage")
        expect(page.locator('[name="lines-2-device"]')).to_have_value("meso_gun")
        page.locator('[name="lines-2-amount"]').fill("0.50")
        page.touchscreen.tap(*on_screen(page, "body_front", 38, 254))
        expect(page.locator('[name="lines-2-area"]')).to_have_value("hands")
        # No empty line is offered; a line added takes how the protocol is
        # usually given (a first session), and is left out here.
        page.get_by_test_id("add-line").tap()
        expect(page.locator('[name="lines-3-device"]')).to_have_value("meso_gun")
        expect(page.locator('[name="lines-3-technique"]')).to_have_value("nappage")
        page.locator('[name="lines-3-DELETE"]').check()

        answer_day_of(tab)
        page.get_by_label("Session notes").fill("Papules on the cheeks and forehead")
        page.get_by_test_id("map-view-face").tap()
        page.get_by_role("button", name="Mark on the diagram").first.tap()
        both_sizes(page, "form")
        no_axe_violations(page)

        page.get_by_test_id("complete-session").tap()
        expect(page.get_by_test_id("session-title")).to_have_text("Session record")
        record = SessionRecord.objects.get(booking=world.booking)
        lines = list(CocktailLine.objects.filter(session=record).order_by("id"))
        assert [line.area for line in lines] == ["face", "decolletage", "hands"]
        points = list(InjectionPoint.objects.filter(line=lines[0]).order_by("position"))
        assert [(p.view, p.position) for p in points] == [("face", 0), ("face", 1), ("face", 2)]
        assert not InjectionPoint.objects.exclude(line=lines[0]).exists()

        # The record: the face and the body's front shaded, the amounts per area.
        drawn = page.get_by_test_id("needle-map-record")
        expect(drawn.locator("svg")).to_have_count(2)
        expect(drawn.locator('path.is-treated[data-area="face"]')).to_have_count(1)
        expect(drawn.locator("circle.nm-point")).to_have_count(3)
        areas = drawn.get_by_test_id("needle-map-areas")
        expect(areas).to_contain_text("Face 1.50 mL · 3 points")
        expect(areas).to_contain_text("Hands 0.50 mL")
        both_sizes(page, "record")
        no_axe_violations(page)

        # The patient's timeline shows the same.
        page.goto(live_server.url + world.patient.get_absolute_url())
        entry = page.locator('[data-testid="timeline-entry"][data-kind="booking"]').first
        expect(entry.get_by_test_id("needle-map-record").locator("svg")).to_have_count(2)
        expect(entry.get_by_test_id("needle-map-areas")).to_contain_text("Face 1.50 mL")
        both_sizes(page, "timeline")
        no_axe_violations(page)
        assert [e for e in tab.errors if "status of 4" not in e] == []

    # A fortnight later, at the desk, with the keyboard alone.
    with time_machine.travel(NOW + timedelta(days=14)):
        later = make_booking(
            patient=world.patient,
            practitioner=practitioner,
            protocol=world.protocol,
            course=course,
            room=world.room,
            status=BookingStatus.ARRIVED,
        )
        desk = new_page("desktop")
        page = desk.page
        page.set_viewport_size({"width": 1366, "height": 768})
        sign_in(desk, live_server.url, practitioner)
        page.goto(
            live_server.url + reverse("treatments:session_record", kwargs={"booking": later.uuid})
        )
        # It starts from the last session's map: the areas and the points.
        expect(page.locator('[name="lines-0-area"]')).to_have_value("face")
        assert len(points_of(page, 0)) == 3
        expect(page.get_by_test_id("needle-map")).to_contain_text("Face, 3 points")
        screenshot(page, "needle-map-next-desktop.png")

        # Cleared, then marked again from the keyboard.
        page.get_by_test_id("map-clear").focus()
        page.keyboard.press("Enter")
        expect(page.locator('[name="lines-0-area"]')).to_have_value("")
        assert points_of(page, 0) == []
        # From the view buttons back into the face view's areas: under-eye, face.
        page.get_by_test_id("map-view-face").focus()
        page.keyboard.press("Enter")
        page.keyboard.press("Shift+Tab")
        expect(page.locator(":focus")).to_have_attribute("data-area", "under_eye")
        page.keyboard.press("Shift+Tab")
        expect(page.locator(":focus")).to_have_attribute("aria-label", "Face")
        # The area with the focus is outlined for all to see (dashed, dark).
        assert page.evaluate("getComputedStyle(document.activeElement).strokeDasharray") != "none"
        page.keyboard.press("Enter")
        expect(page.locator('[name="lines-0-area"]')).to_have_value("face")
        expect(page.locator("#face")).to_have_attribute("aria-pressed", "true")
        # Points: the mode chosen with the arrow keys, each Enter a point near a centre.
        page.get_by_label("chooses the line's area").focus()
        page.keyboard.press("ArrowDown")
        expect(page.get_by_label("adds an injection point")).to_be_checked()
        page.locator("#face").focus()
        for _ in range(5):
            page.keyboard.press("Enter")
        expect(page.get_by_test_id("map-live")).to_have_text("Line 1: 5 points.")
        placed = points_of(page, 0)
        assert len({(p[1], p[2]) for p in placed}) == 5  # five distinct places
        # Line 2: marked from its button, given to the neck with Space.
        page.get_by_role("button", name="Mark on the diagram").nth(1).focus()
        page.keyboard.press("Space")
        page.get_by_label("chooses the line's area").focus()
        page.keyboard.press("Space")
        page.locator('[data-view-box="face"] [data-area="neck"]').focus()
        page.keyboard.press("Space")
        expect(page.locator('[name="lines-1-area"]')).to_have_value("neck")
        # Line 3 on the hands, from the body's front.
        page.get_by_role("button", name="Mark on the diagram").nth(2).focus()
        page.keyboard.press("Enter")
        page.get_by_test_id("map-view-body_front").focus()
        page.keyboard.press("Enter")
        page.locator('[data-view-box="body_front"] [data-area="hands"]').focus()
        page.keyboard.press("Enter")
        expect(page.locator('[name="lines-2-area"]')).to_have_value("hands")
        answer_day_of(desk)
        both_sizes(page, "keyboard")
        page.set_viewport_size({"width": 1366, "height": 768})
        page.get_by_test_id("complete-session").focus()
        page.keyboard.press("Enter")
        expect(page.get_by_test_id("session-title")).to_have_text("Session record")
        second = SessionRecord.objects.get(booking=later)
        lines = list(CocktailLine.objects.filter(session=second).order_by("id"))
        assert [line.area for line in lines] == ["face", "neck", "hands"]
        assert InjectionPoint.objects.filter(line=lines[0]).count() == 5
        assert [e for e in desk.errors if "status of 4" not in e] == []

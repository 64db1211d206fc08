"""The user guide's pictures (docs/images/), taken from the demo data.

Not a test of the product: it is skipped unless GUIDE_SCREENSHOTS=1, so the
suite never runs it. `make guide-screens` re-takes every picture when the
screens change: the demo is seeded (`manage.py seed_demo`, as `make run`
does) with the clock stopped on a Tuesday morning, each screen is opened as
the role the guide describes, and each PNG is reduced to 256 colours with
Pillow so the whole set stays small enough for the repository.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from io import StringIO
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from PIL import Image
from playwright.sync_api import Browser, Page, expect

from clinic.models import User
from tests.browser.conftest import _CSP_LISTENER, TIMEOUT_MS
from tests.browser.test_needle_map import on_screen
from tests.conftest import sign_in
from tests.factories import TOTPDeviceFactory
from treatments.models import DAY_OF_FIELDS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        os.environ.get("GUIDE_SCREENSHOTS") != "1",
        reason="takes the user guide's pictures: GUIDE_SCREENSHOTS=1 (make guide-screens)",
    ),
]

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
# A Tuesday morning: the demo's week has bookings on both sides of it.
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("Europe/London"))
# Amelia's first session is the next morning at 10:00.
NEXT_MORNING = datetime(2026, 11, 25, 10, 5, tzinfo=ZoneInfo("Europe/London"))
DESKTOP = {"width": 1366, "height": 768}
TABLET = {"width": 768, "height": 1024}
# Pixels: a full-page picture is cut here, the rest of a long page says no more.
TALLEST = 1700


@pytest.fixture
def demo(live_server) -> Iterator[dict[str, User]]:
    """The demo clinic, seeded as `make run` seeds it, the clock stopped at NOW
    (ticking, so the pages' own timers run)."""
    with time_machine.travel(NOW, tick=False):
        call_command("seed_demo", "--force", stdout=StringIO())
    with time_machine.travel(NOW, tick=True):
        staff = {u.username: u for u in User.objects.all()}
        for user in staff.values():
            TOTPDeviceFactory(user=user)
        yield staff


def open_as(browser: Browser, base: str, user: User, viewport: dict[str, int]) -> Page:
    """A fresh browser signed in as `user` (two factors done), at this size."""
    context = browser.new_context(viewport=viewport, locale="en-GB", reduced_motion="reduce")
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(_CSP_LISTENER)
    client = sign_in(Client(), user)
    context.add_cookies(
        [{"name": k, "value": v.value, "url": base} for k, v in client.cookies.items()]
    )
    return context.new_page()


def shoot(page: Page, name: str, *, full_page: bool = False, tallest: int = TALLEST) -> Path:
    """Save docs/images/<name>.png: the window, or the page down to `tallest`
    pixels; then 256 colours, which keeps text sharp at a third of the size."""
    IMAGES.mkdir(parents=True, exist_ok=True)
    path = IMAGES / f"{name}.png"
    # The parts a page fetches after it loads (the timeline, the sessions).
    page.wait_for_load_state("networkidle")
    page.evaluate("document.fonts.ready")
    if full_page:
        width = page.viewport_size["width"] if page.viewport_size else 1366
        height = min(page.evaluate("document.documentElement.scrollHeight"), tallest)
        page.screenshot(
            path=str(path),
            full_page=True,
            clip={"x": 0, "y": 0, "width": width, "height": height},
        )
    else:
        page.screenshot(path=str(path))
    with Image.open(path) as shot:
        small = shot.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)
    return path


def test_take_the_user_guides_pictures(
    live_server, browser: Browser, demo: dict[str, User]
) -> None:
    from patients.models import Patient
    from treatments.models import Booking

    base = live_server.url
    oliver = Patient.objects.get(email="oliver.bennett@demo.clinic.invalid")

    # The patient's page: a returning patient's timeline, then reception's view.
    page = open_as(browser, base, demo["practitioner"], DESKTOP)
    page.goto(base + reverse("patients:detail", kwargs={"patient": oliver.uuid}))
    expect(page.get_by_test_id("timeline-lines").first).to_be_visible()
    shoot(page, "patient-timeline-practitioner", full_page=True)
    page.context.close()
    page = open_as(browser, base, demo["reception"], DESKTOP)
    page.goto(base + reverse("patients:detail", kwargs={"patient": oliver.uuid}))
    expect(page.get_by_test_id("timeline-entry").first).to_be_visible()
    shoot(page, "patient-timeline-reception", full_page=True)

    # The calendar: reception's day, then this week as a practitioner sees it.
    page.goto(base + reverse("treatments:calendar") + "?view=day&date=2026-11-24")
    shoot(page, "calendar-day")
    page.context.close()
    page = open_as(browser, base, demo["practitioner"], DESKTOP)
    page.goto(base + reverse("treatments:calendar") + "?view=week&date=2026-11-24")
    shoot(page, "calendar-week")
    page.set_viewport_size(TABLET)
    shoot(page, "calendar-week-tablet")
    page.set_viewport_size(DESKTOP)

    # A booking that waits on a check: its safe-to-treat sentence.
    theo = (
        Booking.objects.filter(patient__email="theo.fairbairn@demo.clinic.invalid")
        .order_by("starts_at")
        .first()
    )
    assert theo is not None
    page.goto(base + reverse("treatments:booking_detail", kwargs={"booking": theo.uuid}))
    shoot(page, "booking-safe-to-treat")
    page.context.close()

    # The reports and the staff page, as the manager.
    page = open_as(browser, base, demo["manager"], DESKTOP)
    page.goto(base + reverse("treatments:reports"))
    expect(page.locator("canvas, svg").first).to_be_visible()
    shoot(page, "reports", full_page=True)
    page.goto(base + reverse("staff_list"))
    shoot(page, "staff")
    page.context.close()

    # The session form at the chair, on a tablet, the next morning: Amelia's
    # first session of her course, papules marked on the face; then its record.
    amelia = (
        Booking.objects.filter(patient__email="amelia.hart@demo.clinic.invalid")
        .order_by("starts_at")
        .first()
    )
    assert amelia is not None
    with time_machine.travel(NEXT_MORNING, tick=True):
        page = open_as(browser, base, demo["practitioner"], TABLET)
        page.goto(base + reverse("treatments:session_record", kwargs={"booking": amelia.uuid}))
        for name in DAY_OF_FIELDS:
            page.locator(f'[name="today-{name}"][value="no"]').check()
        expect(page.get_by_test_id("needle-map")).to_be_visible()
        page.locator('[name="lines-0-technique"]').select_option("papule")
        page.get_by_test_id("map-view-face").click()
        for x, y in ((70, 150), (130, 150), (100, 70), (85, 110), (115, 110)):
            page.mouse.click(*on_screen(page, "face", x, y))
        expect(page.get_by_test_id("map-live")).to_have_text("Line 1: 5 points.")
        page.locator('[name="lines-1-area"]').select_option("neck")
        page.get_by_label("Session notes").fill("Papules on the cheeks and forehead.")
        page.get_by_test_id("needle-map").evaluate(
            "(el) => el.scrollIntoView({block: 'start', behavior: 'instant'})"
        )
        shoot(page, "session-form-needle-map")
        page.get_by_test_id("complete-session").click()
        expect(page.get_by_test_id("session-title")).to_have_text("Session record")
        page.set_viewport_size(DESKTOP)
        expect(page.get_by_test_id("needle-map-record")).to_be_visible()
        shoot(page, "session-record-map", full_page=True, tallest=1100)
        page.context.close()

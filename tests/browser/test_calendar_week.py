"""A busy week in a real browser, as reception: bookings at the same time in
different rooms sit side by side, never on top of each other; names and
badges stay readable at 1366x768 and at 768x1024, where the week reads as a
list of days down to Sunday; the calendar opens on today's day view and
remembers the view chosen; a card opens with the keyboard, and the move form
is the keyboard's way to move it. Screenshots at both sizes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from playwright.sync_api import Locator, Page, expect

from clinic.models import User
from clinic.roles import Role
from patients.models import Patient
from tests.browser.axe import axe_violations, describe
from tests.browser.conftest import BrowserPage, screenshot
from tests.browser.test_journeys import NewPage, sign_in
from tests.consent.helpers import signed_consent_for
from tests.factories import (
    ConsentFormVersionFactory,
    IngredientFactory,
    PatientFactory,
    ProductFactory,
    ProtocolFactory,
    make_history,
)
from treatments.gates import ingredients_of
from treatments.models import Booking, BookingStatus, ProtocolCocktailLine, Room, WorkingHours
from treatments.services.allergy import allergy_test_give

pytestmark = pytest.mark.browser

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 24, 8, 30, tzinfo=LONDON)  # a Tuesday morning
MONDAY = date(2026, 11, 23)
SIZES = {"desktop": (1366, 768), "tablet": (768, 1024)}


@dataclass
class Week:
    bookings: dict[str, Booking]  # by patient's first name


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(MONDAY + timedelta(days=day), time(hour, minute), tzinfo=LONDON)


def busy_week(practitioner: User, make_staff: object) -> Week:
    """Three practitioners and three rooms, every day 08:00 to 19:00; Tuesday
    morning has three sessions at once and a fourth overlapping the last,
    Wednesday and Sunday two at once each. Half the patients are ready to
    treat (history and consent); the others lack both; Ivo waits for his
    allergy reading."""
    omar = make_staff("omar", Role.PRACTITIONER, first_name="Omar", last_name="Haddad")  # type: ignore[operator]
    lena = make_staff("lena", Role.PRACTITIONER, first_name="Lena", last_name="Fischer")  # type: ignore[operator]
    staff = [practitioner, omar, lena]
    for person in staff:
        for weekday in range(7):
            WorkingHours.objects.create(
                practitioner=person, weekday=weekday, starts=time(8), ends=time(19)
            )
    rooms = [Room.objects.create(name=f"Room {n}") for n in (1, 2, 3)]
    face = ProtocolFactory(name="Hydrating face", session_minutes=45)
    scalp = ProtocolFactory(name="Hair loss scalp", session_minutes=60)
    glow = ProtocolFactory(name="Vitamin glow", session_minutes=45)
    product = ProductFactory(ingredients=[IngredientFactory(name="Vitamin C")])
    ProtocolCocktailLine.objects.create(protocol=glow, product=product, amount="2.00")
    versions = {p.pk: ConsentFormVersionFactory(form=p.consent_form) for p in (face, scalp, glow)}
    plan = [
        # first name, last name, day, start, minutes, practitioner, room, protocol, ready
        ("Amelia", "Hart", 1, (10, 0), 45, 0, 0, face, True),
        ("Benedict", "Cole", 1, (10, 0), 45, 1, 1, face, False),
        ("Cara", "Moss", 1, (10, 30), 60, 2, 2, scalp, True),
        ("Dev", "Patel", 1, (11, 0), 45, 0, 0, face, False),
        ("Esme", "Laurent-Whitfield", 1, (14, 0), 45, 1, 1, face, True),
        ("Farah", "Nasser", 0, (9, 0), 45, 0, 0, face, True),
        ("Gus", "Olsen", 0, (9, 15), 45, 1, 1, scalp, True),
        ("Hana", "Sato", 2, (14, 0), 60, 0, 0, scalp, False),
        ("Ivo", "Brandt", 2, (14, 30), 45, 2, 1, glow, True),
        ("Jodie", "Price", 3, (9, 0), 45, 1, 2, face, True),
        ("Kit", "Moreau", 4, (16, 0), 45, 2, 0, face, False),
        ("Lola", "Reyes", 5, (11, 0), 45, 0, 1, face, True),
        ("Maximilian", "Oyelaran-Fitzgerald", 6, (10, 0), 45, 1, 0, face, True),
        ("Nell", "Quinn", 6, (10, 15), 45, 2, 2, scalp, False),
        ("Otto", "Ruiz", 6, (15, 0), 45, 0, 1, face, True),
    ]
    bookings: dict[str, Booking] = {}
    for first, last, day, (hour, minute), minutes, who, room, protocol, ready in plan:
        patient: Patient = PatientFactory(first_name=first, last_name=last)
        if ready:
            make_history(patient, practitioner)
            signed_consent_for(patient=patient, version=versions[protocol.pk])
        if protocol == glow:
            # Tested this morning: safe once the reading is taken tomorrow.
            allergy_test_give(
                patient=patient,
                given_by=practitioner,
                ingredients=ingredients_of([product]),
                products=[],
                site="inner left forearm",
                given_at=NOW,
            )
        starts = _at(day, hour, minute)
        bookings[first] = Booking.objects.create(
            patient=patient,
            practitioner=staff[who],
            room=rooms[room],
            protocol=protocol,
            starts_at=starts,
            ends_at=starts + timedelta(minutes=minutes),
            created_by=practitioner,
            status=BookingStatus.COMPLETED if first == "Farah" else BookingStatus.BOOKED,
        )
    Booking.objects.filter(pk=bookings["Gus"].pk).update(status=BookingStatus.NO_SHOW)
    return Week(bookings=bookings)


def card(page: Page, booking: Booking) -> Locator:
    return page.locator(f"[data-booking='{booking.uuid}']")


def box(locator: Locator) -> dict[str, float]:
    found = locator.bounding_box()
    assert found is not None
    return found


def side_by_side(*cards: Locator) -> None:
    """No two of the cards share a point: each sits in its own lane."""
    boxes = [box(c) for c in cards]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            apart = (
                a["x"] + a["width"] <= b["x"] + 0.5
                or b["x"] + b["width"] <= a["x"] + 0.5
                or a["y"] + a["height"] <= b["y"] + 0.5
                or b["y"] + b["height"] <= a["y"] + 0.5
            )
            assert apart, (a, b)


def readable(locator: Locator) -> None:
    """The element's text is drawn whole: not cut off by its card."""
    clipped = locator.evaluate(
        """el => {
          const card = el.closest('.cal-booking');
          const r = el.getBoundingClientRect(), c = card.getBoundingClientRect();
          return el.scrollWidth > el.clientWidth + 1
            || r.left < c.left - 1 || r.right > c.right + 1 || r.bottom > c.bottom + 1;
        }"""
    )
    assert not clipped, locator.inner_text()


def both_sizes(page: Page, name: str) -> None:
    for size, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        screenshot(page, f"calendar-{name}-{size}.png")
    page.set_viewport_size({"width": 1366, "height": 768})


def test_a_busy_week_reads_at_a_glance_for_reception(
    live_server, new_page: NewPage, receptionist: User, practitioner: User, make_staff: object
) -> None:
    with time_machine.travel(NOW):
        week = busy_week(practitioner, make_staff)
        b = week.bookings
        tab: BrowserPage = new_page("desktop")
        page = tab.page
        page.set_viewport_size({"width": 1366, "height": 768})
        sign_in(tab, live_server.url, receptionist)

        # The calendar opens on today, in the day view: reception's default.
        page.goto(f"{live_server.url}/treatments/calendar/")
        expect(page.get_by_role("heading", level=1)).to_have_text("Tue 24 Nov")
        expect(page.get_by_test_id("cal-day")).to_have_attribute("aria-current", "page")
        side_by_side(card(page, b["Cara"]), card(page, b["Dev"]))
        both_sizes(page, "busy-day")

        # The week: Tuesday's four sessions in three lanes, side by side.
        page.get_by_test_id("cal-week").click()
        expect(page.get_by_role("heading", level=1)).to_have_text(
            "Mon 23 Nov \N{EN DASH} Sun 29 Nov"
        )
        screenshot(page, "calendar-busy-week-desktop.png")
        tuesday = [card(page, b[n]) for n in ("Amelia", "Benedict", "Cara", "Dev")]
        side_by_side(*tuesday)
        side_by_side(card(page, b["Hana"]), card(page, b["Ivo"]))
        side_by_side(card(page, b["Maximilian"]), card(page, b["Nell"]))
        for name in ("Amelia", "Benedict", "Cara", "Dev", "Maximilian", "Nell"):
            shown = card(page, b[name])
            readable(shown.locator(".cal-patient"))
            readable(shown.locator(".cal-badges"))
        expect(card(page, b["Benedict"]).get_by_test_id("not-ready")).to_have_text("Not ready")
        expect(card(page, b["Amelia"]).get_by_test_id("safe")).to_have_text("Ready to treat")
        expect(card(page, b["Ivo"]).get_by_test_id("safe-to-treat")).to_have_text(
            "allergy reading due Wed 25 Nov, 08:30"
        )
        # Sunday is on the screen whole, without scrolling sideways.
        sunday = page.locator("th.cal-head", has_text="Sun 29 Nov")
        assert box(sunday)["x"] + box(sunday)["width"] <= 1366
        assert page.evaluate("document.documentElement.scrollWidth") <= 1366

        # On a tablet the week is a list of days, each day's bookings in time order.
        page.set_viewport_size({"width": 768, "height": 1024})
        assert page.evaluate("document.documentElement.scrollWidth") <= 768
        heads = page.locator("th.cal-head")
        assert [h.strip() for h in heads.all_inner_texts()][-1].startswith("Sun 29 Nov")
        assert box(heads.nth(6))["y"] > box(card(page, b["Lola"]))["y"]  # Sunday after Saturday
        assert box(card(page, b["Maximilian"]))["y"] > box(heads.nth(6))["y"]
        order = [box(card(page, b[n]))["y"] for n in ("Amelia", "Benedict", "Cara", "Dev")]
        assert order == sorted(order)
        for name in ("Amelia", "Dev", "Maximilian", "Otto"):
            readable(card(page, b[name]).locator(".cal-patient"))
            readable(card(page, b[name]).locator(".cal-badges"))
            assert box(card(page, b[name]))["x"] + box(card(page, b[name]))["width"] <= 768
        screenshot(page, "calendar-busy-week-tablet.png")
        page.set_viewport_size({"width": 1366, "height": 768})

        # The view chosen is remembered: the calendar opens on the week now.
        page.goto(f"{live_server.url}/treatments/calendar/")
        expect(page.get_by_test_id("cal-week")).to_have_attribute("aria-current", "page")

        # The keyboard reaches a card in the page's tab order, and opens it.
        dev = card(page, b["Dev"])
        sentence = dev.get_by_test_id("safe-to-treat").inner_text()
        assert "consent needed" in sentence
        dev.evaluate(
            """el => {
              const all = [...document.querySelectorAll('a[href], button, input, select')];
              all[all.indexOf(el) - 1].focus();
            }"""
        )
        page.keyboard.press("Tab")
        expect(dev).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.get_by_test_id("booking-status")).to_have_text("Booked")
        expect(page.get_by_test_id("safe-to-treat")).to_have_text(f"Not ready {sentence}")
        contrast = page.get_by_test_id("booking-status").evaluate(
            """el => {
              const rgb = (s) => s.match(/\\d+/g).slice(0, 3).map(Number);
              const lum = ([r, g, b]) => {
                const f = (c) => {
                  c /= 255;
                  return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
                };
                return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
              };
              const style = getComputedStyle(el);
              const [a, b] = [lum(rgb(style.color)), lum(rgb(style.backgroundColor))];
              return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
            }"""
        )
        assert contrast >= 4.5
        both_sizes(page, "booking-detail")

        # Drag's keyboard alternative: the move form, reached and sent with the keyboard.
        page.get_by_test_id("move").focus()
        page.keyboard.press("Enter")
        expect(page.get_by_label("Start time")).to_be_visible()
        page.get_by_label("Start time").fill("12:00")
        page.get_by_label("Start time").press("Enter")
        expect(page.get_by_text("The booking is moved.")).to_be_visible()
        b["Dev"].refresh_from_db()
        assert b["Dev"].starts_at == _at(1, 12)

        # Booking a patient who is not ready warns before saving, and books all the same.
        page.goto(f"{live_server.url}/treatments/calendar/?view=day&date=2026-11-26")
        page.locator("[data-testid=free-slot][href*='time=13%3A00']").first.click()
        page.get_by_test_id("patient-search").press_sequentially("Cole", delay=30)
        page.get_by_test_id("patient-choice").first.check()
        page.get_by_label("Protocol").select_option(label="Hydrating face")
        page.get_by_label("Room").select_option(label="Room 3")
        expect(page.get_by_test_id("booking-check")).to_contain_text(
            "Benedict Cole is not ready to treat at that time: medical history needed;"
            " consent needed."
        )
        page.get_by_label("Protocol").focus()
        screenshot(page, "calendar-booking-warning-desktop.png")
        page.get_by_test_id("book").click()
        expect(page.get_by_test_id("safe-to-treat")).to_have_text(
            "Not ready medical history needed; consent needed"
        )
        assert Booking.objects.filter(patient=b["Benedict"].patient).count() == 2

        assert tab.errors == []


def test_twelve_sessions_at_once_show_the_lanes_and_list_the_rest(
    live_server, new_page: NewPage, receptionist: User, practitioner: User, make_staff: object
) -> None:
    """Twelve practitioners in twelve rooms, sessions of 45 minutes from
    10:00 every five minutes on Tuesday: the week draws as many side by side
    as its lanes hold and lists the others under "+k more", each a link to
    its booking; Sunday stays on screen; the tablet's list shows all twelve."""
    with time_machine.travel(NOW):
        protocol = ProtocolFactory(name="Hydrating face", session_minutes=45)
        made = []
        for n in range(12):
            who = make_staff(f"p{n}", Role.PRACTITIONER, first_name=f"Prac{n:02}", last_name="Lane")  # type: ignore[operator]
            WorkingHours.objects.create(practitioner=who, weekday=1, starts=time(8), ends=time(19))
            starts = _at(1, 10 + 5 * n // 60, 5 * n % 60)
            made.append(
                Booking.objects.create(
                    patient=PatientFactory(first_name=f"Patient{n:02}", last_name="Busy"),
                    practitioner=who,
                    room=Room.objects.create(name=f"Room {n + 1}"),
                    protocol=protocol,
                    starts_at=starts,
                    ends_at=starts + timedelta(minutes=45),
                    created_by=practitioner,
                )
            )
        tab: BrowserPage = new_page("desktop")
        page = tab.page
        page.set_viewport_size({"width": 1366, "height": 768})
        sign_in(tab, live_server.url, receptionist)
        page.goto(f"{live_server.url}/treatments/calendar/?view=week&date=2026-11-24")
        more = page.get_by_test_id("more-bookings")
        expect(more).to_have_count(2)
        drawn = [card(page, b) for b in made if card(page, b).is_visible()]
        assert len(drawn) == 8
        # The cards drawn and the "+k more" never share a point.
        side_by_side(*drawn, *(more.nth(i).locator("summary") for i in range(2)))
        for shown in drawn:
            readable(shown.locator(".cal-patient"))
        sunday = page.locator("th.cal-head", has_text="Sun 29 Nov")
        assert box(sunday)["x"] + box(sunday)["width"] <= 1366
        assert page.evaluate("document.documentElement.scrollWidth") <= 1366
        page.locator(".cal-scroll").evaluate("el => { el.scrollTop = 0; }")
        card(page, made[0]).scroll_into_view_if_needed()
        screenshot(page, "calendar-twelve-at-once-desktop.png")
        assert describe("week, twelve at once", axe_violations(page)) == []

        # "+3 more" opens from the keyboard and lists the others, each a link.
        summary = more.nth(1).locator("summary")
        expect(summary).to_contain_text("+3 more")
        summary.focus()
        page.keyboard.press("Enter")
        links = more.nth(1).get_by_role("link")
        expect(links).to_have_count(3)
        expect(links.nth(0)).to_contain_text("10:30")
        expect(links.nth(0)).to_contain_text("Patient06 Busy")
        listed = box(more.nth(1).locator(".cal-more-list"))
        # The open list is on top of the cards it covers.
        on_top = page.evaluate(
            "([x, y]) => !!document.elementFromPoint(x, y).closest('.cal-more-list')",
            [listed["x"] + listed["width"] / 2, listed["y"] + listed["height"] - 6],
        )
        assert on_top
        screenshot(page, "calendar-twelve-at-once-open-desktop.png")
        assert describe("'+3 more' open", axe_violations(page)) == []
        links.nth(2).click()
        expect(page).to_have_url(f"{live_server.url}{made[8].get_absolute_url()}")

        # On a tablet, the week's list shows every one of them, in time order.
        page.goto(f"{live_server.url}/treatments/calendar/?view=week&date=2026-11-24")
        page.set_viewport_size({"width": 768, "height": 1024})
        expect(page.get_by_test_id("more-bookings").first).to_be_hidden()
        tops = []
        for booking in made:
            expect(card(page, booking)).to_be_visible()
            tops.append(box(card(page, booking))["y"])
        assert tops == sorted(tops)
        assert page.evaluate("document.documentElement.scrollWidth") <= 768
        screenshot(page, "calendar-twelve-at-once-tablet.png")
        assert describe("the tablet's list, twelve at once", axe_violations(page)) == []
    assert tab.errors == []


def test_the_booking_form_says_a_time_already_passed_before_saving(
    live_server, new_page: NewPage, receptionist: User, practitioner: User
) -> None:
    with time_machine.travel(NOW):
        WorkingHours.objects.create(
            practitioner=practitioner, weekday=1, starts=time(8), ends=time(19)
        )
        room = Room.objects.create(name="Room 1")
        ProtocolFactory(name="Hydrating face", session_minutes=45)
        PatientFactory(first_name="Benedict", last_name="Cole")
        tab: BrowserPage = new_page("desktop")
        page = tab.page
        sign_in(tab, live_server.url, receptionist)
        page.goto(
            f"{live_server.url}/treatments/calendar/bookings/new/?date=2026-11-24&time=10:00"
            f"&practitioner={practitioner.uuid}&room={room.uuid}"
        )
        page.get_by_test_id("patient-search").press_sequentially("Cole", delay=30)
        page.get_by_test_id("patient-choice").first.check()
        page.get_by_label("Protocol").select_option(label="Hydrating face")
        expect(page.get_by_test_id("booking-check")).to_contain_text(
            "Benedict Cole is not ready to treat at that time"
        )
        # 08:00 this morning, half an hour ago: said as the time changes, before saving.
        page.get_by_label("Start time").fill("08:00")
        page.get_by_label("Start time").press("Tab")
        problem = page.get_by_test_id("booking-check-problem")
        expect(problem).to_have_text("This time has already passed. Choose a time from now on.")
        expect(page.get_by_test_id("booking-check")).to_have_count(0)
        both_sizes(page, "booking-time-passed")
        page.get_by_label("Start time").fill("10:30")
        page.get_by_label("Start time").press("Tab")
        expect(page.get_by_test_id("booking-check")).to_contain_text("Benedict Cole")
        expect(problem).to_have_count(0)
    assert tab.errors == []


# From the calendar's heading to the first booking card: Previous, Today,
# Next, Day, Week, New booking, Book a course, the date (Chromium's date input
# takes four presses: day, month, year and its calendar button), practitioner
# and room filters, Show, Next free slot, the grid's scrolling box, then the
# card: 17. The same in the day and the week view, however many free times
# come first; nothing stands between the scrolling box and the first card.
TABS_TO_FIRST_CARD = 17


def from_heading(page: Page) -> None:
    """Start the keyboard from the page's heading, as a reader arriving does."""
    page.get_by_role("heading", level=1).evaluate("el => { el.tabIndex = -1; el.focus(); }")


def tab_until(page: Page, target: Locator, most: int) -> int:
    """Press Tab until `target` has the focus; how many presses it took."""
    for presses in range(1, most + 1):
        page.keyboard.press("Tab")
        if target.evaluate("el => el === document.activeElement"):
            return presses
    focused = page.evaluate("document.activeElement.outerHTML.slice(0, 200)")
    raise AssertionError(f"not reached in {most} presses of Tab; the focus is on {focused}")


def focused(page: Page) -> Locator:
    return page.locator(":focus")


def test_the_calendar_by_keyboard_reaches_a_booking_in_a_few_tabs_and_books_a_free_time(
    live_server, new_page: NewPage, receptionist: User, practitioner: User, make_staff: object
) -> None:
    with time_machine.travel(NOW):
        week = busy_week(practitioner, make_staff)
        b = week.bookings
        jodie = b["Jodie"].patient
        tab: BrowserPage = new_page("desktop")
        page = tab.page
        page.set_viewport_size({"width": 1366, "height": 768})
        sign_in(tab, live_server.url, receptionist)

        # Tuesday's day view: eight rows of free times (24 links) come before
        # the first booking; Tab passes over them to Amelia's card.
        page.goto(f"{live_server.url}/treatments/calendar/?view=day&date=2026-11-24")
        grid = page.get_by_test_id("calendar")
        assert grid.locator("[data-testid=free-slot]").count() > 24
        expect(page.get_by_test_id("cal-keys")).to_be_visible()
        from_heading(page)
        to_box = tab_until(page, grid, TABS_TO_FIRST_CARD)
        page.keyboard.press("Tab")
        expect(card(page, b["Benedict"])).to_be_focused()  # Omar's column comes first
        day_presses = to_box + 1
        assert day_presses <= TABS_TO_FIRST_CARD
        # Tab goes on from booking to booking: Amelia's, at the same time.
        page.keyboard.press("Tab")
        expect(card(page, b["Amelia"])).to_be_focused()
        # The arrow keys go along the row and through the free times: back to
        # Benedict and on to Amelia, an hour up her column (Page Up), then a
        # quarter of an hour down and up again.
        page.keyboard.press("ArrowLeft")
        expect(card(page, b["Benedict"])).to_be_focused()
        page.keyboard.press("ArrowRight")
        expect(card(page, b["Amelia"])).to_be_focused()
        page.keyboard.press("PageUp")
        expect(focused(page)).to_have_attribute("aria-label", "Book at 09:00")
        page.keyboard.press("ArrowDown")
        expect(focused(page)).to_have_attribute("aria-label", "Book at 09:15")
        page.keyboard.press("ArrowUp")
        slot = focused(page)
        expect(slot).to_have_attribute("aria-label", "Book at 09:00")
        expect(slot).to_have_attribute("data-testid", "free-slot")
        # The focus is drawn for all to see: a dark outline and the time written in.
        assert slot.evaluate("el => getComputedStyle(el).outlineStyle") == "solid"
        assert "Book at 09:00" in slot.evaluate("el => getComputedStyle(el, '::after').content")
        both_sizes_focused(page, "keyboard-day")

        # Enter books it: the form opens on that day, time and practitioner.
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", level=1)).to_have_text("New booking")
        expect(page.get_by_label("Start time")).to_have_value("09:00")
        tab_until(page, page.get_by_test_id("patient-search"), 20)
        page.keyboard.type("Price", delay=30)
        choice = page.get_by_test_id("patient-choice").first
        expect(choice).to_be_visible()
        tab_until(page, choice, 5)
        page.keyboard.press("Space")
        expect(choice).to_be_checked()
        tab_until(page, page.get_by_label("Protocol"), 5)
        page.keyboard.type("Hydrating")
        expect(page.get_by_label("Protocol")).to_have_value(str(b["Jodie"].protocol.uuid))
        tab_until(page, page.get_by_label("Room"), 5)
        page.keyboard.type("Room 3")
        tab_until(page, page.get_by_test_id("book"), 10)
        page.keyboard.press("Enter")
        expect(page.get_by_test_id("booking-status")).to_have_text("Booked")
        made = Booking.objects.filter(patient=jodie, starts_at=_at(1, 9)).get()
        assert made.practitioner == practitioner
        assert made.room.name == "Room 3"

        # The week: the day links above the grid leave the Tab order too, so
        # its first card (Monday's Farah) is as near as the day's.
        page.goto(f"{live_server.url}/treatments/calendar/?view=week&date=2026-11-24")
        from_heading(page)
        assert tab_until(page, card(page, b["Farah"]), TABS_TO_FIRST_CARD) == day_presses
        # Along the row: Tuesday at 09:00 is the booking just made, Wednesday's free.
        page.keyboard.press("ArrowRight")
        expect(card(page, made)).to_be_focused()
        page.keyboard.press("ArrowRight")
        expect(focused(page)).to_have_attribute("href", re.compile(r"date=2026-11-25&time=09%3A00"))
        # Up the column to the day's link above the grid, out of the Tab order.
        page.keyboard.press("Control+Home")
        expect(focused(page)).to_have_attribute("aria-label", "Book at 08:00")
        page.keyboard.press("ArrowUp")
        expect(focused(page)).to_have_text("Mon 23 Nov")
        assert focused(page).evaluate("el => el.tabIndex") == -1
        # Back into the grid, and along to the row's end: Sunday at 08:00.
        page.keyboard.press("ArrowDown")
        page.keyboard.press("End")
        expect(focused(page)).to_have_attribute("href", re.compile(r"date=2026-11-29&time=08%3A00"))
        page.keyboard.press("PageDown")
        page.keyboard.press("PageDown")
        expect(card(page, b["Maximilian"])).to_be_focused()  # Sunday at 10:00
        page.keyboard.press("ArrowUp")
        expect(focused(page)).to_have_attribute("aria-label", "Book at 09:45")
        both_sizes_focused(page, "keyboard-week")
        assert tab.errors == []


def both_sizes_focused(page: Page, name: str) -> None:
    """Screenshots at both sizes, the focus where the keyboard left it (at
    768 px the week reads as a list of days, free times left out: its first
    card takes the focus there)."""
    for size, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        if page.evaluate("document.activeElement.getClientRects().length") == 0:
            from_heading(page)
            tab_until(page, page.get_by_test_id("booking").first, TABS_TO_FIRST_CARD)
        page.evaluate("document.activeElement.scrollIntoView({block: 'center'})")
        screenshot(page, f"calendar-{name}-{size}.png")
    page.set_viewport_size({"width": 1366, "height": 768})

"""The calendar in a real browser: reception books a six-session course from a
free slot, and a second receptionist who wanted the same slot is refused."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import timezone
from playwright.sync_api import expect

from clinic.models import User
from clinic.roles import Role
from tests.browser.conftest import screenshot
from tests.browser.test_journeys import NewPage, sign_in
from tests.factories import PatientFactory, ProtocolFactory
from treatments.models import Booking, Room, TreatmentCourse, WorkingHours

pytestmark = pytest.mark.browser

# A Monday morning: tomorrow's course runs fortnightly from Tuesday 24 November,
# away from the clocks changing, whatever day the suite runs.
NOW = datetime(2026, 11, 23, 8, 30, tzinfo=ZoneInfo("Europe/London"))


@time_machine.travel(NOW)
def test_reception_books_a_course_from_the_calendar_and_a_second_receptionist_is_refused(
    live_server,
    new_page: NewPage,
    receptionist: User,
    practitioner: User,
    make_staff: Callable[..., User],
) -> None:
    for weekday in range(7):
        WorkingHours.objects.create(
            practitioner=practitioner, weekday=weekday, starts=time(8), ends=time(19)
        )
    Room.objects.create(name="Room 1")
    ProtocolFactory(name="Hydrating face", default_sessions=6, interval="fortnightly")
    PatientFactory(first_name="Amelia", last_name="Hart")
    PatientFactory(first_name="Ben", last_name="Cole")
    other = make_staff("reception2", Role.RECEPTIONIST, first_name="Rita")
    tomorrow = timezone.localdate() + timedelta(days=1)
    calendar = f"{live_server.url}/treatments/calendar/?view=day&date={tomorrow}"

    # Reception opens tomorrow's day view and clicks the free 10:00 slot.
    tab = new_page("desktop")
    page = tab.page
    sign_in(tab, live_server.url, receptionist)
    page.goto(calendar)
    expect(page.get_by_test_id("calendar")).to_be_visible()
    screenshot(page, "calendar-day-desktop.png")
    page.locator("[data-testid=free-slot][href*='time=10%3A00']").first.click()
    expect(page.get_by_label("Start time")).to_have_value("10:00")

    # Meanwhile a second receptionist opens the same slot for another patient.
    rival = new_page("desktop")
    sign_in(rival, live_server.url, other)
    rival.page.goto(calendar)
    rival.page.locator("[data-testid=free-slot][href*='time=10%3A00']").first.click()
    rival.page.get_by_test_id("patient-search").press_sequentially("Cole", delay=30)
    rival.page.get_by_test_id("patient-choice").first.check()
    rival.page.get_by_label("Protocol").select_option(label="Hydrating face")

    # Reception chooses the patient and protocol and asks for a whole course.
    page.get_by_test_id("patient-search").press_sequentially("Hart", delay=30)
    expect(page.get_by_test_id("patient-choice")).to_have_count(1)
    page.get_by_test_id("patient-choice").check()
    page.get_by_label("Protocol").select_option(label="Hydrating face")
    screenshot(page, "booking-form-desktop.png")
    page.get_by_test_id("propose-course").click()
    expect(page.get_by_test_id("proposal-row")).to_have_count(6)
    expect(page.get_by_label("Session 1 time")).to_have_value("10:00")
    screenshot(page, "course-proposal-desktop.png")
    page.get_by_test_id("confirm-course").click()
    expect(page.get_by_test_id("planned")).to_have_text("6")
    expect(page.get_by_test_id("booked")).to_have_text("6")
    expect(page.get_by_text("The course is booked: 6 sessions.")).to_be_visible()
    assert TreatmentCourse.objects.get().bookings.count() == 6

    # The rival's slot is gone: a clear message naming what holds it, and the
    # form keeps what was chosen.
    rival.page.get_by_test_id("book").click()
    expect(rival.page.get_by_test_id("form-error")).to_have_text(
        re.compile(
            r"^This slot was just taken: .+ and Room 1 are booked from 10:00 to 10:45 on .+\."
            r" Choose another time\.$"
        )
    )
    expect(rival.page.get_by_label("Start time")).to_have_value("10:00")
    expect(rival.page.get_by_label("Protocol")).to_have_value(re.compile(r"^[0-9a-f-]{36}$"))
    screenshot(rival.page, "booking-slot-taken-desktop.png")
    assert Booking.objects.count() == 6

    # The calendar shows the booking; day and week views at desktop and tablet widths.
    page.goto(calendar)
    expect(page.get_by_test_id("booking")).to_have_count(1)
    expect(page.get_by_test_id("booking")).to_contain_text("Amelia")
    screenshot(page, "calendar-day-booked-desktop.png")

    # Dragging the booking onto a free time moves it; a refused move says why
    # (a tall window keeps the whole day in view while dragging).
    page.set_viewport_size({"width": 1366, "height": 2200})
    card = page.get_by_test_id("booking")
    card.drag_to(page.locator("[data-testid=free-slot][href*='time=18%3A30']").first)
    expect(page.get_by_test_id("move-error")).to_contain_text("does not work at that time")
    card.drag_to(page.locator("[data-testid=free-slot][href*='time=14%3A00']").first)
    expect(page.get_by_test_id("booking")).to_contain_text("14:00")
    page.set_viewport_size({"width": 1366, "height": 900})
    first = TreatmentCourse.objects.get().bookings.order_by("starts_at").first()
    assert first is not None
    assert first.events.filter(kind="moved").count() == 1
    page.goto(f"{live_server.url}/treatments/calendar/?view=week&date={tomorrow}")
    screenshot(page, "calendar-week-desktop.png")
    page.set_viewport_size({"width": 768, "height": 1024})
    screenshot(page, "calendar-week-tablet.png")
    page.goto(calendar)
    screenshot(page, "calendar-day-tablet.png")

    # The refused drag answered 400 on purpose; nothing else may fail.
    assert [e for e in tab.errors if "status of 400" not in e] == []
    assert [e for e in rival.errors if "status of 409" not in e] == []

"""Dates typed and shown in the clinic's format in a real browser, whatever
the browser's own language: the calendar's date jump, the booking form and
the patient registration form and the session form, at 1366x768 and 768x1024 with screenshots."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.urls import reverse
from playwright.sync_api import expect

from clinic.models import User
from tests.browser.conftest import screenshot
from tests.browser.test_journeys import NewPage, sign_in
from tests.factories import PatientFactory, ProtocolFactory
from tests.treatments.test_session_helpers import make_world
from treatments.models import Room, WorkingHours

pytestmark = pytest.mark.browser

NOW = datetime(2026, 11, 23, 8, 30, tzinfo=ZoneInfo("Europe/London"))
SIZES = {"1366x768": (1366, 768), "768x1024": (768, 1024)}


@pytest.mark.parametrize("size", SIZES)
@time_machine.travel(NOW)
def test_reception_jumps_and_books_with_dates_typed_as_dd_mm_yyyy(
    live_server, new_page: NewPage, receptionist: User, practitioner: User, size: str
) -> None:
    for weekday in range(7):
        WorkingHours.objects.create(
            practitioner=practitioner, weekday=weekday, starts=time(8), ends=time(19)
        )
    Room.objects.create(name="Room 1")
    ProtocolFactory(name="Hydrating face")
    PatientFactory(first_name="Amelia", last_name="Hart")
    tab = new_page("desktop")
    page = tab.page
    page.set_viewport_size(dict(zip(("width", "height"), SIZES[size], strict=True)))
    sign_in(tab, live_server.url, receptionist)
    page.goto(f"{live_server.url}/treatments/calendar/?view=day&date=2026-11-24")
    jump = page.get_by_label("Date", exact=True)
    expect(jump).to_have_value("24/11/2026")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Tue 24 Nov")
    screenshot(page, f"dates-calendar-{size}.png")

    # Typed the clinic's way, the date jump goes to Wednesday.
    jump.fill("25/11/2026")
    with page.expect_navigation():
        jump.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Wed 25 Nov")

    # A free slot opens the booking form with the day and time in the clinic's format.
    page.locator("[data-testid=free-slot][href*='time=14%3A00']").first.click()
    booked_on = page.locator('form [name="date"]')
    expect(booked_on).to_have_value("25/11/2026")
    expect(page.get_by_label("Start time")).to_have_value("14:00")
    page.get_by_test_id("patient-search").press_sequentially("Hart", delay=30)
    expect(page.get_by_test_id("patient-choice")).to_have_count(1)
    page.get_by_test_id("patient-choice").check()
    page.get_by_label("Protocol").select_option(label="Hydrating face")
    # An American order is refused next to the field, naming the format, and kept.
    booked_on.fill("11/25/2026")
    page.get_by_test_id("book").click()
    expect(page.get_by_text("Enter the date as dd/mm/yyyy")).to_be_visible()
    expect(booked_on).to_have_value("11/25/2026")
    screenshot(page, f"dates-booking-form-{size}.png")
    booked_on.fill("25/11/2026")
    page.get_by_test_id("book").click()
    expect(page.get_by_text("Booked: Amelia Hart on Wed 25 Nov, 14:00.")).to_be_visible()


@pytest.mark.parametrize("size", SIZES)
@time_machine.travel(NOW)
def test_the_registration_form_asks_for_the_date_of_birth_as_dd_mm_yyyy(
    live_server, new_page: NewPage, receptionist: User, size: str
) -> None:
    tab = new_page("desktop")
    page = tab.page
    page.set_viewport_size(dict(zip(("width", "height"), SIZES[size], strict=True)))
    sign_in(tab, live_server.url, receptionist)
    page.goto(f"{live_server.url}/patients/new/")
    born = page.get_by_label("Date of birth")
    expect(born).to_have_attribute("type", "text")
    expect(born).to_have_attribute("placeholder", "dd/mm/yyyy")
    expect(born).to_have_attribute("autocomplete", "bday")
    born.fill("17/05/1990")
    screenshot(page, f"dates-register-{size}.png")


@pytest.mark.parametrize("size", SIZES)
@time_machine.travel(NOW)
def test_the_session_forms_adverse_event_times_are_typed_as_dd_mm_yyyy_hh_mm(
    live_server, new_page: NewPage, practitioner: User, size: str
) -> None:
    world = make_world(practitioner, first_name="Amelia", last_name="Hart")
    tab = new_page("desktop")
    page = tab.page
    page.set_viewport_size(dict(zip(("width", "height"), SIZES[size], strict=True)))
    sign_in(tab, live_server.url, practitioner)
    page.goto(
        live_server.url
        + reverse("treatments:session_record", kwargs={"booking": world.booking.uuid})
    )
    started = page.locator('[name$="-onset"]').first
    expect(started).to_have_attribute("type", "text")
    expect(started).to_have_attribute("placeholder", "dd/mm/yyyy hh:mm")
    resolved = page.locator('[name$="-resolved_on"]').first
    expect(resolved).to_have_attribute("placeholder", "dd/mm/yyyy")
    screenshot(page, f"dates-session-form-{size}.png")

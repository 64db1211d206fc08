"""Two desks, one record, in a real browser: the second save, made from a page
opened before the first, is refused with the other desk's change shown, and
what was typed stays on the screen (clinic.concurrency)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse
from playwright.sync_api import expect

from clinic.models import User
from clinic.roles import Role
from tests.browser.conftest import screenshot
from tests.browser.test_journeys import NewPage, assert_styled, sign_in
from tests.factories import PatientFactory
from tests.treatments import test_booking_support as support
from tests.treatments.test_booking_support import MONDAY, NOW, Clinic, at, book
from treatments.models import Booking

pytestmark = pytest.mark.browser

clinic = support.clinic
OPENED = datetime(2026, 5, 14, 9, 0, tzinfo=UTC)  # 10:00 in London (BST)
# The screenshots' sizes: a reception desktop and a tablet held upright.
SIZES = {"desktop": {"width": 1366, "height": 768}, "tablet": {"width": 768, "height": 1024}}


@pytest.fixture
def other_receptionist(make_staff: Callable[..., User]) -> User:
    return make_staff("reception-2", Role.RECEPTIONIST, first_name="Nadia", last_name="Osei")


@pytest.mark.parametrize("viewport", ["desktop", "tablet"])
def test_two_tabs_edit_one_patient_and_the_second_sees_the_other_desks_change(
    live_server, new_page: NewPage, receptionist: User, other_receptionist: User, viewport: str
) -> None:
    patient = PatientFactory(
        first_name="Amelia",
        last_name="Hart",
        email="amelia.hart@example.org",
        phone="+447911123456",
        reminder_channel="sms",
    )
    edit = live_server.url + reverse("patients:edit", kwargs={"patient": patient.uuid})
    with time_machine.travel(OPENED):
        desk_a, desk_b = new_page(viewport), new_page(viewport)
        sign_in(desk_a, live_server.url, receptionist)
        sign_in(desk_b, live_server.url, other_receptionist)
        for desk in (desk_a, desk_b):
            desk.page.set_viewport_size(SIZES[viewport])
            desk.page.goto(edit)

        # Rosa changes the mobile and saves.
        desk_a.page.get_by_label("Mobile phone", exact=True).fill("07912 345678")
        desk_a.page.get_by_test_id("save-patient").click()
        expect(desk_a.page.get_by_text("Contact details saved.")).to_be_visible()

        # Nadia, still on the old page, changes only the email: refused, with Rosa's change.
        b = desk_b.page
        b.get_by_label("Email").fill("amelia@newmail.example")
        b.get_by_test_id("save-patient").click()
        notice = b.get_by_test_id("stale-edit")
        expect(notice).to_be_visible()
        expect(notice.get_by_test_id("stale-message")).to_contain_text(
            re.compile(r"Rosa .* saved this patient at 10:0\d on Thu 14 May")
        )
        change = notice.get_by_test_id("stale-change")
        expect(change).to_have_count(1)
        expect(change).to_contain_text("Mobile phone")
        expect(change).to_contain_text("07912 345678")
        expect(b.get_by_label("Email")).to_have_value("amelia@newmail.example")  # kept
        assert_styled(b)
        screenshot(b, f"patient-stale-edit-{viewport}.png")
        patient.refresh_from_db()
        assert (patient.phone.as_e164, patient.email) == (
            "+447912345678",
            "amelia.hart@example.org",
        )

        # The field Nadia never touched shows Rosa's number, with a note, not an error.
        expect(b.get_by_label("Mobile phone", exact=True)).to_have_value(
            re.compile(r"7912 ?345 ?678")
        )
        expect(b.locator(".is-invalid")).to_have_count(0)
        expect(b.get_by_test_id("stale-note")).to_contain_text("You had not changed it")
        # Throwing her typing away asks first; she keeps it and saves hers instead.
        discard = notice.get_by_test_id("use-their-version")
        expect(discard).to_be_hidden()
        notice.get_by_test_id("discard-mine").locator("summary").click()
        expect(discard).to_be_visible()
        notice.get_by_test_id("save-mine").click()
        expect(b.get_by_text("Contact details saved.")).to_be_visible()
    patient.refresh_from_db()
    assert (patient.phone.as_e164, patient.email) == ("+447912345678", "amelia@newmail.example")
    assert desk_a.errors == []
    # The refusal answered 409 on purpose; nothing else may fail.
    assert [e for e in desk_b.errors if "status of 409" not in e] == []
    assert len(desk_b.errors) == 1


def test_dragging_a_booking_someone_moved_since_the_calendar_was_shown_is_refused(
    live_server, new_page: NewPage, clinic: Clinic, receptionist: User, practitioner: User
) -> None:
    tuesday = MONDAY + timedelta(days=1)
    booking = book(
        patient=clinic.patient,
        practitioner=clinic.practitioner,
        room=clinic.room,
        protocol=clinic.protocol,
        starts_at=at(tuesday, 10),
    )
    calendar = f"{live_server.url}/treatments/calendar/?view=day&date={tuesday.isoformat()}"
    with time_machine.travel(NOW):
        desk_a, desk_b = new_page("desktop"), new_page("desktop")
        sign_in(desk_a, live_server.url, receptionist)
        sign_in(desk_b, live_server.url, practitioner)
        for desk in (desk_a, desk_b):
            # A tall window keeps the whole day in view while dragging.
            desk.page.set_viewport_size({"width": 1366, "height": 1800})
            desk.page.goto(calendar)

        card = desk_a.page.get_by_test_id("booking")
        card.drag_to(desk_a.page.locator("[data-testid=free-slot][href*='time=14%3A00']").first)
        expect(desk_a.page.get_by_test_id("booking")).to_contain_text("14:00")

        # The other desk still shows it at 10:00: its drag is refused, saying who moved it.
        stale = desk_b.page.get_by_test_id("booking")
        stale.drag_to(desk_b.page.locator("[data-testid=free-slot][href*='time=15%3A00']").first)
        error = desk_b.page.get_by_test_id("move-error")
        expect(error.get_by_test_id("stale-message")).to_contain_text(
            re.compile(r"Rosa .* saved this booking at 08:0\d")
        )
        expect(error.get_by_role("listitem")).to_contain_text(["Starts: 24/11/2026 14:00"])
        desk_b.page.set_viewport_size(SIZES["desktop"])
        screenshot(desk_b.page, "calendar-stale-drag-desktop.png")
        # "Use their version" shows the calendar as it is now.
        error.get_by_test_id("use-their-version").click()
        expect(desk_b.page.get_by_test_id("booking")).to_contain_text("14:00")
    booking.refresh_from_db()
    assert booking.starts_at == at(tuesday, 14)
    assert Booking.objects.get().events.filter(kind="moved").count() == 1
    assert desk_a.errors == []
    assert [e for e in desk_b.errors if "status of 409" not in e] == []

"""A practitioner merges a duplicate record in a real browser: from the
duplicate's page to the comparison, where a clash of bookings first stops the
merge; once reception has cancelled one, the differences are checked, the
mobile number taken, and the merge lands on the record that stays, which now
shows both records' sessions as ready to treat."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.urls import reverse
from playwright.sync_api import Page, expect

from clinic.models import User
from patients.models import Patient
from tests.browser.conftest import BrowserPage, screenshot
from tests.browser.test_journeys import NewPage, sign_in
from tests.consent.helpers import signed_consent_for
from tests.factories import (
    BatchFactory,
    ConsentFormVersionFactory,
    IngredientFactory,
    PatientFactory,
    ProductFactory,
    ProtocolFactory,
    UserFactory,
    make_history,
)
from tests.treatments.test_booking_support import give_hours
from tests.treatments.test_session_helpers import give_and_read
from treatments.models import Booking, ProtocolCocktailLine, Room, WorkingHours
from treatments.services.booking import booking_cancel, booking_create

pytestmark = pytest.mark.browser

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=LONDON)  # a Monday morning
TUESDAY = NOW + timedelta(days=1)
SIZES = {"desktop": (1366, 768), "tablet": (768, 1024)}


def both_sizes(page: Page, name: str) -> None:
    for size, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        screenshot(page, f"merge-{name}-{size}.png")
    page.set_viewport_size({"width": 1366, "height": 768})


def book(patient: Patient, practitioner: User, protocol: object, starts_at: datetime) -> Booking:
    """A booking through the service and its rules, in working hours."""
    if not WorkingHours.objects.filter(practitioner=practitioner).exists():
        give_hours(practitioner, days=range(7), starts="08:00", ends="20:00")
    return booking_create(
        patient=patient,
        practitioner=practitioner,
        room=Room.objects.create(name=f"Room {starts_at:%H%M} {patient.pk}"),
        protocol=protocol,  # type: ignore[arg-type]
        starts_at=starts_at,
        ends_at=starts_at + timedelta(minutes=45),
        created_by=practitioner,
    )


def test_a_practitioner_compares_two_records_and_merges_the_duplicate(
    live_server, new_page: NewPage, practitioner: User, receptionist: User
) -> None:
    with time_machine.travel(NOW):
        version = ConsentFormVersionFactory()
        protocol = ProtocolFactory(name="Revitalising face", consent_form=version.form)
        ingredient = IngredientFactory(name="Hyaluronic acid")
        product = ProductFactory(ingredients=[ingredient])
        ProtocolCocktailLine.objects.create(
            protocol=protocol, product=product, amount=Decimal("1.50")
        )
        BatchFactory(product=product)
        # Registered twice: on paper (with her allergy reading and consent)...
        duplicate = PatientFactory(
            first_name="Amelia",
            last_name="Hart",
            date_of_birth=date(1988, 4, 2),
            email="amelia.hart@example.org",
            phone="+447911123456",
        )
        give_and_read(duplicate, practitioner, [ingredient], given_at=NOW - timedelta(days=3))
        signed_consent_for(patient=duplicate, version=version)
        clash = book(duplicate, practitioner, protocol, TUESDAY.replace(hour=11))
        book(duplicate, practitioner, protocol, TUESDAY.replace(hour=15))
        # ...and at the desk (with her medical history and a booking).
        survivor = PatientFactory(
            first_name="Amelia",
            last_name="Hart-Jones",
            date_of_birth=date(1988, 4, 12),
            email="amelia.hart@example.org",
            phone="+447911654321",
        )
        make_history(survivor, practitioner)
        book(
            survivor,
            UserFactory(first_name="Omar", last_name="Said"),
            protocol,
            TUESDAY.replace(hour=11, minute=15),
        )

        tab: BrowserPage = new_page("desktop")
        page = tab.page
        page.set_viewport_size({"width": 1366, "height": 768})
        sign_in(tab, live_server.url, practitioner)
        page.goto(live_server.url + duplicate.get_absolute_url())
        page.get_by_test_id("compare-merge").click()

        # The other record is offered: same email.
        expect(page.get_by_role("heading", level=1)).to_have_text("Compare and merge")
        expect(page.get_by_test_id("this-record")).to_contain_text("2 April 1988")
        expect(page.get_by_test_id("merge-candidates")).to_contain_text("Hart-Jones")
        both_sizes(page, "choose")
        page.get_by_test_id("compare-with").click()

        # A clash of bookings stops the merge before anything changes.
        problems = page.get_by_test_id("merge-problems")
        expect(problems).to_contain_text("Both records are booked at the same time")
        expect(problems).to_contain_text("Tue 24 Nov, 11:00")
        expect(problems).to_contain_text("Tue 24 Nov, 11:15")
        expect(problems).to_contain_text("Omar Said")
        expect(problems.locator("li li")).to_have_count(2)  # one line per booking
        expect(page.get_by_test_id("merge-submit")).to_have_count(0)
        expect(page.get_by_label("Take this mobile number")).to_have_count(0)
        both_sizes(page, "conflict")

        # Reception cancels the booking made twice; the comparison lets the merge go ahead.
        booking_cancel(booking=clash, reason="Booked twice", cancelled_by=receptionist)
        page.reload()
        expect(page.get_by_test_id("merge-problems")).to_have_count(0)
        expect(page.get_by_test_id("merge-differences")).to_contain_text("3 details differ")
        expect(page.get_by_test_id("detail-differs")).to_have_count(3)
        details = page.get_by_test_id("merge-details")
        expect(details).to_contain_text("2 April 1988")
        expect(details).to_contain_text("12 April 1988")
        expect(page.get_by_test_id("merge-holdings")).to_contain_text("Allergy (patch) tests")
        page.get_by_label("Take this mobile number").check()
        page.get_by_label("I have checked that both records are the same person").check()
        both_sizes(page, "compare")
        page.get_by_test_id("merge-submit").click()

        # The record that stays now holds both records' sessions, ready to treat.
        expect(page).to_have_url(live_server.url + survivor.get_absolute_url())
        expect(page.get_by_test_id("patient-name")).to_have_text("Amelia Hart-Jones")
        expect(
            page.get_by_text("Amelia Hart's record (born 2 April 1988) was merged into this one")
        ).to_be_visible()
        panel = page.get_by_test_id("treatment-panel")
        expect(panel.get_by_test_id("upcoming-booking")).to_have_count(2)
        expect(panel.get_by_text("ready to treat")).to_have_count(2)
        # The booking made twice and cancelled stays listed at its time, marked so.
        expect(panel.get_by_test_id("upcoming-cancelled")).to_have_count(1)
        expect(panel.get_by_test_id("upcoming-cancelled")).to_contain_text("Cancelled")
        expect(page.get_by_test_id("readiness")).to_contain_text("Nothing stands in the way")
        expect(page.get_by_text("07911 123456")).to_be_visible()
        both_sizes(page, "merged")

        # The duplicate's old address leads here; the practitioner sees her allergy test.
        page.goto(
            live_server.url
            + reverse("treatments:allergy_tests", kwargs={"patient": duplicate.uuid})
        )
        expect(page).to_have_url(
            live_server.url + reverse("treatments:allergy_tests", kwargs={"patient": survivor.uuid})
        )
        expect(page.get_by_text("Hyaluronic acid").first).to_be_visible()
        assert tab.errors == []

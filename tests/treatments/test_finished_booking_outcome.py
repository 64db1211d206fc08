"""A finished booking (completed, did not come, cancelled) shows its outcome,
never a readiness badge: "Ready to treat" on a session already given, or
"Not ready" on one that will never happen, says nothing true. Checked where
reception reads bookings: the calendar's card, the booking's page, the
patient's sessions panel and timeline."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.urls import reverse

from clinic.models import User
from tests.conftest import frozen_at, sign_in
from tests.treatments.test_session_helpers import make_booking, make_world
from treatments.models import Booking, BookingStatus

pytestmark = pytest.mark.django_db
LONDON = ZoneInfo("Europe/London")
# Tuesday afternoon: the morning's bookings are over.
NOW = datetime(2026, 11, 24, 15, 0, tzinfo=LONDON)
frozen = frozen_at(NOW)
READINESS = ('data-testid="safe"', 'data-testid="not-ready"', "Ready to treat", "Not ready")
FINISHED = [BookingStatus.COMPLETED, BookingStatus.NO_SHOW, BookingStatus.CANCELLED]


def _booking(practitioner: User, status: str, *, ready: bool) -> Booking:
    """A booking of this morning in `status`; `ready`: history and consent
    in place (else both missing: "Not ready" if judged)."""
    world = make_world(practitioner, status="booked", history=ready, consent=ready)
    starts = datetime(2026, 11, 24, 10, 0, tzinfo=LONDON)
    Booking.objects.filter(pk=world.booking.pk).update(
        starts_at=starts,
        ends_at=starts + timedelta(minutes=45),
        status=status,
        cancel_reason="Unwell" if status == BookingStatus.CANCELLED else "",
    )
    return Booking.objects.get(pk=world.booking.pk)


def _card(page: str, booking: Booking) -> str:
    pattern = rf'<a class="cal-booking[^"]*"[^>]*data-booking="{booking.uuid}".*?</a>'
    found = re.search(pattern, page)
    assert found is not None, "card not shown"
    return found.group(0)


@pytest.mark.parametrize("ready", [True, False])
@pytest.mark.parametrize("status", [BookingStatus.COMPLETED, BookingStatus.NO_SHOW])
def test_the_calendar_card_of_a_finished_booking_shows_its_outcome_alone(
    receptionist: User, practitioner: User, status: str, ready: bool
) -> None:
    booking = _booking(practitioner, status, ready=ready)
    client = sign_in(Client(), receptionist)
    for view in ("day", "week"):
        page = client.get(reverse("treatments:calendar"), {"view": view, "date": "2026-11-24"})
        card = _card(page.content.decode(), booking)
        assert booking.get_status_display() in card
        for said in READINESS:
            assert said not in card, (view, said)


def test_a_booking_still_to_happen_keeps_its_readiness_on_the_card(
    receptionist: User, practitioner: User
) -> None:
    world = make_world(practitioner, status="booked", history=False)
    starts = datetime(2026, 11, 24, 17, 0, tzinfo=LONDON)
    booking = make_booking(
        patient=world.patient,
        practitioner=practitioner,
        protocol=world.protocol,
        starts_at=starts,
        status=BookingStatus.BOOKED,
    )
    page = sign_in(Client(), receptionist).get(
        reverse("treatments:calendar"), {"view": "week", "date": "2026-11-24"}
    )
    assert 'data-testid="not-ready"' in _card(page.content.decode(), booking)


@pytest.mark.parametrize("ready", [True, False])
@pytest.mark.parametrize("status", FINISHED)
def test_the_booking_page_of_a_finished_booking_shows_its_outcome_alone(
    receptionist: User, practitioner: User, status: str, ready: bool
) -> None:
    booking = _booking(practitioner, status, ready=ready)
    page = sign_in(Client(), receptionist).get(booking.get_absolute_url()).content.decode()
    assert f'data-testid="booking-status">{booking.get_status_display()}<' in page
    assert 'data-testid="safe-to-treat"' not in page
    for said in READINESS:
        assert said not in page, said


@pytest.mark.parametrize("status", FINISHED)
def test_the_patients_page_shows_no_readiness_for_a_finished_booking(
    receptionist: User, practitioner: User, status: str
) -> None:
    booking = _booking(practitioner, status, ready=False)
    client = sign_in(Client(), receptionist)
    kwargs = {"patient": booking.patient.uuid}
    for name in ("treatments:patient_treatment_panel", "treatments:patient_timeline"):
        page = client.get(reverse(name, kwargs=kwargs), headers={"HX-Request": "true"})
        text = page.content.decode()
        if booking.get_absolute_url() in text:
            at = text.index(booking.get_absolute_url())
            item = text[text.rindex("<li", 0, at) : text.index("</li>", at)]
            for said in (*READINESS, "needed", "ready to treat"):
                assert said not in item, (name, said)

"""Closing days that hold bookings is refused: the manager is told which
bookings (date, time, patient) to move or cancel first, so no patient is
left booked, and reminded, for a day the clinic is shut."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.test import Client
from django.urls import reverse

from clinic.models import User
from tests.conftest import sign_in
from tests.treatments import test_booking_support as support
from tests.treatments.test_booking_support import MONDAY, Clinic, at
from treatments.models import Booking, BookingStatus, ClinicClosure
from treatments.services.booking import (
    BookingRefusedError,
    booking_cancel,
    booking_create,
    closure_add,
    closure_update,
)

clinic = support.clinic
frozen = support.frozen
pytestmark = pytest.mark.usefixtures("frozen")

CLOSURES = reverse("treatments:closure_list")
WEDNESDAY = MONDAY + timedelta(days=2)


def _book(c: Clinic, user: User, day: date, hour: int = 10) -> Booking:
    return booking_create(
        patient=c.patient,
        practitioner=c.practitioner,
        room=c.room,
        protocol=c.protocol,
        starts_at=at(day, hour),
        ends_at=at(day, hour, 45),
        created_by=user,
    )


def test_closing_a_booked_day_is_refused_naming_the_booking(
    clinic: Clinic, receptionist: User, manager: User
) -> None:
    booking = _book(clinic, receptionist, WEDNESDAY, 14)
    with pytest.raises(BookingRefusedError) as refused:
        closure_add(starts_on=MONDAY, ends_on=WEDNESDAY, reason="Training", added_by=manager)
    assert f"Wed 25 Nov, 14:00 {clinic.patient.full_name}" in refused.value.message
    assert "Move or cancel them first" in refused.value.message
    assert not ClinicClosure.objects.exists()
    booking.refresh_from_db()
    assert booking.status == BookingStatus.BOOKED


def test_the_closures_page_refuses_with_400_listing_bookings_and_keeps_the_form(
    clinic: Clinic, receptionist: User, manager: User
) -> None:
    _book(clinic, receptionist, WEDNESDAY, 9)
    response = sign_in(Client(), manager).post(
        CLOSURES,
        {"starts_on": WEDNESDAY.isoformat(), "ends_on": WEDNESDAY.isoformat(), "reason": "Flood"},
    )
    assert response.status_code == 400
    body = response.content.decode()
    listed = body[body.index('data-testid="closure-clash"') :]
    assert "Wed 25 Nov, 09:00\N{EN DASH}09:45" in listed
    assert clinic.patient.full_name in listed
    assert 'value="Flood"' in body
    assert not ClinicClosure.objects.exists()


def test_a_cancelled_booking_does_not_keep_the_day_open(
    clinic: Clinic, receptionist: User, manager: User
) -> None:
    booking = _book(clinic, receptionist, WEDNESDAY)
    booking_cancel(booking=booking, reason="Moved away", cancelled_by=receptionist)
    closure = closure_add(
        starts_on=WEDNESDAY, ends_on=WEDNESDAY, reason="Training", added_by=manager
    )
    assert closure.pk


def test_extending_a_closure_over_a_booked_day_is_refused(
    clinic: Clinic, receptionist: User, manager: User
) -> None:
    closure = closure_add(starts_on=MONDAY, ends_on=MONDAY, reason="Training", added_by=manager)
    _book(clinic, receptionist, WEDNESDAY)
    with pytest.raises(BookingRefusedError, match="10:00"):
        closure_update(
            closure=closure,
            starts_on=MONDAY,
            ends_on=WEDNESDAY,
            reason="Training",
            updated_by=manager,
            expected_version=closure.version,
        )
    closure.refresh_from_db()
    assert closure.ends_on == MONDAY
    # Its reason alone may still change.
    closure = closure_update(
        closure=closure,
        starts_on=MONDAY,
        ends_on=MONDAY,
        reason="Staff training",
        updated_by=manager,
        expected_version=closure.version,
    )
    assert closure.reason == "Staff training"

"""The demo gives reception's follow-up list someone to call: two courses
whose sessions were all cancelled, seeded once, through the services."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from clinic.models import User
from tests.conftest import sign_in
from tests.treatments.test_booking_demo import seed_all
from tests.treatments.test_booking_support import NOW
from treatments.models import Booking, BookingStatus, Reminder, ReminderStatus
from treatments.selectors.reminders import courses_to_book

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


def test_the_demo_lists_two_courses_to_book_once_and_reception_sees_them(
    practitioner: User, receptionist: User, client: Client
) -> None:
    from treatments.demo import followup

    seed_all(practitioner, receptionist)
    assert followup.seed(practitioner=practitioner, reception=receptionist) == 2 * (1 + 4)
    assert followup.seed(practitioner=practitioner, reception=receptionist) == 0
    listed = courses_to_book()
    assert {row.patient_name for row in listed.rows} == {"Theo Fairbairn", "Freya Lindqvist"}
    assert {(row.sessions_done, row.planned_sessions) for row in listed.rows} == {(0, 4)}
    # Booked and cancelled through the services: every session cancelled
    # with its reason, and their reminders cancelled with them.
    cancelled = Booking.objects.filter(
        course__patient__first_name__in=("Theo", "Freya"), course__isnull=False
    )
    assert cancelled.count() == 8
    assert set(cancelled.values_list("status", flat=True)) == {BookingStatus.CANCELLED}
    assert all(b.cancel_reason for b in cancelled)
    assert not Reminder.objects.filter(
        booking__in=cancelled, status=ReminderStatus.PLANNED
    ).exists()
    sign_in(client, receptionist)
    page = client.get(reverse("treatments:reminder_followups")).content.decode()
    assert "Theo Fairbairn" in page
    assert "None yet: every booking was cancelled or missed" in page

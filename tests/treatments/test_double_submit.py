"""A double-clicked submit (two identical posts at the same instant, each on
its own database connection) never creates two rows: the booking form and the
allergy-test form carry a one-time token (clinic.concurrency), and the second
post answers like the first, with a redirect to what was saved. Completing a
session twice at once records it once (the booking row lock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.test import Client, override_settings
from django.urls import reverse

from clinic.models import User
from tests.conftest import sign_in
from tests.factories import IngredientFactory, PatientFactory
from tests.races import hidden_value, post_at_once
from tests.treatments import test_booking_support as support
from tests.treatments.test_booking_support import MONDAY, Clinic, booking_post
from tests.treatments.test_session_helpers import make_world, session_post
from treatments.models import (
    AllergyTest,
    Booking,
    BookingEvent,
    CocktailLine,
    Reminder,
    SessionRecord,
)

clinic = support.clinic
frozen = support.frozen
ALREADY = "This was already saved: the form was sent twice, and saved once."
LONDON = ZoneInfo("Europe/London")


def _followed(client: Client, location: str) -> str:
    return client.get(location).content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_double_clicked_booking_books_once_and_both_posts_lead_to_it(
    frozen: None, clinic: Clinic, receptionist: User
) -> None:
    tuesday = MONDAY + timedelta(days=1)
    first, second = sign_in(Client(), receptionist), sign_in(Client(), receptionist)
    page = first.get(reverse("treatments:booking_new")).content.decode()
    data = {
        **booking_post(clinic, tuesday, "10:00"),
        "submission_token": hidden_value(page, "submission_token"),
    }
    answers = post_at_once([first, second], reverse("treatments:booking_new"), [data, data])
    booking = Booking.objects.get()
    assert [a.status for a in answers] == [302, 302], answers
    assert {a.location for a in answers} == {booking.get_absolute_url()}
    pages = [_followed(c, booking.get_absolute_url()) for c in (first, second)]
    assert sum(ALREADY in p for p in pages) == 1  # one of them is told it was a repeat
    assert sum("Booked: Amelia Hart" in p for p in pages) == 1
    assert BookingEvent.objects.filter(kind="created").count() == 1
    planned = Reminder.objects.filter(booking=booking).count()
    assert planned >= 1
    assert Reminder.objects.count() == planned  # reminders planned once


@pytest.mark.django_db
def test_a_booking_form_sent_again_later_finds_the_first_booking(
    frozen: None, clinic: Clinic, receptionist: User
) -> None:
    tuesday = MONDAY + timedelta(days=1)
    client = sign_in(Client(), receptionist)
    page = client.get(reverse("treatments:booking_new")).content.decode()
    token = hidden_value(page, "submission_token")
    data = {**booking_post(clinic, tuesday, "10:00"), "submission_token": token}
    assert client.post(reverse("treatments:booking_new"), data).status_code == 302
    again = client.post(reverse("treatments:booking_new"), data, follow=True)
    # A new form has a new token.
    fresh = client.get(reverse("treatments:booking_new")).content.decode()
    assert hidden_value(fresh, "submission_token") != token
    assert again.redirect_chain[0][0] == Booking.objects.get().get_absolute_url()
    assert ALREADY in again.content.decode()
    assert Booking.objects.count() == 1


@pytest.mark.django_db
def test_a_mangled_booking_token_is_a_400_with_a_sentence(
    frozen: None, clinic: Clinic, receptionist: User
) -> None:
    tuesday = MONDAY + timedelta(days=1)
    client = sign_in(Client(), receptionist)
    data = {**booking_post(clinic, tuesday, "10:00"), "submission_token": "not-a-uuid"}
    response = client.post(reverse("treatments:booking_new"), data)
    assert response.status_code == 400
    assert "This form could not be checked" in response.content.decode()
    assert not Booking.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_double_clicked_allergy_test_is_recorded_once(practitioner: User, tmp_path: Path) -> None:
    with (
        override_settings(MEDIA_ROOT=str(tmp_path)),
        time_machine.travel(datetime(2026, 7, 1, 9, 30, tzinfo=LONDON), tick=False),
    ):
        patient = PatientFactory(first_name="Amelia", last_name="Hart")
        ingredient = IngredientFactory(name="Vitamin C")
        url = reverse("treatments:allergy_test_new", kwargs={"patient": patient.uuid})
        first, second = sign_in(Client(), practitioner), sign_in(Client(), practitioner)
        page = first.get(url).content.decode()
        data: dict[str, Any] = {
            "ingredients": [ingredient.pk],
            "site": "Inner left forearm",
            "given_at": "2026-07-01T09:25",
            "submission_token": hidden_value(page, "submission_token"),
        }
        answers = post_at_once([first, second], url, [data, data])
        test = AllergyTest.objects.get()
        assert [a.status for a in answers] == [302, 302], answers
        assert {a.location for a in answers} == {test.get_absolute_url()}
        pages = [_followed(c, test.get_absolute_url()) for c in (first, second)]
    assert sum(ALREADY in p for p in pages) == 1
    assert list(test.ingredients.all()) == [ingredient]


@pytest.mark.django_db(transaction=True)
def test_two_completions_of_one_session_at_once_record_it_once(practitioner: User) -> None:
    with time_machine.travel(datetime(2026, 11, 24, 10, 30, tzinfo=UTC), tick=False):
        world = make_world(practitioner)
        url = reverse("treatments:session_record", kwargs={"booking": world.booking.uuid})
        clients = [sign_in(Client(), practitioner) for _ in range(2)]
        data = session_post(world.batches)
        answers = post_at_once(clients, url, [data, data])
    statuses = sorted(a.status for a in answers)
    assert statuses == [302, 409], answers
    refused = next(a for a in answers if a.status == 409)
    assert "This session is already completed: add an amendment instead." in refused.body
    assert SessionRecord.objects.filter(booking=world.booking).count() == 1
    assert CocktailLine.objects.count() == len(world.batches)

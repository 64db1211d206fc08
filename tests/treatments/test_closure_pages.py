"""The closures pages, as a manager reads them: days refused because they
hold bookings list each booking on a line of its own with the way to move
it, and removing a closure from the list asks once more before it acts."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse

from clinic.models import User
from tests.conftest import sign_in
from tests.pageforms import form_data
from tests.treatments import test_booking_support as support
from tests.treatments.test_booking_support import MONDAY, Clinic, at
from treatments.models import Booking, ClinicClosure
from treatments.services.booking import booking_create, closure_add

clinic = support.clinic
frozen = support.frozen
pytestmark = pytest.mark.usefixtures("frozen")

CLOSURES = reverse("treatments:closure_list")
WEDNESDAY = MONDAY + timedelta(days=2)
THURSDAY = MONDAY + timedelta(days=3)


def _book(c: Clinic, user: User, day: object, hour: int, *, other: bool = False) -> Booking:
    return booking_create(
        patient=c.other_patient if other else c.patient,
        practitioner=c.other_practitioner if other else c.practitioner,
        room=c.other_room if other else c.room,
        protocol=c.protocol,
        starts_at=at(day, hour),  # type: ignore[arg-type]
        ends_at=at(day, hour, 45),  # type: ignore[arg-type]
        created_by=user,
    )


def clash_lines(body: str) -> list[str]:
    clash = body[body.index('data-testid="closure-clash"') :]
    clash = clash[: clash.index("</ul>")]
    return clash.split('data-testid="closure-clash-booking"')[1:]


def test_a_refused_closure_lists_each_booking_on_its_own_line_with_a_link_to_move_it(
    clinic: Clinic, receptionist: User, manager: User
) -> None:
    first = _book(clinic, receptionist, WEDNESDAY, 14)
    second = _book(clinic, receptionist, THURSDAY, 9, other=True)
    response = sign_in(Client(), manager).post(
        CLOSURES,
        {
            "starts_on": WEDNESDAY.isoformat(),
            "ends_on": THURSDAY.isoformat(),
            "reason": "Training",
        },
    )

    assert response.status_code == 400
    body = response.content.decode()
    lines = clash_lines(body)
    assert len(lines) == 2
    for line, booking, when in (
        (lines[0], first, "Wed 25 Nov, 14:00\N{EN DASH}14:45"),
        (lines[1], second, "Thu 26 Nov, 09:00\N{EN DASH}09:45"),
    ):
        assert when in line
        assert booking.patient.full_name in line
        assert booking.practitioner.get_full_name() in line
        assert reverse("treatments:booking_move", kwargs={"booking": booking.uuid}) in line
        assert reverse("treatments:booking_detail", kwargs={"booking": booking.uuid}) in line
    # Not one run-on sentence naming them all.
    assert "These days hold bookings: " + "Wed 25 Nov" not in body
    assert form_data(body)["reason"] == "Training"
    assert not ClinicClosure.objects.exists()


def test_extending_a_closure_over_booked_days_lists_only_the_new_days_bookings(
    clinic: Clinic, receptionist: User, manager: User
) -> None:
    closure = closure_add(
        starts_on=MONDAY, ends_on=MONDAY, reason="Staff training", added_by=manager
    )
    booking = _book(clinic, receptionist, WEDNESDAY, 11)
    url = reverse("treatments:closure_edit", kwargs={"closure": closure.uuid})
    client = sign_in(Client(), manager)

    response = client.post(
        url, form_data(client.get(url).content.decode(), ends_on=WEDNESDAY.isoformat())
    )

    assert response.status_code == 400
    lines = clash_lines(response.content.decode())
    assert len(lines) == 1
    assert "Wed 25 Nov, 11:00\N{EN DASH}11:45" in lines[0]
    assert reverse("treatments:booking_move", kwargs={"booking": booking.uuid}) in lines[0]


def test_removing_a_closure_from_the_list_asks_once_more_before_it_acts(
    manager: User,
) -> None:
    closure = closure_add(
        starts_on=WEDNESDAY, ends_on=WEDNESDAY, reason="Staff training", added_by=manager
    )
    page = sign_in(Client(), manager).get(CLOSURES).content.decode()

    item = page[page.index('data-testid="closure"') :]
    item = item[: item.index("</li>")]
    # The first "Remove" only opens the question; the button that removes is inside it.
    ask = re.search(r"<details[^>]*>\s*<summary[^>]*>([^<]*)</summary>(.*)</details>", item, re.S)
    assert ask is not None
    assert ask.group(1).strip() == "Remove…"
    question = ask.group(2)
    assert "Its days can be booked again at once." in question
    remove = reverse("treatments:closure_remove", kwargs={"closure": closure.uuid})
    assert f'action="{remove}"' in question
    assert 'data-testid="closure-remove"' in question
    outside = item.replace(ask.group(0), "")
    assert "<form" not in outside
    assert 'type="submit"' not in outside

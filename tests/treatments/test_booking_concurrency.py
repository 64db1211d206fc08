"""Fifty receptionists take the same slot at the same instant: PostgreSQL lets
exactly one through, everyone else is told the slot was just taken."""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connections
from django.test import Client
from django.urls import reverse

from clinic.models import User
from tests.conftest import sign_in
from tests.treatments import test_booking_support as support
from tests.treatments.test_booking_support import MONDAY, NOW, Clinic, booking_post
from treatments.models import Booking

clinic = support.clinic
ATTEMPTS = 50
TAKEN = re.compile(
    r"This slot was just taken: [^<]* from 10:00 to 10:45 on Tue 24 Nov[^<]*\."
    r" Choose another time\."
)


def _race(clients: list[Client], payloads: list[dict[str, str]]) -> list[tuple[int, str]]:
    barrier = threading.Barrier(len(clients))
    results: list[tuple[int, str]] = [(0, "")] * len(clients)

    def attempt(index: int) -> None:
        try:
            barrier.wait(timeout=60)
            response = clients[index].post(reverse("treatments:booking_new"), payloads[index])
            results[index] = (response.status_code, response.content.decode())
        except Exception as error:  # a crash must show up as a failure, not a hang
            results[index] = (-1, repr(error))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("what", ["same slot", "same patient", "same room"])
def test_fifty_concurrent_attempts_at_one_slot_give_one_booking(
    clinic: Clinic, receptionist: User, what: str
) -> None:
    tuesday = MONDAY + timedelta(days=1)
    payloads = []
    for index in range(ATTEMPTS):
        data = booking_post(clinic, tuesday, "10:00")
        if what == "same patient":
            # Different practitioners and rooms would be free: only the patient clashes.
            data["practitioner"] = str(
                (clinic.practitioner if index % 2 else clinic.other_practitioner).uuid
            )
            data["room"] = str((clinic.room if index % 3 else clinic.other_room).uuid)
        if what == "same room":
            data["patient"] = str((clinic.patient if index % 2 else clinic.other_patient).uuid)
            data["practitioner"] = str(
                (clinic.practitioner if index % 3 else clinic.other_practitioner).uuid
            )
        payloads.append(data)
    with time_machine.travel(NOW, tick=False):
        clients = [sign_in(Client(), receptionist) for _ in range(ATTEMPTS)]
        results = _race(clients, payloads)
    statuses = [status for status, _body in results]
    assert statuses.count(302) == 1, statuses
    assert statuses.count(409) == ATTEMPTS - 1, statuses
    assert not [s for s in statuses if s >= 500 or s < 0]
    refused = [body for status, body in results if status == 409]
    # Each refusal names what holds the time: the winner's session.
    assert all(re.search(TAKEN, body) for body in refused)
    assert Booking.objects.count() == 1

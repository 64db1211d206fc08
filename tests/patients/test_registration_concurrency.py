"""Ten submissions of one registration at the same instant, each over its own
connection: one record, and every other request sees it."""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest
import time_machine
from django.contrib.messages import get_messages
from django.db import connections
from django.test import Client
from django.urls import reverse

from clinic.models import User
from patients.models import Patient
from patients.services import patient_create
from tests.conftest import sign_in

pytestmark = pytest.mark.django_db(transaction=True)

CREATE = reverse("patients:create")
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ATTEMPTS = 10
WARNING = "This may be someone already registered"
TOKEN = re.compile(r'name="registration_token" value="([0-9a-f-]{36})"')


@dataclass
class Outcome:
    status: int
    location: str = ""
    body: str = ""
    messages: tuple[str, ...] = ()


@pytest.fixture(autouse=True)
def frozen_clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


def registration(**overrides: str) -> dict[str, str]:
    data = {
        "first_name": "Zoë",
        "last_name": "Müller",
        "date_of_birth": "1991-07-02",
        "email": "zoe.muller@example.org",
        "phone": "07911 123456",
        "reminder_channel": "email",
    }
    data.update(overrides)
    return data


def own_form_token(client: Client) -> str:
    """What the receptionist's browser got with its empty registration form."""
    match = TOKEN.search(client.get(CREATE).content.decode())
    assert match
    return match.group(1)


def race(clients: list[Client], payloads: list[dict[str, str]]) -> list[Outcome]:
    barrier = threading.Barrier(len(clients))
    outcomes = [Outcome(0)] * len(clients)

    def attempt(index: int) -> None:
        try:
            barrier.wait(timeout=60)
            response = clients[index].post(CREATE, payloads[index])
            outcomes[index] = Outcome(
                response.status_code,
                response.get("Location", ""),
                response.content.decode(),
                tuple(str(m) for m in get_messages(response.wsgi_request)),
            )
        except Exception as error:  # a crash must show up as a failure, not a hang
            outcomes[index] = Outcome(-1, body=repr(error))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes


def assert_no_server_error(outcomes: list[Outcome]) -> None:
    assert all(o.status in (200, 302) for o in outcomes), [(o.status, o.body) for o in outcomes]


def test_the_same_form_sent_ten_times_at_once_registers_one_patient(receptionist: User) -> None:
    clients = [sign_in(Client(), receptionist) for _ in range(ATTEMPTS)]
    data = registration(registration_token=own_form_token(clients[0]))
    outcomes = race(clients, [data] * ATTEMPTS)
    assert_no_server_error(outcomes)
    patient = Patient.objects.get()
    # Every request lands on the one record: one registered it, nine were told so.
    assert [o.location for o in outcomes] == [patient.get_absolute_url()] * ATTEMPTS
    said = sorted(m for o in outcomes for m in o.messages)
    assert said.count("Zoë Müller is registered.") == 1
    assert said.count("Zoë Müller is already registered.") == ATTEMPTS - 1


def test_ten_receptionists_registering_one_person_at_once_make_one_record(
    receptionist: User,
) -> None:
    clients = [sign_in(Client(), receptionist) for _ in range(ATTEMPTS)]
    payloads = [registration(registration_token=own_form_token(c)) for c in clients]
    outcomes = race(clients, payloads)
    assert_no_server_error(outcomes)
    patient = Patient.objects.get()
    assert [o.status for o in outcomes].count(302) == 1
    warned = [o for o in outcomes if o.status == 200]
    assert len(warned) == ATTEMPTS - 1
    assert all(WARNING in o.body and patient.get_absolute_url() in o.body for o in warned)


def test_names_differing_only_by_accents_and_case_at_once_make_one_record(
    receptionist: User,
) -> None:
    spellings = [
        ("Zoë", "Müller"),
        ("zoe", "muller"),
        ("ZOE", "MUELLER"),
        (unicodedata.normalize("NFD", "Zoë"), unicodedata.normalize("NFD", "Müller")),
        ("Zoé", "Muller"),
    ]
    clients = [sign_in(Client(), receptionist) for _ in range(ATTEMPTS)]
    payloads = []
    for index, client in enumerate(clients):
        first_name, last_name = spellings[index % len(spellings)]
        # Different contact details each time: only the folded name and birth date match.
        payloads.append(
            registration(
                first_name=first_name,
                last_name=last_name,
                email=f"zoe{index}@example.org",
                phone=f"07911 1234{index:02d}",
                registration_token=own_form_token(client),
            )
        )
    outcomes = race(clients, payloads)
    assert_no_server_error(outcomes)
    patient = Patient.objects.get()
    assert [o.status for o in outcomes].count(302) == 1
    assert all(
        WARNING in o.body and patient.get_absolute_url() in o.body
        for o in outcomes
        if o.status == 200
    )


def test_a_confirmed_different_person_sent_ten_times_at_once_is_registered_once(
    receptionist: User,
) -> None:
    existing = patient_create(
        created_by=receptionist,
        first_name="Zoë",
        last_name="Müller",
        date_of_birth=date(1991, 7, 2),
        email="zoe.muller@example.org",
        reminder_channel="email",
    )
    clients = [sign_in(Client(), receptionist) for _ in range(ATTEMPTS)]
    data = registration(
        email="the.other.zoe@example.org",
        phone="07722 999888",
        confirm_not_duplicate="on",
        registration_token=own_form_token(clients[0]),
    )
    outcomes = race(clients, [data] * ATTEMPTS)
    assert_no_server_error(outcomes)
    assert Patient.objects.count() == 2
    second = Patient.objects.exclude(pk=existing.pk).get()
    assert [o.location for o in outcomes] == [second.get_absolute_url()] * ATTEMPTS

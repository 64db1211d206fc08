"""Registering someone already on the register: the warning sees through case,
accents and apostrophes, and one registration form registers one person."""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from clinic.models import User
from patients.models import ContactChange, Patient
from patients.services import (
    AlreadyRegisteredError,
    PossibleDuplicateError,
    RegistrationFormUsedError,
    patient_create,
)
from tests.conftest import sign_in

pytestmark = pytest.mark.django_db

CREATE = reverse("patients:create")
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
WARNING = "This may be someone already registered"
TOKEN = re.compile(r'name="registration_token" value="([0-9a-f-]{36})"')


@pytest.fixture(autouse=True)
def frozen_clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def zoe(receptionist: User) -> Patient:
    return patient_create(
        created_by=receptionist,
        first_name="Zoë",
        last_name="Müller",
        date_of_birth=date(1991, 7, 2),
        email="zoe.muller@example.org",
        phone="+447911123456",
        reminder_channel="email",
    )


def registration(**overrides: str) -> dict[str, str]:
    data = {
        "first_name": "Zoe",
        "last_name": "Muller",
        "date_of_birth": "1991-07-02",
        "email": "someone.else@example.org",
        "phone": "07722 999888",
        "reminder_channel": "sms",
    }
    data.update(overrides)
    return data


def token_of(body: str) -> str:
    match = TOKEN.search(body)
    assert match, "the registration form carries its one-time token"
    return match.group(1)


# --- The warning -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first_name", "last_name"),
    [
        ("Zoe", "Muller"),
        ("zoe", "mueller"),
        ("ZOË", "MÜLLER"),
        ("Zoé", "Muller"),
        (unicodedata.normalize("NFD", "Zoë"), unicodedata.normalize("NFD", "Müller")),
    ],
)
def test_registering_the_same_person_spelt_differently_warns_with_a_link(
    zoe: Patient, receptionist: User, client: Client, first_name: str, last_name: str
) -> None:
    response = sign_in(client, receptionist).post(
        CREATE, registration(first_name=first_name, last_name=last_name)
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert WARNING in body
    assert zoe.get_absolute_url() in body
    assert Patient.objects.count() == 1


@pytest.mark.parametrize("last_name", ["O'Grady", "O\u2019Grady", "OGrady", "O Grady", "o-grady"])
def test_apostrophes_do_not_hide_a_duplicate(
    receptionist: User, client: Client, last_name: str
) -> None:
    siobhan = patient_create(
        created_by=receptionist,
        first_name="Siobhán",
        last_name="O'Grady",
        date_of_birth=date(1979, 2, 14),
        reminder_channel="none",
    )
    response = sign_in(client, receptionist).post(
        CREATE,
        registration(first_name="Siobhan", last_name=last_name, date_of_birth="1979-02-14"),
    )
    assert WARNING in response.content.decode()
    assert siobhan.get_absolute_url() in response.content.decode()
    assert Patient.objects.count() == 1


def test_same_email_in_other_case_is_a_possible_duplicate(zoe: Patient, receptionist: User) -> None:
    with pytest.raises(PossibleDuplicateError) as refusal:
        patient_create(
            created_by=receptionist,
            first_name="Anna",
            last_name="Field",
            date_of_birth=date(1960, 1, 1),
            email="ZOE.Muller@EXAMPLE.org",
            reminder_channel="email",
        )
    assert refusal.value.duplicates == [zoe]
    assert refusal.value.code == "possible_duplicate"


@pytest.mark.parametrize(
    "changes",
    [{"date_of_birth": "1991-07-03"}, {"first_name": "Zara"}, {"last_name": "Miller"}],
)
def test_another_person_with_a_similar_name_registers_without_a_warning(
    zoe: Patient, receptionist: User, client: Client, changes: dict[str, str]
) -> None:
    response = sign_in(client, receptionist).post(CREATE, registration(**changes))
    assert response.status_code == 302
    assert Patient.objects.count() == 2


def test_confirming_a_different_person_registers_them(
    zoe: Patient, receptionist: User, client: Client
) -> None:
    sign_in(client, receptionist)
    warned = client.post(CREATE, registration(registration_token=token_of(_blank_form(client))))
    assert WARNING in warned.content.decode()
    # The warning page's form confirms, and keeps the one-time token.
    confirmed = client.post(
        CREATE,
        registration(
            confirm_not_duplicate="on", registration_token=token_of(warned.content.decode())
        ),
    )
    assert confirmed.status_code == 302
    second = Patient.objects.exclude(pk=zoe.pk).get()
    assert confirmed["Location"] == second.get_absolute_url()


# --- One form, one record ---------------------------------------------------------------


def _blank_form(client: Client) -> str:
    response = client.get(CREATE)
    assert response.status_code == 200
    return response.content.decode()


def test_each_registration_form_carries_its_own_token(receptionist: User, client: Client) -> None:
    sign_in(client, receptionist)
    assert token_of(_blank_form(client)) != token_of(_blank_form(client))


def test_the_same_form_sent_twice_leads_to_the_first_record(
    receptionist: User, client: Client
) -> None:
    sign_in(client, receptionist)
    data = registration(registration_token=token_of(_blank_form(client)))
    first = client.post(CREATE, data)
    patient = Patient.objects.get()
    again = client.post(CREATE, data, follow=True)
    assert first["Location"] == patient.get_absolute_url()
    assert again.redirect_chain == [(patient.get_absolute_url(), 302)]
    assert "Zoe Muller is already registered." in again.content.decode()
    assert Patient.objects.count() == 1


def test_a_confirmed_registration_sent_twice_registers_once(
    zoe: Patient, receptionist: User, client: Client
) -> None:
    data = registration(
        confirm_not_duplicate="on", registration_token="6f1c8a52-1d2e-4f7a-9b0c-3d4e5f6a7b8c"
    )
    sign_in(client, receptionist)
    first = client.post(CREATE, data)
    again = client.post(CREATE, data)
    second = Patient.objects.exclude(pk=zoe.pk).get()
    assert first["Location"] == again["Location"] == second.get_absolute_url()


def test_a_used_form_sent_again_for_someone_else_is_refused_then_registers_with_a_new_token(
    receptionist: User, client: Client
) -> None:
    sign_in(client, receptionist)
    token = token_of(_blank_form(client))
    client.post(CREATE, registration(registration_token=token))
    other = registration(
        first_name="Bob",
        last_name="Stone",
        date_of_birth="1970-01-01",
        email="bob@example.org",
        phone="07400 111222",
        registration_token=token,
    )
    refused = client.post(CREATE, other)
    body = refused.content.decode()
    assert refused.status_code == 409
    assert "This form has already registered Zoe Muller" in body
    assert Patient.objects.count() == 1
    fresh = token_of(body)
    assert fresh != token
    assert client.post(CREATE, {**other, "registration_token": fresh}).status_code == 302
    assert Patient.objects.filter(last_name="Stone").count() == 1


def test_the_service_says_which_record_a_token_registered(receptionist: User) -> None:
    token = uuid.UUID("0b0e3f57-5a39-4c8e-8c63-2f7f2f4b8a10")
    fields = {"date_of_birth": date(1991, 7, 2), "reminder_channel": "none"}
    first = patient_create(
        created_by=receptionist,
        registration_token=token,
        first_name="Zoë",
        last_name="Müller",
        **fields,
    )
    with pytest.raises(AlreadyRegisteredError) as again:
        patient_create(
            created_by=receptionist,
            registration_token=token,
            first_name="Zoe",
            last_name="Mueller",
            **fields,
        )
    assert again.value.patient == first
    with pytest.raises(RegistrationFormUsedError):
        patient_create(
            created_by=receptionist,
            registration_token=token,
            first_name="Bob",
            last_name="Stone",
            **fields,
        )
    assert Patient.objects.count() == 1


def test_a_mangled_token_still_registers_with_the_duplicate_check(
    zoe: Patient, receptionist: User, client: Client
) -> None:
    response = sign_in(client, receptionist).post(
        CREATE, registration(registration_token="not-a-token")
    )
    assert WARNING in response.content.decode()
    assert Patient.objects.count() == 1


def test_registration_with_its_duplicate_check_has_a_fixed_query_budget(
    receptionist: User, client: Client
) -> None:
    def posted_with(born_that_day: int) -> tuple[int, int]:
        # The contact details typed at registration are kept per patient.
        ContactChange.objects.all().delete()
        Patient.objects.all().delete()
        for index in range(born_that_day):
            patient_create(
                created_by=receptionist,
                first_name=f"Other{index}",
                last_name="Person",
                date_of_birth=date(1991, 7, 2),
                reminder_channel="none",
            )
        counts = []
        for expected in (302, 200):  # registered, then the same person warned about
            with CaptureQueriesContext(connection) as queries:
                response = client.post(CREATE, registration(registration_token=str(uuid.uuid4())))
            assert response.status_code == expected
            counts.append(len(queries))
        return counts[0], counts[1]

    sign_in(client, receptionist)
    client.get(CREATE)
    one, many = posted_with(1), posted_with(25)
    assert one == many  # the patients born that day are one query, however many
    # Session, user, device, roles; the form's and the model's constraint
    # checks; locks, token, two duplicate queries, insert, audit; the contact
    # details recorded as set by reception (the portal's 24-hour wait).
    assert max(one) <= 60, one

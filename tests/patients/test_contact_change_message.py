"""Whoever changes a patient's email or mobile number is told what that set
off (patients.contact_changes): the notice to the previous address and, for
an email set by someone who cannot open clinical documents, until when
nothing that opens them goes to the new one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from clinic.models import User
from patients.models import Patient
from tests.conftest import sign_in
from tests.factories import PatientFactory
from tests.pageforms import form_data

pytestmark = pytest.mark.django_db

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 5, 14, 10, 5, tzinfo=LONDON)


@pytest.fixture(autouse=True)
def clock() -> Iterator[time_machine.Coordinates]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def patient() -> Patient:
    return PatientFactory(
        first_name="Amelia",
        last_name="Hart",
        date_of_birth=date(1986, 4, 12),
        email="amelia.hart@example.org",
        phone="+447911123456",
        reminder_channel="sms",
    )


def saved_message(user: User, patient: Patient, **changes: str) -> str:
    client = sign_in(Client(), user)
    url = reverse("patients:edit", kwargs={"patient": patient.uuid})
    response = client.post(url, form_data(client.get(url).content.decode(), **changes), follow=True)
    assert response.redirect_chain[-1][1] == 302
    shown = [str(m) for m in response.context["messages"]]
    assert len(shown) == 1
    return shown[0]


def test_reception_changing_an_email_is_told_the_old_address_is_told_and_until_when_it_waits(
    patient: Patient, receptionist: User
) -> None:
    message = saved_message(receptionist, patient, email="amelia@newmail.example")

    assert message == (
        "Contact details saved. A notice of the change goes to the previous email address. "
        "Documents and portal invitations to the new address wait until 10:05 on Fri 15 May, so "
        "the patient can call if the change was not theirs."
    )


def test_a_practitioner_changing_an_email_sets_off_no_wait(
    patient: Patient, practitioner: User
) -> None:
    message = saved_message(practitioner, patient, email="amelia@newmail.example")

    assert message == (
        "Contact details saved. A notice of the change goes to the previous email address."
    )


def test_a_new_mobile_number_is_told_to_the_previous_one(
    patient: Patient, receptionist: User
) -> None:
    message = saved_message(receptionist, patient, phone="07912 345678")

    assert message == (
        "Contact details saved. A text message about the change goes to the previous mobile number."
    )


def test_a_change_of_other_details_says_only_that_it_was_saved(
    patient: Patient, receptionist: User
) -> None:
    assert saved_message(receptionist, patient, postcode="BA1 1AA") == "Contact details saved."

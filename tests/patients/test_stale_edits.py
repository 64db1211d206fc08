"""Two receptionists edit one patient's contact details: the second save, made
from a page opened before the first, is refused with what changed, and
nothing of it is applied over the first (clinic.concurrency)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from clinic.models import AuditAction, AuditEvent, User
from clinic.roles import Role
from patients.models import Patient
from tests.conftest import sign_in
from tests.factories import PatientFactory
from tests.races import hidden_value

pytestmark = pytest.mark.django_db

LONDON = ZoneInfo("Europe/London")
OPENED = datetime(2026, 5, 14, 10, 0, tzinfo=LONDON)
SAVED = datetime(2026, 5, 14, 10, 2, tzinfo=LONDON)


@pytest.fixture
def other_receptionist(make_staff: Callable[..., User]) -> User:
    return make_staff("reception-2", Role.RECEPTIONIST, first_name="Nadia", last_name="Osei")


@pytest.fixture
def patient(clock: time_machine.Coordinates) -> Patient:
    return PatientFactory(
        first_name="Amelia",
        last_name="Hart",
        date_of_birth=date(1986, 4, 12),
        email="amelia.hart@example.org",
        phone="+447911123456",
        reminder_channel="sms",
    )


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    with time_machine.travel(OPENED, tick=False) as traveller:
        yield traveller


def contact_post(patient: Patient, page: str, **changes: str) -> dict[str, Any]:
    """The contact-details form as the page was filled when opened, with
    `changes` typed over it and the version the page carried."""
    data: dict[str, Any] = {
        "first_name": patient.first_name,
        "last_name": patient.last_name,
        "date_of_birth": patient.date_of_birth.isoformat(),
        "email": patient.email,
        "phone": patient.phone.as_national if patient.phone else "",
        "address": patient.address,
        "postcode": patient.postcode,
        "emergency_contact_name": patient.emergency_contact_name,
        "emergency_contact_phone": "",
        "gp_details": patient.gp_details,
        "reminder_channel": patient.reminder_channel,
        "consents_to_messages": "on" if patient.consents_to_messages else "",
        "version": hidden_value(page, "version"),
    }
    data.update(changes)
    return data


def test_a_stale_contact_edit_is_refused_naming_the_other_desks_change(
    patient: Patient,
    receptionist: User,
    other_receptionist: User,
    clock: time_machine.Coordinates,
    django_assert_max_num_queries: Any,
) -> None:
    url = reverse("patients:edit", kwargs={"patient": patient.uuid})
    desk_a = sign_in(Client(), receptionist)
    desk_b = sign_in(Client(), other_receptionist)
    page_a = desk_a.get(url).content.decode()
    page_b = desk_b.get(url).content.decode()

    clock.move_to(SAVED)
    saved = desk_a.post(url, contact_post(patient, page_a, phone="07912 345678"))
    assert saved.status_code == 302
    with django_assert_max_num_queries(25):
        refused = desk_b.post(url, contact_post(patient, page_b, email="amelia@newmail.example"))

    assert refused.status_code == 409
    body = refused.content.decode()
    assert 'data-testid="stale-edit"' in body
    assert "Rosa" in body
    assert "10:02" in body
    assert "Mobile phone" in body
    assert "07912 345678" in body
    assert 'value="amelia@newmail.example"' in body  # what B typed is kept
    assert 'data-testid="use-their-version"' in body
    patient.refresh_from_db()
    assert patient.phone.as_e164 == "+447912345678"  # A's change stands
    assert patient.email == "amelia.hart@example.org"  # nothing of B's was saved
    assert patient.version == 2
    updates = AuditEvent.objects.filter(action=AuditAction.UPDATE, patient_ref=patient.uuid)
    assert [e.changed_fields for e in updates] == [["phone", "version=2"]]


def test_using_their_version_then_saving_keeps_both_changes(
    patient: Patient, receptionist: User, other_receptionist: User, clock: Any
) -> None:
    url = reverse("patients:edit", kwargs={"patient": patient.uuid})
    desk_a = sign_in(Client(), receptionist)
    desk_b = sign_in(Client(), other_receptionist)
    page_a = desk_a.get(url).content.decode()
    page_b = desk_b.get(url).content.decode()
    desk_a.post(url, contact_post(patient, page_a, phone="07912 345678"))
    assert desk_b.post(url, contact_post(patient, page_b, email="a@new.example")).status_code == 409

    patient.refresh_from_db()
    reloaded = desk_b.get(url).content.decode()  # "Use their version"
    assert "07912 345678" in reloaded
    again = desk_b.post(url, contact_post(patient, reloaded, email="a@new.example"))
    assert again.status_code == 302
    patient.refresh_from_db()
    assert (patient.phone.as_e164, patient.email) == ("+447912345678", "a@new.example")
    assert patient.version == 3


@pytest.mark.parametrize(
    ("version", "sentence"),
    [
        (None, "This form has lost track of which version"),
        ("", "This form has lost track of which version"),
        ("two", "This form has lost track of which version"),
        ("-1", "This form has lost track of which version"),
        ("0", "This form does not match the record"),
        ("99", "This form does not match the record"),
    ],
    ids=["missing", "empty", "not-a-number", "negative", "zero", "from-the-future"],
)
def test_a_missing_or_forged_version_is_a_400_with_a_sentence(
    clock: time_machine.Coordinates,
    patient: Patient,
    receptionist: User,
    version: str | None,
    sentence: str,
) -> None:
    url = reverse("patients:edit", kwargs={"patient": patient.uuid})
    client = sign_in(Client(), receptionist)
    data = contact_post(patient, client.get(url).content.decode(), email="x@new.example")
    if version is None:
        del data["version"]
    else:
        data["version"] = version
    response = client.post(url, data)
    assert response.status_code == 400
    assert sentence in response.content.decode()
    assert 'value="x@new.example"' in response.content.decode()
    patient.refresh_from_db()
    assert (patient.email, patient.version) == ("amelia.hart@example.org", 1)

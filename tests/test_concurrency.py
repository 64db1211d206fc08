"""The stale-edit refusal itself (clinic.concurrency), through a real service:
it names only the saves made after the form was opened, with their values now,
who and when, and ignores what the audit trail holds besides (reads, events
of other records, changes that carry no version)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from clinic.audit import audit_log
from clinic.concurrency import StaleEditError, field_text
from clinic.models import AuditAction, User
from patients.models import Patient
from patients.services import patient_update
from tests.factories import PatientFactory, UserFactory

pytestmark = pytest.mark.django_db

OPENED = datetime(2026, 5, 14, 10, 0, tzinfo=ZoneInfo("Europe/London"))


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    with time_machine.travel(OPENED, tick=False) as traveller:
        yield traveller


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


def test_the_refusal_names_only_what_changed_after_the_form_was_opened(
    clock: time_machine.Coordinates, patient: Patient, receptionist: User
) -> None:
    rosa = receptionist
    nadia = UserFactory(first_name="Nadia", last_name="Osei")
    # Before the form was opened (it shows version 2): Rosa's postcode.
    patient_update(patient=patient, updated_by=rosa, expected_version=1, postcode="BS1 4DJ")
    # Since: a read, an event without a version, another patient's change, and
    # then the two saves the refusal is about.
    audit_log(actor=rosa, action=AuditAction.VIEW, obj=patient, patient_ref=patient.uuid)
    audit_log(actor=rosa, action=AuditAction.UPDATE, obj=patient, changed_fields=["merged_from=x"])
    other = PatientFactory()
    patient_update(patient=other, updated_by=rosa, expected_version=1, email="b@example.org")
    clock.move_to(OPENED + timedelta(minutes=2))
    patient_update(patient=patient, updated_by=rosa, expected_version=2, phone="07912 345678")
    clock.move_to(OPENED + timedelta(minutes=5))
    patient_update(patient=patient, updated_by=nadia, expected_version=3, email="a@new.example")

    with pytest.raises(StaleEditError) as refused:
        patient_update(patient=patient, updated_by=rosa, expected_version=2, gp_details="Dr Lee")

    error = refused.value
    assert error.code == "stale_edit"
    assert [(c.label, c.value, c.by) for c in error.changes] == [
        ("Email", "a@new.example", "Nadia Osei"),
        ("Mobile phone", "07912 345678", rosa.get_full_name()),
    ]
    assert [(e.by, e.at) for e in error.edits] == [
        ("Nadia Osei", OPENED + timedelta(minutes=5)),
        (rosa.get_full_name(), OPENED + timedelta(minutes=2)),
    ]
    assert error.message.startswith("Nadia Osei saved this patient at 10:05 on Thu 14 May")
    patient.refresh_from_db()
    assert (patient.gp_details, patient.version) == ("", 4)


def test_a_change_that_comes_from_no_form_is_not_checked(
    patient: Patient, receptionist: User
) -> None:
    patient_update(patient=patient, updated_by=receptionist, expected_version=1, postcode="X1")
    patient_update(patient=patient, updated_by=receptionist, expected_version=None, postcode="X2")
    patient.refresh_from_db()
    assert (patient.postcode, patient.version) == ("X2", 3)


def test_values_read_as_the_form_shows_them(patient: Patient) -> None:
    assert field_text(patient, "phone") == ("Mobile phone", "07911 123456")
    assert field_text(patient, "reminder_channel") == ("Reminders by", "Text message (SMS)")
    assert field_text(patient, "date_of_birth") == ("Date of birth", "12/04/1986")
    assert field_text(patient, "consents_to_messages")[1] == "Yes"
    assert field_text(patient, "postcode") == ("Postcode", "")

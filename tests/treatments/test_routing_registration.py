"""An address reception typed at registration, or that a merge brings to a
record, is held like one reception changed: nothing that opens clinical
documents goes to it for 24 hours, and an address the merged record no
longer uses is told (docs/architecture.md, "Who can route clinical
documents")."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.urls import reverse

from clinic.models import User
from patients.contact_changes import email_hold
from patients.models import ContactChange, ContactNoticeStatus, Patient
from patients.services import patient_create
from tests.conftest import sign_in
from tests.factories import PatientFactory
from tests.patients.test_register import form_data
from treatments.models import PortalAccount, PortalLoginToken
from treatments.services.merge import patient_merge
from treatments.services.portal import portal_invite, portal_login_request

pytestmark = pytest.mark.django_db

# Tuesday 3 March 2026, 11:00 in London (GMT).
NOW = datetime(2026, 3, 3, 11, 0, tzinfo=UTC)
OWN_ADDRESS = "front-desk-owned2@example.net"
OLIVER = "oliver.bennett@example.org"


@pytest.fixture(autouse=True)
def frozen() -> Any:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def _register(user: User, email: str, **fields: Any) -> Patient:
    values: dict[str, Any] = {
        "first_name": "Oliver",
        "last_name": "Bennett",
        "date_of_birth": date(1984, 6, 2),
        "email": email,
        "phone": "07911 123111",
    }
    values.update(fields)
    return patient_create(created_by=user, confirmed_different_person=True, **values)


def _oliver_with_portal(practitioner: User) -> Patient:
    oliver = PatientFactory(
        first_name="Oliver", last_name="Bennett", email=OLIVER, phone="+447911123222"
    )
    portal_invite(patient=oliver, invited_by=practitioner)
    mail.outbox.clear()
    return Patient.objects.get(pk=oliver.pk)


# --- Registration ----------------------------------------------------------------------------


def test_an_invitation_to_an_email_reception_typed_at_registration_waits_24_hours(
    receptionist: User, practitioner: User, frozen: Any
) -> None:
    data = form_data(first_name="Nadia", last_name="Quill", email=OWN_ADDRESS)
    response = sign_in(Client(), receptionist).post(reverse("patients:create"), data)
    assert response.status_code == 302
    patient = Patient.objects.get(email=OWN_ADDRESS)
    invite = reverse("treatments:portal_invite", kwargs={"patient": patient.uuid})
    response = sign_in(Client(), practitioner).post(invite)
    assert response.status_code == 409
    body = response.content.decode()
    assert "until 11:00 on Wed 4 Mar" in body
    assert "previous address" not in body  # a new record: nobody to tell
    assert not PortalAccount.objects.exists()
    assert mail.outbox == []
    changes = ContactChange.objects.filter(patient=patient)
    assert {(c.field, c.previous, c.notice_status) for c in changes} == {
        ("email", "", ContactNoticeStatus.NONE),
        ("phone", "", ContactNoticeStatus.NONE),
    }
    frozen.move_to(NOW + timedelta(hours=24, seconds=1))
    assert sign_in(Client(), practitioner).post(invite).status_code == 302
    assert [message.to for message in mail.outbox] == [[OWN_ADDRESS]]


def test_an_email_a_practitioner_typed_at_registration_is_not_held(practitioner: User) -> None:
    patient = _register(practitioner, "oliver.checked@example.org")
    assert email_hold(patient=patient) is None
    portal_invite(patient=patient, invited_by=practitioner)
    assert [message.to for message in mail.outbox] == [["oliver.checked@example.org"]]


# --- Merges ----------------------------------------------------------------------------------


def test_a_merge_taking_an_email_reception_typed_keeps_the_wait_and_tells_the_old_one(
    receptionist: User, practitioner: User, frozen: Any
) -> None:
    oliver = _oliver_with_portal(practitioner)
    # Registered two days ago: the registration's own wait is over.
    frozen.move_to(NOW - timedelta(days=2))
    duplicate = _register(receptionist, OWN_ADDRESS)
    frozen.move_to(NOW)
    patient_merge(duplicate=duplicate, survivor=oliver, merged_by=practitioner, take_email=True)
    oliver = Patient.objects.get(pk=oliver.pk)
    assert oliver.email == OWN_ADDRESS
    assert email_hold(patient=oliver) is not None
    portal_login_request(email=OWN_ADDRESS)
    assert mail.outbox == []
    told = ContactChange.objects.get(patient=oliver, previous=OLIVER)
    assert told.changed_by == practitioner
    assert told.notice_status == ContactNoticeStatus.PENDING


def test_merging_into_a_record_reception_registered_tells_the_merged_email_and_closes_the_portal(
    receptionist: User, practitioner: User, frozen: Any
) -> None:
    oliver = _oliver_with_portal(practitioner)
    frozen.move_to(NOW - timedelta(days=2))
    survivor = _register(receptionist, OWN_ADDRESS)
    frozen.move_to(NOW)
    patient_merge(duplicate=oliver, survivor=survivor, merged_by=practitioner)
    assert PortalAccount.objects.get().patient_id == survivor.pk
    tokens = PortalLoginToken.objects.count()
    portal_login_request(email=OWN_ADDRESS)
    assert mail.outbox == []
    assert PortalLoginToken.objects.count() == tokens
    told = ContactChange.objects.filter(patient=survivor, changed_at=NOW)
    assert {(c.field, c.previous, c.notice_status, c.changed_by) for c in told} == {
        ("email", OLIVER, ContactNoticeStatus.PENDING, practitioner),
        ("phone", "+447911123222", ContactNoticeStatus.PENDING, practitioner),
    }
    # The account came with the merged record to a record with another email:
    # it was closed, and the wait's end does not open it again by itself.
    assert not PortalAccount.objects.get().user.is_active
    frozen.move_to(NOW + timedelta(hours=24, seconds=1))
    portal_login_request(email=OWN_ADDRESS)
    assert mail.outbox == []
    # A practitioner's invitation, once the wait is over, goes to the record's email.
    portal_invite(patient=Patient.objects.get(pk=survivor.pk), invited_by=practitioner)
    assert [message.to for message in mail.outbox] == [[OWN_ADDRESS]]


def test_merging_records_with_the_same_email_tells_nobody(
    receptionist: User, practitioner: User
) -> None:
    oliver = _oliver_with_portal(practitioner)
    duplicate = _register(practitioner, OLIVER.upper(), phone="07911 123222")
    patient_merge(duplicate=duplicate, survivor=oliver, merged_by=practitioner)
    assert not ContactChange.objects.filter(patient=oliver).exists()

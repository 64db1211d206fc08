"""A portal account a merge brings to the record that stays is closed: whoever
was signed in to the duplicate's account never sees the survivor's documents,
and only a practitioner's invitation, to the survivor's own email, opens it
again."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.sessions.models import Session
from django.core import mail
from django.test import Client
from django.urls import reverse

from clinic.models import AuditAction, AuditEvent, User
from patients.models import Patient
from patients.services import patient_create
from tests.factories import PatientFactory
from tests.treatments.test_portal import _fill
from treatments.models import PortalAccount
from treatments.services.merge import patient_merge
from treatments.services.portal import portal_invite

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 3, 11, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _patients_have_no_authenticator(settings: Any) -> None:
    settings.REQUIRE_STAFF_2FA = False


def _token(message: Any) -> str:
    match = re.search(r"/portal/sign-in/([\w-]+)/", message.body)
    assert match, message.body
    return match.group(1)


def _signed_in(token: str) -> Client:
    client = Client()
    response = client.post(reverse("treatments:portal_login", kwargs={"token": token}))
    assert response.status_code == 302
    return client


def _duplicate_at_reception(
    receptionist: User, practitioner: User
) -> tuple[Patient, Patient, Client, str]:
    """The survivor with her own documents; a duplicate registered by
    reception with reception's email, invited after the wait; reception signed
    in to its portal, holding one more unused sign-in link."""
    with time_machine.travel(NOW - timedelta(days=2), tick=False):
        survivor = PatientFactory(
            first_name="Oliver", last_name="Bennett", email="oliver@example.org"
        )
        _fill(survivor, 1)
        duplicate = patient_create(
            created_by=receptionist,
            confirmed_different_person=True,
            first_name="Oliver",
            last_name="Bennet",
            date_of_birth=survivor.date_of_birth,
            email="front-desk@example.net",
            phone="07911 123111",
        )
    portal_invite(patient=duplicate, invited_by=practitioner)
    session = _signed_in(_token(mail.outbox[-1]))
    portal_invite(patient=duplicate, invited_by=practitioner)
    spare = _token(mail.outbox[-1])
    return duplicate, survivor, session, spare


def test_a_portal_session_on_a_merged_duplicate_never_reaches_the_survivors_documents(
    receptionist: User, practitioner: User
) -> None:
    with time_machine.travel(NOW, tick=False):
        duplicate, survivor, session, spare = _duplicate_at_reception(receptionist, practitioner)
        account = PortalAccount.objects.get(patient=duplicate)
        assert session.get(reverse("treatments:portal_home")).status_code == 200

        patient_merge(duplicate=duplicate, survivor=survivor, merged_by=practitioner)

        # The session is gone from the database, not merely refused.
        assert not [
            s
            for s in Session.objects.all()
            if s.get_decoded().get("_auth_user_id") == str(account.user_id)
        ]
        signed = survivor.signed_consents.get()
        document = survivor.documents.get()
        for url in (
            reverse("treatments:portal_home"),
            reverse("treatments:portal_consent", kwargs={"signed": signed.uuid}),
            reverse("treatments:portal_document", kwargs={"document": document.uuid}),
        ):
            response = session.get(url)
            assert response.status_code == 302, url
            assert response["Location"].startswith(reverse("login"))
        # The spare sign-in link no longer signs in.
        refused = Client().post(reverse("treatments:portal_login", kwargs={"token": spare}))
        assert refused.status_code in (404, 410)
        # The account came to the survivor, closed, and the closing is audited.
        account.refresh_from_db()
        assert account.patient_id == survivor.pk
        assert not account.user.is_active
        closed = AuditEvent.objects.get(
            action=AuditAction.UPDATE,
            object_id=str(account.pk),
            changed_fields__contains=["closed"],
        )
        assert closed.actor == practitioner
        assert "sessions_ended=1" in closed.changed_fields
        assert "sign_in_links_revoked=1" in closed.changed_fields


def test_the_survivor_is_invited_again_at_its_own_email_and_signs_in_to_its_documents(
    receptionist: User, practitioner: User
) -> None:
    with time_machine.travel(NOW, tick=False):
        duplicate, survivor, session, _spare = _duplicate_at_reception(receptionist, practitioner)
        patient_merge(duplicate=duplicate, survivor=survivor, merged_by=practitioner)
        mail.outbox.clear()

        portal_invite(patient=Patient.objects.get(pk=survivor.pk), invited_by=practitioner)

        [invitation] = mail.outbox
        assert invitation.to == ["oliver@example.org"]
        [account] = PortalAccount.objects.filter(patient=survivor)
        assert account.user.is_active
        assert account.user.email == "oliver@example.org"
        # The old session stays ended; the new link signs the patient in.
        assert session.get(reverse("treatments:portal_home")).status_code == 302
        patient = _signed_in(_token(invitation))
        assert patient.get(reverse("treatments:portal_home")).status_code == 200

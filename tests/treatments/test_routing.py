"""Who can route a patient's clinical documents to an address.

Reception cannot open a patient's signed consents or aftercare sheets on
staff pages; it must not reach them through the portal either, by setting the
patient's email to its own and sending an invitation. So: only roles that
open clinical documents invite to the portal; any change of the email or
mobile number is told to the previous address; and nothing that opens
documents goes to an email changed within 24 hours by another role."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from clinic.models import User
from clinic.roles import CLINICAL_DOCUMENT_ROLES, Role
from patients.contact_changes import email_hold
from patients.models import ContactChange, ContactNoticeStatus, Patient
from patients.services import patient_update
from tests.conftest import sign_in
from tests.factories import PatientFactory
from tests.test_urlwalk import ROUTES
from treatments.models import DownloadLink, PortalAccount, PortalLoginToken
from treatments.services.aftercare import aftercare_send
from treatments.services.contact_notices import contact_notices_dispatch
from treatments.services.portal import (
    PortalInviteRefusedError,
    portal_invite,
    portal_login_request,
)
from treatments.sms import FileBackend

pytestmark = pytest.mark.django_db

# Tuesday 3 March 2026, 11:00 in London (GMT): outside quiet hours.
NOW = datetime(2026, 3, 3, 11, 0, tzinfo=UTC)
OWN_ADDRESS = "front-desk-private@example.net"


@pytest.fixture(autouse=True)
def frozen() -> Any:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def patient() -> Patient:
    return PatientFactory(first_name="Amelia", email="amelia@example.org", phone="+447911123456")


def _invite_url(patient: Patient) -> str:
    return reverse("treatments:portal_invite", kwargs={"patient": patient.uuid})


def _change_email(patient: Patient, user: User, email: str) -> Patient:
    return patient_update(
        patient=patient, updated_by=user, expected_version=patient.version, email=email
    )


# --- Only a role that opens clinical documents invites ---------------------------------------


def test_the_inviting_roles_are_those_that_open_clinical_documents_on_staff_pages() -> None:
    routes = {route.name: route.access for route in ROUTES}
    documents = ("treatments:document_download", "consent:signed_pdf", "consent:signature_image")
    for name in documents:
        assert routes[name].roles == CLINICAL_DOCUMENT_ROLES, name
    assert Role.RECEPTIONIST not in CLINICAL_DOCUMENT_ROLES
    assert routes["treatments:portal_invite"].roles <= CLINICAL_DOCUMENT_ROLES


def test_reception_gets_403_on_sending_an_invitation_and_nothing_is_created(
    receptionist: User, patient: Patient
) -> None:
    response = sign_in(Client(), receptionist).post(_invite_url(patient))
    assert response.status_code == 403
    assert not PortalAccount.objects.exists()
    assert not PortalLoginToken.objects.exists()
    assert mail.outbox == []


def test_the_invitation_service_refuses_reception_too(receptionist: User, patient: Patient) -> None:
    with pytest.raises(PortalInviteRefusedError) as refused:
        portal_invite(patient=patient, invited_by=receptionist)
    assert refused.value.code == "not_allowed"
    assert "Ask a practitioner" in refused.value.message
    assert not PortalAccount.objects.exists()
    assert mail.outbox == []


def test_a_practitioner_invites_and_the_link_goes_to_the_patients_email(
    practitioner: User, patient: Patient
) -> None:
    response = sign_in(Client(), practitioner).post(_invite_url(patient))
    assert response.status_code == 302
    assert PortalAccount.objects.filter(patient=patient).exists()
    assert [message.to for message in mail.outbox] == [["amelia@example.org"]]


def test_the_patient_page_offers_the_invitation_to_practitioners_only(
    receptionist: User, practitioner: User, patient: Patient
) -> None:
    url = reverse("treatments:patient_treatment_panel", kwargs={"patient": patient.uuid})
    reception_panel = sign_in(Client(), receptionist).get(url).content.decode()
    assert 'data-testid="portal-invite"' not in reception_panel
    practitioner_panel = sign_in(Client(), practitioner).get(url).content.decode()
    assert 'data-testid="portal-invite"' in practitioner_panel


# --- The previous address is told ---------------------------------------------------------


def test_reception_changing_the_email_tells_the_previous_address(
    receptionist: User, patient: Patient
) -> None:
    _change_email(patient, receptionist, OWN_ADDRESS)
    change = ContactChange.objects.get(patient=patient)
    assert (change.field, change.previous, change.changed_by) == (
        "email",
        "amelia@example.org",
        receptionist,
    )
    assert change.by_clinical_role is False
    assert change.notice_status == ContactNoticeStatus.PENDING
    assert mail.outbox == []  # sent in the background, not by the request
    result = contact_notices_dispatch()
    assert result.sent == 1
    assert len(mail.outbox) == 1
    notice = mail.outbox[0]
    assert notice.to == ["amelia@example.org"]
    assert "Your email address at Meso Clinic was changed on Tue 3 Mar at 11:00." in (notice.body)
    assert "If this was not you, please call us" in notice.body
    assert OWN_ADDRESS not in notice.body  # the new address is never told to the old one
    change.refresh_from_db()
    assert change.notice_status == ContactNoticeStatus.SENT
    assert contact_notices_dispatch().claimed == 0  # sent once


def test_the_contact_details_page_records_the_change_for_the_notice(
    receptionist: User, patient: Patient
) -> None:
    data = {
        "first_name": patient.first_name,
        "last_name": patient.last_name,
        "date_of_birth": patient.date_of_birth.isoformat(),
        "email": OWN_ADDRESS,
        "phone": patient.phone.as_national,
        "address": patient.address,
        "postcode": patient.postcode,
        "emergency_contact_name": patient.emergency_contact_name,
        "emergency_contact_phone": "",
        "gp_details": patient.gp_details,
        "reminder_channel": patient.reminder_channel,
        "consents_to_messages": "on" if patient.consents_to_messages else "",
        "version": str(patient.version),
    }
    url = reverse("patients:edit", kwargs={"patient": patient.uuid})
    response = sign_in(Client(), receptionist).post(url, data)
    assert response.status_code == 302
    change = ContactChange.objects.get(patient=patient, field="email")
    assert change.previous == "amelia@example.org"


def test_a_changed_mobile_number_is_told_by_text_message_to_the_previous_number(
    practitioner: User, patient: Patient, tmp_path: Path
) -> None:
    patient_update(
        patient=patient,
        updated_by=practitioner,
        expected_version=patient.version,
        phone="+447912345678",
    )
    result = contact_notices_dispatch(backend=FileBackend(tmp_path))
    assert result.sent == 1
    (sent,) = [json.loads(path.read_text()) for path in tmp_path.iterdir()]
    assert sent["to"] == "+447911123456"
    assert "your mobile number was changed on Tue 3 Mar at 11:00" in sent["body"]
    assert mail.outbox == []


def test_a_text_notice_waits_for_the_end_of_quiet_hours(
    practitioner: User, patient: Patient, tmp_path: Path, frozen: Any
) -> None:
    frozen.move_to(datetime(2026, 3, 3, 22, 30, tzinfo=UTC))
    patient_update(
        patient=patient, updated_by=practitioner, expected_version=patient.version, phone=""
    )
    backend = FileBackend(tmp_path)
    assert contact_notices_dispatch(backend=backend).held == 1
    assert list(tmp_path.iterdir()) == []
    frozen.move_to(datetime(2026, 3, 4, 8, 1, tzinfo=UTC))
    assert contact_notices_dispatch(backend=backend).sent == 1


def test_a_first_email_added_has_nobody_to_tell_but_still_counts_as_a_change(
    receptionist: User,
) -> None:
    patient = PatientFactory(email="", reminder_channel="none")
    _change_email(patient, receptionist, OWN_ADDRESS)
    change = ContactChange.objects.get(patient=patient)
    assert (change.previous, change.notice_status) == ("", ContactNoticeStatus.NONE)
    hold = email_hold(patient=patient)
    assert hold is not None
    assert "previous address" not in hold.sentence


# --- Nothing that opens documents goes to a recently changed email --------------------------


def test_an_invitation_to_an_email_reception_changed_within_24_hours_waits(
    receptionist: User, practitioner: User, patient: Patient, frozen: Any
) -> None:
    patient = _change_email(patient, receptionist, OWN_ADDRESS)
    mail.outbox.clear()
    client = sign_in(Client(), practitioner)
    response = client.post(_invite_url(patient))
    assert response.status_code == 409
    body = response.content.decode()
    assert "changed less than 24 hours ago by a member of staff who cannot see clinical" in body
    assert "until 11:00 on Wed 4 Mar" in body
    assert "The previous address has been told of the change." in body
    assert not PortalAccount.objects.exists()
    assert mail.outbox == []
    panel = client.get(
        reverse("treatments:patient_treatment_panel", kwargs={"patient": patient.uuid})
    ).content.decode()
    assert 'data-testid="portal-email-hold"' in panel
    assert 'data-testid="portal-invite"' not in panel
    frozen.move_to(NOW + timedelta(hours=24, seconds=1))
    client = sign_in(Client(), practitioner)  # a day later: a new session
    assert client.post(_invite_url(patient)).status_code == 302
    assert [message.to for message in mail.outbox] == [[OWN_ADDRESS]]


def test_an_email_a_practitioner_changed_is_not_held(practitioner: User, patient: Patient) -> None:
    patient = _change_email(patient, practitioner, "amelia.new@example.org")
    assert email_hold(patient=patient) is None
    portal_invite(patient=patient, invited_by=practitioner)
    assert mail.outbox[-1].to == ["amelia.new@example.org"]


def test_a_practitioner_setting_the_email_after_reception_lifts_the_wait(
    receptionist: User, practitioner: User, patient: Patient
) -> None:
    patient = _change_email(patient, receptionist, OWN_ADDRESS)
    assert email_hold(patient=patient) is not None
    patient = _change_email(patient, practitioner, "amelia.checked@example.org")
    assert email_hold(patient=patient) is None


def test_no_sign_in_link_goes_to_an_email_reception_changed_within_24_hours(
    receptionist: User, practitioner: User, patient: Patient, frozen: Any
) -> None:
    portal_invite(patient=patient, invited_by=practitioner)
    _change_email(Patient.objects.get(pk=patient.pk), receptionist, OWN_ADDRESS)
    mail.outbox.clear()
    portal_login_request(email=OWN_ADDRESS)
    assert mail.outbox == []
    assert PortalLoginToken.objects.count() == 1  # the invitation's only
    frozen.move_to(NOW + timedelta(hours=24, seconds=1))
    portal_login_request(email=OWN_ADDRESS)
    assert [message.to for message in mail.outbox] == [[OWN_ADDRESS]]


def test_no_aftercare_link_goes_to_an_email_reception_changed_within_24_hours(
    receptionist: User, patient: Patient
) -> None:
    from tests.treatments.test_aftercare import completed_session, ready_document

    document = ready_document(completed_session(patient=patient))
    links = DownloadLink.objects.filter(document=document).count()  # the first, automatic one
    _change_email(Patient.objects.get(pk=patient.pk), receptionist, OWN_ADDRESS)
    document.refresh_from_db()
    mail.outbox.clear()
    with pytest.raises(ValidationError) as refused:
        aftercare_send(document=document, sent_by=receptionist)
    assert refused.value.code == "email_hold"
    assert DownloadLink.objects.filter(document=document).count() == links
    assert mail.outbox == []

"""The patient portal: invitation, one-time sign-in links, the portal home and
its downloads, and what a portal user may reach (portal pages only)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clinic import dates
from clinic.models import AuditAction, AuditEvent, User
from consent.models import DocumentStatus, SignedConsentPDF
from patients.models import Patient
from tests.conftest import deliver_sign_in_mail, sign_in
from tests.consent.helpers import signed_consent_for
from tests.factories import ConsentFormVersionFactory, PatientFactory
from tests.treatments.test_aftercare import book_next, completed_session, ready_document
from treatments.models import BookingStatus, PortalAccount, PortalLoginToken
from treatments.services import portal as service
from treatments.services.aftercare import sha256_hex

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _patients_have_no_authenticator(settings: Any) -> None:
    """Staff two-factor applies to staff: portal pages are tested without it
    (the interplay has its own test below)."""
    settings.REQUIRE_STAFF_2FA = False


def _invite(patient: Patient, practitioner: User) -> PortalAccount:
    return service.portal_invite(patient=patient, invited_by=practitioner)


def _login_token(message: Any) -> str:
    match = re.search(r"/treatments/portal/sign-in/([A-Za-z0-9_-]+)/", message.body)
    assert match, message.body
    return match.group(1)


def _portal_client(account: PortalAccount) -> Client:
    client = Client()
    client.force_login(account.user)
    return client


# --- Invitation and sign-in ---------------------------------------------------------------


def test_a_practitioner_invites_a_patient_who_gets_an_account_without_password_or_role(
    practitioner: User,
) -> None:
    patient = PatientFactory()
    client = sign_in(Client(), practitioner)
    response = client.post(reverse("treatments:portal_invite", kwargs={"patient": patient.uuid}))
    assert response.status_code == 302
    account = PortalAccount.objects.get(patient=patient)
    assert not account.user.has_usable_password()
    assert not account.user.is_clinic_staff
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [patient.email]
    token = _login_token(mail.outbox[0])
    stored = PortalLoginToken.objects.get(account=account)
    assert stored.token_hash == sha256_hex(token)
    assert stored.expires_at - stored.created_at <= timedelta(minutes=30, seconds=1)


def test_inviting_a_patient_without_email_is_refused_and_creates_nothing(
    practitioner: User,
) -> None:
    patient = PatientFactory(email="", reminder_channel="none")
    client = sign_in(Client(), practitioner)
    response = client.post(
        reverse("treatments:portal_invite", kwargs={"patient": patient.uuid}), follow=True
    )
    assert "no email address" in response.content.decode()
    assert not PortalAccount.objects.exists()
    assert mail.outbox == []


def test_inviting_twice_keeps_one_account_and_sends_a_new_link(practitioner: User) -> None:
    patient = PatientFactory()
    first = _invite(patient, practitioner)
    second = _invite(patient, practitioner)
    assert first.pk == second.pk
    assert len(mail.outbox) == 2


def test_the_sign_in_link_shows_a_button_then_signs_in_once(practitioner: User) -> None:
    account = _invite(PatientFactory(), practitioner)
    token = _login_token(mail.outbox[0])
    url = reverse("treatments:portal_login", kwargs={"token": token})
    client = Client()
    page = client.get(url)
    assert page.status_code == 200
    assert PortalLoginToken.objects.get(account=account).used_at is None
    response = client.post(url)
    assert response.status_code == 302
    assert response["Location"] == reverse("treatments:portal_home")
    assert client.get(reverse("treatments:portal_home")).status_code == 200
    assert AuditEvent.objects.filter(action=AuditAction.LOGIN, actor=account.user).exists()
    again = Client().post(url)
    assert again.status_code == 404


def test_an_expired_sign_in_link_is_410(practitioner: User) -> None:
    account = _invite(PatientFactory(), practitioner)
    token = _login_token(mail.outbox[0])
    stored = PortalLoginToken.objects.get(account=account)
    with time_machine.travel(stored.expires_at + timedelta(seconds=1), tick=False):
        response = Client().post(reverse("treatments:portal_login", kwargs={"token": token}))
    assert response.status_code == 410
    assert "Ask for a new one" in response.content.decode()


def test_asking_for_a_link_answers_alike_for_known_and_unknown_addresses(
    practitioner: User,
) -> None:
    patient = PatientFactory(email="known@example.org")
    _invite(patient, practitioner)
    mail.outbox.clear()
    url = reverse("treatments:portal_request")
    known = Client().post(url, {"email": "Known@example.org"})
    unknown = Client().post(url, {"email": "nobody@example.org"})
    assert known.status_code == unknown.status_code == 200
    strip = re.compile(r'value="[^"]+"|"X-CSRFToken": "[^"]+"')
    assert strip.sub("", known.content.decode()) == strip.sub("", unknown.content.decode())
    assert mail.outbox == []  # sent by a worker, for both alike
    assert deliver_sign_in_mail() == 2
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["known@example.org"]


def test_a_guessed_sign_in_link_is_404_and_counted_as_a_failure() -> None:
    assert not service.LinkAttempt.objects.exists()
    response = Client().post(reverse("treatments:portal_login", kwargs={"token": "x" * 43}))
    assert response.status_code == 404
    assert service.LinkAttempt.objects.count() == 1


# --- The portal home and downloads ----------------------------------------------------


def _portal_patient(practitioner: User) -> PortalAccount:
    return _invite(PatientFactory(), practitioner)


def _fill(patient: Patient, sessions: int) -> None:
    version = ConsentFormVersionFactory()
    for index in range(sessions):
        starts = timezone.now().replace(microsecond=0) - timedelta(days=30 * (index + 1))
        record = completed_session(patient=patient, starts_at=starts)
        ready_document(record)
        if index == 0:
            book_next(record, days=60)
        signed = signed_consent_for(patient=patient, version=version)
        pdf = SignedConsentPDF.objects.get(signed_consent=signed)
        pdf.file.save(f"{signed.uuid}.pdf", _pdf_content(), save=False)
        SignedConsentPDF.objects.filter(pk=pdf.pk).update(
            status=DocumentStatus.READY, file=pdf.file.name, sha256="0" * 64
        )


def _pdf_content() -> Any:
    from django.core.files.base import ContentFile

    return ContentFile(b"%PDF-1.7\n")


@pytest.mark.parametrize("sessions", [1, 6])
def test_the_portal_home_lists_own_upcoming_sessions_sheets_and_consents_in_few_queries(
    practitioner: User, sessions: int, django_assert_max_num_queries: Any
) -> None:
    account = _portal_patient(practitioner)
    _fill(account.patient, sessions)
    other = PatientFactory(first_name="Otherpatient")
    ready_document(completed_session(patient=other))
    client = _portal_client(account)
    # 13: the clinic's settings (its name in the header) are read once a page.
    with django_assert_max_num_queries(13):
        response = client.get(reverse("treatments:portal_home"))
    assert response.status_code == 200
    body = response.content.decode()
    assert body.count('data-testid="portal-document"') == sessions
    assert body.count('data-testid="portal-consent"') == sessions
    assert "Otherpatient" not in body
    upcoming = account.patient.bookings.filter(status=BookingStatus.BOOKED).first()
    assert upcoming is not None
    assert dates.day(upcoming.starts_at) in body


def test_a_patient_downloads_their_own_sheet_and_consent(practitioner: User) -> None:
    account = _portal_patient(practitioner)
    _fill(account.patient, 1)
    document = account.patient.documents.get()
    signed = account.patient.signed_consents.get()
    client = _portal_client(account)
    sheet = client.get(reverse("treatments:portal_document", kwargs={"document": document.uuid}))
    assert sheet.status_code == 200
    assert b"".join(sheet.streaming_content).startswith(b"%PDF")
    assert "no-store" in sheet["Cache-Control"]
    consent = client.get(reverse("treatments:portal_consent", kwargs={"signed": signed.uuid}))
    assert consent.status_code == 200
    assert (
        AuditEvent.objects.filter(
            action=AuditAction.DOWNLOAD, actor=account.user, patient_ref=account.patient.uuid
        ).count()
        == 2
    )


def test_another_patients_documents_are_404_in_the_portal(practitioner: User) -> None:
    account = _portal_patient(practitioner)
    other = PatientFactory()
    _fill(other, 1)
    client = _portal_client(account)
    document = other.documents.get()
    signed = other.signed_consents.get()
    assert (
        client.get(
            reverse("treatments:portal_document", kwargs={"document": document.uuid})
        ).status_code
        == 404
    )
    assert (
        client.get(reverse("treatments:portal_consent", kwargs={"signed": signed.uuid})).status_code
        == 404
    )


def test_staff_are_refused_the_portal(practitioner: User) -> None:
    client = sign_in(Client(), practitioner)
    assert client.get(reverse("treatments:portal_home")).status_code == 403


def test_a_closed_portal_account_can_no_longer_reach_the_portal(practitioner: User) -> None:
    account = _portal_patient(practitioner)
    client = _portal_client(account)
    User.objects.filter(pk=account.user.pk).update(is_active=False)
    # Signed out: sent to sign in, nothing of the portal shown.
    response = client.get(reverse("treatments:portal_home"))
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={reverse('treatments:portal_home')}"


def test_a_portal_user_reaches_only_portal_authenticated_and_public_routes(
    practitioner: User,
) -> None:
    from tests.test_urlwalk import ROUTES

    account = _portal_patient(practitioner)
    client = _portal_client(account)
    failures = []
    for route in ROUTES:
        response = client.get(route.url)
        status = response.status_code
        if status >= 500 and status != 503:
            failures.append(f"{route.name}: {status}")
        elif route.access.kind in ("portal", "authenticated", "public"):
            if status == 403:
                failures.append(f"{route.name}: refused (403) but open to a patient")
        elif status != 403:
            failures.append(f"{route.name}: patient got {status}, expected 403")
    assert not failures, "\n".join(failures)


def test_a_signed_in_patient_is_not_asked_to_set_up_staff_two_factor(
    practitioner: User, settings: Any
) -> None:
    settings.REQUIRE_STAFF_2FA = True
    account = _portal_patient(practitioner)
    client = _portal_client(account)
    assert client.get(reverse("treatments:portal_home")).status_code == 200
    # The staff dashboard sends a patient to their portal, without "change password".
    home = client.get(reverse("home"))
    assert home.status_code == 302
    assert home["Location"] == reverse("treatments:portal_home")
    page = client.get(reverse("treatments:portal_home")).content.decode()
    assert reverse("password_change") not in page


def test_asking_for_sign_in_links_again_and_again_sends_five_an_hour_and_answers_alike(
    practitioner: User,
) -> None:
    patient = PatientFactory(email="often@example.org")
    _invite(patient, practitioner)
    mail.outbox.clear()
    client = Client()
    url = reverse("treatments:portal_request")
    strip = re.compile(r'value="[^"]+"|"X-CSRFToken": "[^"]+"')
    with time_machine.travel(datetime(2026, 3, 2, 10, 5, tzinfo=UTC), tick=False):
        responses = [client.post(url, {"email": "often@example.org"}) for _ in range(6)]
        assert {r.status_code for r in responses} == {200}
        assert len({strip.sub("", r.content.decode()) for r in responses}) == 1
        deliver_sign_in_mail()
    assert len(mail.outbox) == 5

"""Emailed download links: random tokens stored as hashes, the date-of-birth
check, expiry (410), revocation (404), rate limiting (429), no hints and no
tokens in the logs."""

from __future__ import annotations

import logging
import math
import re
from datetime import date, timedelta
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.urls import reverse

from clinic.models import AuditAction, AuditEvent
from tests.factories import PatientFactory
from tests.treatments.test_aftercare import ready_document
from treatments.models import DownloadLink, LinkAttempt, PatientDocument
from treatments.services import aftercare as service
from treatments.services.portal import LINK_ATTEMPT_LIMIT

pytestmark = pytest.mark.django_db

HELP = "ask the clinic for a new link"


def _token_from(message: Any) -> str:
    match = re.search(r"/treatments/d/([A-Za-z0-9_-]+)/", message.body)
    assert match, message.body
    return match.group(1)


@pytest.fixture
def emailed() -> tuple[PatientDocument, str]:
    """A ready sheet and the token of the link emailed for it."""
    document = ready_document()
    return document, _token_from(mail.outbox[-1])


def _url(token: str) -> str:
    return reverse("treatments:link_open", kwargs={"token": token})


def _dob(document: PatientDocument) -> str:
    return document.patient.date_of_birth.isoformat()


def test_the_token_has_at_least_128_bits_and_only_its_sha256_is_stored(
    emailed: tuple[PatientDocument, str],
) -> None:
    document, token = emailed
    # token_urlsafe(32): 43 characters of a 64-letter alphabet, 256 bits.
    assert len(token) * math.log2(64) >= 128
    link = DownloadLink.objects.get(document=document)
    assert link.token_hash == service.sha256_hex(token)
    stored = DownloadLink.objects.filter(pk=link.pk).values_list().get()
    assert token not in [str(v) for v in stored]


def test_two_links_never_share_a_token() -> None:
    document = ready_document()
    for _ in range(20):
        service.aftercare_send(document=document, sent_by=None)
    tokens = {_token_from(m) for m in mail.outbox}
    assert len(tokens) == 21


def test_the_link_page_asks_for_the_date_of_birth_and_writes_nothing(
    client: Client, emailed: tuple[PatientDocument, str], django_assert_max_num_queries: Any
) -> None:
    _document, token = emailed
    with django_assert_max_num_queries(3):
        response = client.get(_url(token))
    assert response.status_code == 200
    assert "date of birth" in response.content.decode().lower()
    assert response["Referrer-Policy"] == "same-origin"


def test_the_right_date_of_birth_downloads_the_pdf_privately_and_is_audited(
    client: Client, emailed: tuple[PatientDocument, str], django_assert_max_num_queries: Any
) -> None:
    document, token = emailed
    with django_assert_max_num_queries(10):
        response = client.post(_url(token), {"date_of_birth": _dob(document)})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert b"".join(response.streaming_content).startswith(b"%PDF")
    assert "no-store" in response["Cache-Control"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "no-referrer"
    link = DownloadLink.objects.get(document=document)
    assert link.downloads == 1
    assert link.last_used_at is not None
    assert AuditEvent.objects.filter(
        action=AuditAction.DOWNLOAD, patient_ref=document.patient.uuid
    ).exists()


def test_a_wrong_date_of_birth_gets_the_same_page_with_a_neutral_message(
    client: Client, emailed: tuple[PatientDocument, str]
) -> None:
    document, token = emailed
    wrong = (document.patient.date_of_birth - timedelta(days=1)).isoformat()
    response = client.post(_url(token), {"date_of_birth": wrong})
    assert response.status_code == 400
    body = response.content.decode()
    assert "do not match our records" in body
    typed = date.fromisoformat(wrong)
    assert f"{typed.day:02d}/{typed.month:02d}/{typed.year}" in body  # the date typed is kept
    assert document.patient.last_name not in body
    assert LinkAttempt.objects.count() == 1


def test_a_missing_date_is_asked_for_again_without_counting_a_failure(
    client: Client, emailed: tuple[PatientDocument, str]
) -> None:
    _document, token = emailed
    response = client.post(_url(token), {"date_of_birth": ""})
    assert response.status_code == 400
    assert "Please enter your date of birth" in response.content.decode()
    assert LinkAttempt.objects.count() == 0


def test_an_expired_link_is_410_with_help(
    client: Client, emailed: tuple[PatientDocument, str]
) -> None:
    document, token = emailed
    link = DownloadLink.objects.get(document=document)
    with time_machine.travel(link.expires_at + timedelta(minutes=1), tick=False):
        response = client.post(_url(token), {"date_of_birth": _dob(document)})
    assert response.status_code == 410
    assert HELP in response.content.decode()


def test_a_revoked_link_is_404_with_help(
    client: Client, emailed: tuple[PatientDocument, str]
) -> None:
    document, token = emailed
    DownloadLink.objects.filter(document=document).update(revoked_at=document.generated_at)
    response = client.post(_url(token), {"date_of_birth": _dob(document)})
    assert response.status_code == 404
    assert HELP in response.content.decode()


@pytest.mark.parametrize("token", ["x", "A" * 43, "A" * 500, "%00", "a.b~c<script>"])
def test_guessed_tokens_are_404_with_the_same_help_and_never_500(
    client: Client, token: str
) -> None:
    response = client.post(
        reverse("treatments:link_open", kwargs={"token": "placeholder"}).replace(
            "placeholder", token
        ),
        {"date_of_birth": "1980-01-01"},
    )
    assert response.status_code == 404
    assert HELP in response.content.decode()


def test_unknown_and_revoked_links_answer_exactly_alike(
    client: Client, emailed: tuple[PatientDocument, str]
) -> None:
    document, token = emailed
    DownloadLink.objects.filter(document=document).update(revoked_at=document.generated_at)
    revoked = client.post(_url(token), {"date_of_birth": _dob(document)})
    unknown = client.post(_url("A" * 43), {"date_of_birth": _dob(document)})
    strip = re.compile(r'value="[^"]+"|"X-CSRFToken": "[^"]+"')
    assert strip.sub("", revoked.content.decode()) == strip.sub("", unknown.content.decode())


def test_after_ten_failures_from_one_address_the_page_answers_429(
    client: Client, emailed: tuple[PatientDocument, str]
) -> None:
    document, token = emailed
    for _ in range(LINK_ATTEMPT_LIMIT // 2):
        client.post(_url("B" * 43), {"date_of_birth": "1980-01-01"})
        client.post(_url(token), {"date_of_birth": "1900-01-02"})
    response = client.post(_url(token), {"date_of_birth": _dob(document)})
    assert response.status_code == 429
    assert "too many" in response.content.decode().lower()
    assert client.get(_url(token)).status_code == 429
    # Another address is not affected.
    other = Client(REMOTE_ADDR="10.9.8.7")
    assert other.post(_url(token), {"date_of_birth": _dob(document)}).status_code == 200


def test_the_limit_lifts_after_ten_minutes(
    client: Client, emailed: tuple[PatientDocument, str]
) -> None:
    document, token = emailed
    for _ in range(LINK_ATTEMPT_LIMIT):
        client.post(_url("C" * 43), {"date_of_birth": "1980-01-01"})
    assert client.get(_url(token)).status_code == 429
    later = LinkAttempt.objects.latest("at").at + timedelta(minutes=11)
    with time_machine.travel(later, tick=False):
        assert client.post(_url(token), {"date_of_birth": _dob(document)}).status_code == 200


def test_no_token_appears_in_the_logs(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    document = ready_document()
    token = _token_from(mail.outbox[-1])
    service.aftercare_send(document=document, sent_by=None)
    second = _token_from(mail.outbox[-1])
    client.get(_url(token))
    client.post(_url(token), {"date_of_birth": "1900-01-02"})
    client.post(_url(token), {"date_of_birth": _dob(document)})
    client.post(_url("D" * 43), {"date_of_birth": _dob(document)})
    strict = Client(enforce_csrf_checks=True, HTTP_ORIGIN="null")
    strict.post(_url(token), {"date_of_birth": _dob(document)})
    DownloadLink.objects.update(revoked_at=document.generated_at)
    client.post(_url(second), {"date_of_birth": _dob(document)})
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (token, second, "D" * 43):
        assert secret not in logged


def test_a_link_never_reveals_whether_another_patient_exists(client: Client) -> None:
    first = ready_document(patient=PatientFactory(first_name="Alma"))
    token = _token_from(mail.outbox[-1])
    second = ready_document(patient=PatientFactory(first_name="Bea"))
    # The second patient's date of birth on the first patient's link: refused.
    response = client.post(_url(token), {"date_of_birth": second.patient.date_of_birth.isoformat()})
    if second.patient.date_of_birth != first.patient.date_of_birth:
        assert response.status_code == 400
        assert "Bea" not in response.content.decode()

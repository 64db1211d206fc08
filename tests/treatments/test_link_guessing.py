"""Guessing a date of birth at an emailed download link: an IPv6 client is
counted by its /64, and a link takes only so many wrong dates of birth, from
any addresses, before it is revoked."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client

from clinic.models import AuditAction, AuditEvent
from tests.treatments.test_aftercare import ready_document
from tests.treatments.test_links import _dob, _token_from, _url
from treatments.models import DownloadLink, LinkAttempt, PatientDocument
from treatments.services.portal import (
    LINK_ATTEMPT_LIMIT,
    LINK_WRONG_BIRTH_DATE_LIMIT,
    link_attempts_prune,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def emailed() -> tuple[PatientDocument, str]:
    document = ready_document()
    return document, _token_from(mail.outbox[-1])


def _wrong(document: PatientDocument, n: int) -> str:
    return (document.patient.date_of_birth - timedelta(days=n + 1)).isoformat()


def test_an_ipv6_host_rotating_through_its_64_meets_the_address_limit(
    emailed: tuple[PatientDocument, str],
) -> None:
    document, token = emailed
    for n in range(LINK_ATTEMPT_LIMIT):
        Client(REMOTE_ADDR=f"2001:db8:1:2::{n + 1:x}").post(
            _url("B" * 43), {"date_of_birth": "1980-01-01"}
        )
    fresh = Client(REMOTE_ADDR="2001:db8:1:2:ffff::9")
    assert fresh.post(_url(token), {"date_of_birth": _dob(document)}).status_code == 429
    # The next /64 is someone else.
    other = Client(REMOTE_ADDR="2001:db8:1:3::1")
    assert other.post(_url(token), {"date_of_birth": _dob(document)}).status_code == 200


def test_a_link_given_too_many_wrong_dates_of_birth_is_revoked_and_says_so(
    emailed: tuple[PatientDocument, str],
) -> None:
    document, token = emailed
    # Each guess from a different network: no address limit is ever met.
    answers = [
        Client(REMOTE_ADDR=f"2001:db8:{n + 1:x}::1").post(
            _url(token), {"date_of_birth": _wrong(document, n)}
        )
        for n in range(LINK_WRONG_BIRTH_DATE_LIMIT)
    ]
    assert [a.status_code for a in answers] == [400] * (LINK_WRONG_BIRTH_DATE_LIMIT - 1) + [410]
    page = answers[-1].content.decode()
    assert "entered wrongly too many times" in page
    assert "ask the clinic for a new link" in page
    link = DownloadLink.objects.get(document=document)
    assert link.revoked_at is not None
    revoked = AuditEvent.objects.get(
        action=AuditAction.UPDATE,
        changed_fields__contains=[f"wrong_dates_of_birth={LINK_WRONG_BIRTH_DATE_LIMIT}"],
    )
    assert revoked.patient_ref == document.patient.uuid
    # The right date of birth now opens nothing.
    late = Client(REMOTE_ADDR="198.51.100.77").post(_url(token), {"date_of_birth": _dob(document)})
    assert late.status_code == 404


def test_wrong_dates_of_birth_at_a_live_link_outlive_the_daily_prune(
    emailed: tuple[PatientDocument, str],
) -> None:
    document, token = emailed
    Client(REMOTE_ADDR="198.51.100.7").post(_url(token), {"date_of_birth": _wrong(document, 0)})
    Client(REMOTE_ADDR="198.51.100.7").post(_url("B" * 43), {"date_of_birth": "1980-01-01"})
    LinkAttempt.objects.update(at=LinkAttempt.objects.latest("at").at - timedelta(days=2))
    assert link_attempts_prune() == 1
    assert LinkAttempt.objects.get().link is not None

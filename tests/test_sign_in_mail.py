"""Password-reset and portal sign-in emails asked for on public pages: the
same answer, path and time for known and unknown addresses, hourly limits
per address typed and per client, the email sent by a worker."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from clinic.models import SignInMailKind, SignInMailRequest, User
from clinic.sign_in_mail import sign_in_mail_requeue_stale, sign_in_mail_send
from tests.conftest import deliver_sign_in_mail
from tests.factories import PatientFactory
from treatments.services.portal import portal_invite

pytestmark = pytest.mark.django_db

# A Monday morning, a few minutes into the hour: every request of a test falls
# in one hourly window.
MONDAY = datetime(2026, 3, 2, 10, 5, tzinfo=UTC)
RESET = "password_reset"
PORTAL = "treatments:portal_request"
_TOKENS = re.compile(r'value="[^"]+"|"X-CSRFToken": "[^"]+"')


@pytest.fixture
def portal_patient(practitioner: User, settings: Any) -> str:
    settings.REQUIRE_STAFF_2FA = False
    patient = PatientFactory(email="known@example.org")
    portal_invite(patient=patient, invited_by=practitioner)
    mail.outbox.clear()
    return "known@example.org"


def _page(response: Any) -> str:
    return _TOKENS.sub("", response.content.decode())


def _ask(url_name: str, email: str, *, client: Client | None = None, ip: str = "192.0.2.10") -> Any:
    return (client or Client()).post(reverse(url_name), {"email": email}, REMOTE_ADDR=ip)


def _statements(captured: CaptureQueriesContext) -> list[str]:
    """Each query's kind and table, without its values."""
    shapes = []
    for query in captured.captured_queries:
        words = query["sql"].split()
        if words[0] in {"SAVEPOINT", "RELEASE", "ROLLBACK"}:
            shapes.append(words[0])  # savepoint names are numbered
            continue
        table = next((w for w in words if w.startswith('"')), "")
        shapes.append(f"{words[0]} {table}")
    return shapes


@pytest.mark.parametrize("url_name", [RESET, PORTAL])
def test_known_and_unknown_addresses_take_the_same_path(
    url_name: str,
    practitioner: User,
    portal_patient: str,
    django_capture_on_commit_callbacks: Any,
) -> None:
    known_email = practitioner.email if url_name == RESET else portal_patient
    answers, shapes, queued = [], [], []
    with time_machine.travel(MONDAY, tick=False):
        for email in (known_email, "nobody@example.org"):
            with (
                CaptureQueriesContext(connection) as captured,
                django_capture_on_commit_callbacks() as callbacks,
            ):
                answers.append(_ask(url_name, email))
            shapes.append(_statements(captured))
            queued.append(len(callbacks))
    assert answers[0].status_code == answers[1].status_code
    assert _page(answers[0]) == _page(answers[1])
    assert shapes[0] == shapes[1]
    assert not any("clinic_user" in s or "treatments_portalaccount" in s for s in shapes[0])
    assert queued == [1, 1]
    assert mail.outbox == []
    # The worker's part: a mail for the known address only.
    assert deliver_sign_in_mail() == 2
    assert [m.to for m in mail.outbox] == [[known_email]]
    assert not SignInMailRequest.objects.exists()


@pytest.mark.parametrize("url_name", [RESET, PORTAL])
def test_the_sixth_request_for_one_email_in_an_hour_sends_nothing_and_looks_the_same(
    url_name: str, practitioner: User, portal_patient: str
) -> None:
    email = practitioner.email if url_name == RESET else portal_patient
    with time_machine.travel(MONDAY, tick=False):
        # Each from another address: only the limit per email applies.
        answers = [_ask(url_name, email, ip=f"192.0.2.{n}") for n in range(1, 7)]
        assert SignInMailRequest.objects.count() == 5
        deliver_sign_in_mail()
    assert len({(a.status_code, _page(a)) for a in answers}) == 1
    assert len(mail.outbox) == 5
    # The next hour, the address may ask again.
    with time_machine.travel(MONDAY + timedelta(hours=1), tick=False):
        _ask(url_name, email)
        deliver_sign_in_mail()
    assert len(mail.outbox) == 6


def test_one_client_asking_for_many_addresses_meets_its_hourly_limit(
    practitioner: User, settings: Any
) -> None:
    settings.SIGN_IN_MAIL_LIMIT_PER_ADDRESS = 3
    with time_machine.travel(MONDAY, tick=False):
        answers = [_ask(RESET, f"guess{n}@example.org") for n in range(3)]
        answers.append(_ask(RESET, practitioner.email))
        from_elsewhere = _ask(RESET, practitioner.email, ip="198.51.100.1")
        deliver_sign_in_mail()
    assert len({(a.status_code, a["Location"]) for a in [*answers, from_elsewhere]}) == 1
    assert len(mail.outbox) == 1  # the request from elsewhere only


def test_a_worker_running_twice_sends_one_email(practitioner: User) -> None:
    with time_machine.travel(MONDAY, tick=False):
        _ask(RESET, practitioner.email)
    row = SignInMailRequest.objects.get()
    assert row.kind == SignInMailKind.PASSWORD_RESET
    assert sign_in_mail_send(request_id=row.pk) is True
    assert sign_in_mail_send(request_id=row.pk) is False
    assert len(mail.outbox) == 1


def test_the_reset_link_points_at_the_site_url(practitioner: User, settings: Any) -> None:
    settings.SITE_URL = "https://clinic.example.org"
    with time_machine.travel(MONDAY, tick=False):
        _ask(RESET, practitioner.email)
        deliver_sign_in_mail()
    assert "https://clinic.example.org/accounts/password/reset/" in mail.outbox[0].body


def test_lost_tasks_are_queued_again_and_old_requests_dropped(practitioner: User) -> None:
    with time_machine.travel(MONDAY, tick=False):
        _ask(RESET, practitioner.email)
        _ask(RESET, "nobody@example.org")
    old, recent = SignInMailRequest.objects.order_by("pk")
    with time_machine.travel(MONDAY + timedelta(minutes=1), tick=False):
        assert sign_in_mail_requeue_stale() == 0  # their tasks may still come
    SignInMailRequest.objects.filter(pk=old.pk).update(requested_at=MONDAY - timedelta(hours=2))
    with time_machine.travel(MONDAY + timedelta(minutes=3), tick=False):
        assert sign_in_mail_requeue_stale() == 1
        assert list(SignInMailRequest.objects.values_list("pk", flat=True)) == [recent.pk]
        assert SignInMailRequest.objects.get().queued_at == timezone.now()

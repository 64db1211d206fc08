"""Contact-change notices are sent like reminders: one notice's failure,
whatever it is, stays that notice's (recorded by kind, backed off, failed in
the end) while the others go once; nothing is locked while a mail server is
waited for; a notice whose worker died goes again after its lease."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.core import mail
from django.db import connection, transaction
from django.utils import timezone

from clinic.models import User
from patients.models import ContactChange, ContactNoticeStatus, Patient
from patients.services import patient_update
from tests.factories import PatientFactory
from tests.treatments import test_reminders_support as support
from tests.treatments.test_reminders_support import SilentMailServer
from treatments.services import contact_notices
from treatments.services.contact_notices import NOTICE_MAX_ATTEMPTS, contact_notices_dispatch

silent_smtp = support.silent_smtp

# Tuesday 3 March 2026, 11:00 in London (GMT): outside quiet hours.
NOW = datetime(2026, 3, 3, 11, 0, tzinfo=UTC)


@pytest.fixture
def frozen() -> Iterator[time_machine.Coordinates]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def _changed(patient: Patient, by: User, **fields: str) -> ContactChange:
    patient_update(patient=patient, updated_by=by, expected_version=patient.version, **fields)
    return ContactChange.objects.filter(patient=patient).latest("changed_at", "id")


class _Broken:
    """An SMS backend failing in a way none is meant to, the number in its text."""

    def __init__(self, error: type[Exception]) -> None:
        self.error = error
        self.calls = 0

    def send(self, *, to: str, body: str, idempotency_key: str) -> str:
        self.calls += 1
        raise self.error(f"cannot send to {to}")


@pytest.mark.django_db
@pytest.mark.parametrize("error", [ValueError, RuntimeError])
def test_one_notice_failing_in_any_way_is_retried_alone_and_the_others_go_once(
    frozen: time_machine.Coordinates, practitioner: User, error: type[Exception]
) -> None:
    emailed = [
        _changed(PatientFactory(email=f"before{n}@example.org"), practitioner, email=f"n{n}@ex.org")
        for n in range(2)
    ]
    texted = _changed(PatientFactory(phone="+447911000555"), practitioner, phone="+447911000666")
    backend = _Broken(error)
    for attempt in range(1, 4):
        tried_at = timezone.now()
        contact_notices_dispatch(backend=backend)
        texted.refresh_from_db()
        # Backed off: 1, 2, 4 minutes (and up to a quarter more).
        assert texted.notice_due_at - tried_at >= timedelta(minutes=2 ** (attempt - 1))
        frozen.move_to(texted.notice_due_at)
    assert len(mail.outbox) == 2  # each email once, not once a tick
    assert sorted(m.to[0] for m in mail.outbox) == ["before0@example.org", "before1@example.org"]
    for row in emailed:
        row.refresh_from_db()
        assert (row.notice_status, row.notice_attempts) == (ContactNoticeStatus.SENT, 1)
    assert backend.calls == 3
    assert (texted.notice_status, texted.notice_attempts) == (ContactNoticeStatus.PENDING, 3)
    assert texted.notice_error == error.__name__  # the kind, never the number
    for _tick in range(NOTICE_MAX_ATTEMPTS - 3):
        frozen.move_to(texted.notice_due_at)
        contact_notices_dispatch(backend=backend)
        texted.refresh_from_db()
    assert (texted.notice_status, texted.notice_attempts) == (
        ContactNoticeStatus.FAILED,
        NOTICE_MAX_ATTEMPTS,
    )
    assert contact_notices_dispatch(backend=backend).claimed == 0
    assert len(mail.outbox) == 2


@pytest.mark.django_db
def test_a_notice_is_not_tried_again_before_its_back_off(
    frozen: time_machine.Coordinates, practitioner: User
) -> None:
    texted = _changed(PatientFactory(phone="+447911000555"), practitioner, phone="+447911000666")
    backend = _Broken(ValueError)
    contact_notices_dispatch(backend=backend)
    texted.refresh_from_db()
    assert texted.notice_due_at is not None
    assert texted.notice_due_at - NOW >= timedelta(minutes=1)
    frozen.move_to(texted.notice_due_at - timedelta(seconds=1))
    assert contact_notices_dispatch(backend=backend).claimed == 0
    assert backend.calls == 1


@pytest.mark.django_db
def test_a_notice_whose_worker_died_is_sent_again_after_its_lease(
    frozen: time_machine.Coordinates, practitioner: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    change = _changed(PatientFactory(email="old@example.org"), practitioner, email="new@ex.org")

    def died(*args: Any, **kwargs: Any) -> None:
        raise SystemExit("worker killed before it recorded the outcome")

    monkeypatch.setattr(contact_notices, "_record", died)
    with pytest.raises(SystemExit):
        contact_notices_dispatch()
    monkeypatch.undo()
    change.refresh_from_db()
    assert change.notice_status == ContactNoticeStatus.SENDING
    lease_end = NOW + settings.MESSAGE_CLAIM_LEASE
    assert change.notice_due_at == lease_end
    frozen.move_to(lease_end - timedelta(seconds=1))
    assert contact_notices_dispatch().claimed == 0
    frozen.move_to(lease_end)
    assert contact_notices_dispatch().sent == 1
    change.refresh_from_db()
    assert (change.notice_status, change.notice_attempts) == (ContactNoticeStatus.SENT, 2)
    # The same Message-ID both times: the repeat is recognisable.
    assert len(mail.outbox) == 2
    assert len({m.extra_headers["Message-ID"] for m in mail.outbox}) == 1


@pytest.mark.django_db(transaction=True)
def test_no_notice_is_locked_while_the_mail_server_says_nothing(
    frozen: time_machine.Coordinates,
    practitioner: User,
    silent_smtp: SilentMailServer,
) -> None:
    change = _changed(PatientFactory(email="old@example.org"), practitioner, email="new@ex.org")
    seen: dict[str, Any] = {}

    def look() -> None:
        try:
            assert silent_smtp.accepted.wait(10)
            with transaction.atomic():
                seen["row"] = (
                    ContactChange.objects.select_for_update(nowait=True)
                    .values_list("notice_status", flat=True)
                    .get(pk=change.pk)
                )
        except Exception as error:  # reported to the test's thread
            seen["error"] = repr(error)
        finally:
            connection.close()

    observer = threading.Thread(target=look)
    observer.start()
    started = time.monotonic()
    result = contact_notices_dispatch()
    took = time.monotonic() - started
    observer.join(10)
    assert seen == {"row": ContactNoticeStatus.SENDING}
    assert took < 5
    assert result.retried == 1
    change.refresh_from_db()
    assert (change.notice_status, change.notice_attempts) == (ContactNoticeStatus.PENDING, 1)
    assert change.notice_error == "mail server unreachable (SMTPServerDisconnected)"
    assert change.notice_due_at is not None
    assert change.notice_due_at > timezone.now()

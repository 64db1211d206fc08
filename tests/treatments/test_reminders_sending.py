"""Sending with nothing held: no transaction open and no row locked while a
mail server or the SMS provider is waited for, every wait bounded, two ticks
at once never sending one row twice, and time limits on every task.

These tests commit (other connections must see the rows), so they run on
the real PostgreSQL with transactional tests, and threads of their own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import time_machine
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core import mail
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

from patients.models import Patient
from tests.factories import PatientFactory
from tests.treatments import test_reminders as http_provider
from tests.treatments import test_reminders_support as support
from tests.treatments.test_reminders import _Provider
from tests.treatments.test_reminders_support import (
    Clinic,
    RecordingBackend,
    SilentMailServer,
    book,
    local,
)
from treatments.models import Reminder, ReminderStatus
from treatments.services.reminders import (
    DispatchResult,
    dispatch,
    reminders_dispatch_batch,
    reminders_dispatch_due,
)
from treatments.sms import HttpBackend

clinic = support.clinic
silent_smtp = support.silent_smtp
certificate = http_provider.certificate
provider = http_provider.provider
pytestmark = pytest.mark.django_db(transaction=True)

# A Monday in November: London on GMT, clinic open, outside quiet hours.
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
THURSDAY = date(2026, 11, 5)


@pytest.fixture
def frozen() -> Iterator[time_machine.Coordinates]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@dataclass
class Seen:
    """What another connection saw while the dispatcher waited on the network."""

    backend_state: str | None = None
    row: tuple[str, datetime | None] | None = None
    errors: list[str] = field(default_factory=list)


def _look_while_waiting(server: SilentMailServer, pid: int, reminder_id: int, seen: Seen) -> None:
    """From a connection of its own: the dispatcher's session state, and the
    reminder row, locked NOWAIT (an error if the dispatcher held it)."""
    try:
        if not server.accepted.wait(10):
            seen.errors.append("the dispatcher never reached the mail server")
            return
        with connection.cursor() as cursor:
            cursor.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", [pid])
            seen.backend_state = cursor.fetchone()[0]
        with transaction.atomic():
            row = (
                Reminder.objects.select_for_update(nowait=True)
                .values_list("status", "claimed_until")
                .get(pk=reminder_id)
            )
        seen.row = row
    except Exception as error:  # reported to the test's thread
        seen.errors.append(repr(error))
    finally:
        connection.close()


def test_while_the_mail_server_says_nothing_no_transaction_is_open_and_the_tick_ends_in_time(
    clinic: Clinic, frozen: time_machine.Coordinates, silent_smtp: SilentMailServer
) -> None:
    booking = book(clinic, local(THURSDAY, 10))
    frozen.move_to(local(date(2026, 11, 3), 10, 1))
    reminder = Reminder.objects.filter(booking=booking).order_by("due_at").first()
    assert reminder is not None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    seen = Seen()
    observer = threading.Thread(
        target=_look_while_waiting, args=(silent_smtp, pid, reminder.pk, seen)
    )
    observer.start()
    started = time.monotonic()
    result = reminders_dispatch_batch(backend=RecordingBackend())
    took = time.monotonic() - started
    observer.join(10)
    assert not seen.errors, seen.errors
    # The row was ours, leased, and neither locked nor inside an open transaction.
    assert seen.backend_state == "idle"
    assert seen.row == ("sending", local(date(2026, 11, 3), 10, 1) + settings.MESSAGE_CLAIM_LEASE)
    # The wait was EMAIL_TIMEOUT (1 s here), not the server's silence.
    assert took < 5
    assert (result.claimed, result.sent, result.retried) == (1, 0, 1)
    reminder.refresh_from_db()
    assert (reminder.status, reminder.attempts, reminder.claimed_until) == ("planned", 1, None)
    assert reminder.error == "mail server unreachable (SMTPServerDisconnected)"
    assert reminder.due_at >= local(date(2026, 11, 3), 10, 2)  # backed off
    # Later, with the mail server answering, the same reminder goes.
    frozen.move_to(reminder.due_at)
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
        assert reminders_dispatch_batch(backend=RecordingBackend()).sent == 1
    reminder.refresh_from_db()
    assert (reminder.status, reminder.attempts) == ("sent", 2)
    assert len(mail.outbox) == 1


def test_the_mail_server_and_the_sms_provider_are_waited_for_a_bounded_time() -> None:
    # Production settings: no network call of the dispatcher waits unbounded.
    assert 0 < settings.EMAIL_TIMEOUT <= 30
    assert 0 < settings.SMS_TIMEOUT_SECONDS <= 30
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend"):
        assert mail.get_connection().timeout == settings.EMAIL_TIMEOUT


class SlowRecordingBackend(RecordingBackend):
    """Records every send from any thread, taking a moment each, like a provider."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()

    def send(self, *, to: str, body: str, idempotency_key: str) -> str:
        time.sleep(0.01)
        with self.lock:
            return super().send(to=to, body=body, idempotency_key=idempotency_key)


def test_two_ticks_at_once_send_each_reminder_exactly_once(
    clinic: Clinic, frozen: time_machine.Coordinates
) -> None:
    patients = [PatientFactory(reminder_channel="sms") for _ in range(4)]
    for index in range(24):
        book(
            clinic,
            local(THURSDAY, 9) + timedelta(minutes=11 * index),
            patient=patients[index % 4],
        )
    frozen.move_to(local(THURSDAY, 9) - timedelta(hours=48) + timedelta(hours=5))
    due = set(
        Reminder.objects.filter(due_at__lte=local(THURSDAY, 9) - timedelta(hours=43)).values_list(
            "uuid", flat=True
        )
    )
    assert len(due) == 24
    backend = SlowRecordingBackend()
    start = threading.Barrier(2)
    results: list[DispatchResult] = []
    errors: list[str] = []

    def tick() -> None:
        try:
            start.wait(10)
            while True:
                result = reminders_dispatch_batch(limit=4, backend=backend)
                results.append(result)
                if not result.claimed:
                    return
        except Exception as error:  # reported to the test's thread
            errors.append(repr(error))
        finally:
            connection.close()

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    keys = [sent["key"] for sent in backend.sent]
    assert sorted(keys) == sorted(str(key) for key in due)  # each once, none twice
    assert sum(r.sent for r in results) == 24
    # Both ticks took part: the rows were shared out, not sent by one alone.
    assert len([r for r in results if r.sent]) >= 3
    assert not Reminder.objects.filter(uuid__in=due).exclude(status=ReminderStatus.SENT).exists()


def test_a_soft_time_limit_records_what_was_sent_and_gives_back_what_was_not(
    clinic: Clinic, frozen: time_machine.Coordinates
) -> None:
    texted = PatientFactory(reminder_channel="sms")
    bookings = [
        book(clinic, local(THURSDAY, 10) + timedelta(minutes=20 * index), patient=texted)
        for index in range(3)
    ]
    frozen.move_to(local(date(2026, 11, 3), 11))
    backend = RecordingBackend()
    # The second message is interrupted by Celery's soft time limit.
    original = backend.send
    calls = []

    def send(**kwargs: Any) -> str:
        calls.append(kwargs["idempotency_key"])
        if len(calls) == 2:
            raise SoftTimeLimitExceeded()
        return original(**kwargs)

    backend.send = send  # type: ignore[method-assign]
    with pytest.raises(SoftTimeLimitExceeded):
        reminders_dispatch_batch(backend=backend)
    first, second, third = (Reminder.objects.get(booking=b, lead_minutes=48 * 60) for b in bookings)
    assert (first.status, first.attempts) == ("sent", 1)
    assert (second.status, second.attempts) == ("planned", 1)
    assert second.error == "The send did not finish in time."
    assert second.due_at > timezone.now()
    # Never tried: planned again, due as before, no attempt counted.
    assert (third.status, third.attempts, third.claimed_until) == ("planned", 0, None)
    assert third.due_at == third.intended_at
    assert reminders_dispatch_batch(backend=backend).sent == 1  # the third, at once


class _Clock:
    """A monotonic clock that moves only when a message is sent."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


def test_a_tick_that_runs_out_of_budget_leaves_the_rest_for_the_next(
    clinic: Clinic, frozen: time_machine.Coordinates, monkeypatch: pytest.MonkeyPatch
) -> None:
    texted = PatientFactory(reminder_channel="sms")
    for index in range(6):
        book(clinic, local(THURSDAY, 10) + timedelta(minutes=20 * index), patient=texted)
    frozen.move_to(local(date(2026, 11, 3), 12))
    clock = _Clock()
    monkeypatch.setattr(dispatch, "monotonic_time", clock)
    backend = RecordingBackend()
    original = backend.send

    def send(**kwargs: Any) -> str:
        clock.now += 1.0  # each message takes a second
        return original(**kwargs)

    backend.send = send  # type: ignore[method-assign]
    # A budget of 1.5 s: two messages of the first batch of three go; the
    # third is given back untried, and no second batch is taken.
    result = reminders_dispatch_due(limit=3, budget_seconds=1.5, backend=backend)
    assert (result.claimed, result.sent, result.released, result.batches) == (3, 2, 1, 1)
    planned = Reminder.objects.filter(status=ReminderStatus.PLANNED, lead_minutes=48 * 60)
    assert planned.count() == 4
    assert all(r.attempts == 0 and r.claimed_until is None for r in planned)
    assert all(r.due_at == r.intended_at for r in planned)
    # The next tick sends them.
    clock.now = 0.0
    assert reminders_dispatch_due(limit=10, budget_seconds=30, backend=backend).sent == 4
    assert len(backend.sent) == 6


def test_every_task_has_time_limits_and_the_lease_outlasts_the_dispatchers() -> None:
    from clinic.celery import app

    app.loader.import_default_modules()
    assert (app.conf.task_soft_time_limit, app.conf.task_time_limit) == (300, 360)
    for name in ("treatments.reminders_dispatch", "treatments.contact_notices_dispatch"):
        task = app.tasks[name]
        assert (task.soft_time_limit, task.time_limit) == (90, 120)
        assert timedelta(seconds=task.time_limit) < settings.MESSAGE_CLAIM_LEASE
    # Every other task (the PDF renders among them) has the generous defaults.
    render = app.tasks["treatments.aftercare_render"]
    assert (render.soft_time_limit, render.time_limit) == (300, 360)


# --- What changed between the claim and the send ------------------------------------------


class _ChangesOnFirstSend(RecordingBackend):
    """Records every send; the first one, while the batch is out on the
    network, runs `change` (reception cancelling another booking, say)."""

    def __init__(self, change: Callable[[], object]) -> None:
        super().__init__()
        self.change: Callable[[], object] | None = change

    def send(self, *, to: str, body: str, idempotency_key: str) -> str:
        if self.change is not None:
            change, self.change = self.change, None
            change()
        return super().send(to=to, body=body, idempotency_key=idempotency_key)


@pytest.mark.parametrize("what", ["cancelled", "moved", "preferences"])
def test_a_reminder_whose_booking_changed_after_the_claim_is_not_sent(
    clinic: Clinic, frozen: time_machine.Coordinates, what: str
) -> None:
    first_patient, second_patient = (
        PatientFactory(reminder_channel="sms", consents_to_messages=True) for _ in range(2)
    )
    first = book(clinic, local(THURSDAY, 9, 50), patient=first_patient)
    second = book(clinic, local(THURSDAY, 10), patient=second_patient)
    frozen.move_to(local(date(2026, 11, 3), 10, 1))
    changes: dict[str, Callable[[], object]] = {
        "cancelled": lambda: support.cancel(clinic, second),
        "moved": lambda: support.move(clinic, second, local(date(2026, 11, 6), 10)),
        "preferences": lambda: Patient.objects.filter(pk=second_patient.pk).update(
            reminder_channel="none"
        ),
    }
    backend = _ChangesOnFirstSend(changes[what])
    result = reminders_dispatch_batch(backend=backend)
    assert (result.claimed, result.sent) == (2, 1)
    sent = Reminder.objects.get(booking=first, lead_minutes=48 * 60)
    assert [s["key"] for s in backend.sent] == [str(sent.uuid)]
    assert sent.status == ReminderStatus.SENT
    held = Reminder.objects.get(
        booking=second, lead_minutes=48 * 60, slot_starts_at=local(THURSDAY, 10)
    )
    assert held.status == ReminderStatus.CANCELLED
    assert held.claimed_until is None
    assert held.sent_at is None


# --- The provider's words are never kept ----------------------------------------------------

LEAKY = {"error": "Cannot deliver 'Your visit, Nora Quill' to +447911123456"}


def test_a_refusal_is_stored_in_our_words_never_the_providers(
    clinic: Clinic,
    frozen: time_machine.Coordinates,
    provider: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    patient = PatientFactory(
        first_name="Nora", last_name="Quill", phone="+447911123456", reminder_channel="sms"
    )
    booking = book(clinic, local(THURSDAY, 10), patient=patient)
    frozen.move_to(local(date(2026, 11, 3), 10, 1))
    _Provider.answers = [(400, LEAKY, 0), (503, LEAKY, 0)]
    backend = HttpBackend(url=provider, token="t", timeout=2)
    with caplog.at_level("DEBUG"):
        result = reminders_dispatch_batch(backend=backend)
    assert result.failed == 1
    failed = Reminder.objects.get(booking=booking, lead_minutes=48 * 60)
    assert failed.error == "Refused by the SMS provider (400)"
    # A transient answer says as little.
    again = book(clinic, local(THURSDAY, 11), patient=patient)
    frozen.move_to(local(date(2026, 11, 3), 11, 1))
    with caplog.at_level("DEBUG"):
        assert reminders_dispatch_batch(backend=backend).retried == 1
    retried = Reminder.objects.get(booking=again, lead_minutes=48 * 60)
    assert retried.error == "SMS provider unavailable (503)"
    for text in (failed.error, retried.error, caplog.text):
        assert "Nora" not in text
        assert "Quill" not in text
        assert "7911" not in text


# --- A worker stopped mid-batch -------------------------------------------------------------


@pytest.mark.parametrize("stop", [KeyboardInterrupt, SystemExit])
def test_a_worker_stopped_mid_batch_gives_back_what_it_did_not_try(
    clinic: Clinic, frozen: time_machine.Coordinates, stop: type[BaseException]
) -> None:
    texted = PatientFactory(reminder_channel="sms")
    bookings = [
        book(clinic, local(THURSDAY, 10) + timedelta(minutes=20 * index), patient=texted)
        for index in range(3)
    ]
    frozen.move_to(local(date(2026, 11, 3), 11))
    backend = RecordingBackend()
    original = backend.send
    calls: list[str] = []

    def send(**kwargs: Any) -> str:
        calls.append(kwargs["idempotency_key"])
        if len(calls) == 2:
            raise stop()
        return original(**kwargs)

    backend.send = send  # type: ignore[method-assign]
    with pytest.raises(stop):
        reminders_dispatch_batch(backend=backend)
    first, second, third = (Reminder.objects.get(booking=b, lead_minutes=48 * 60) for b in bookings)
    assert (first.status, first.attempts) == ("sent", 1)
    # Its outcome unknown: tried again later, under the same key.
    assert (second.status, second.attempts, second.claimed_until) == ("planned", 1, None)
    assert second.due_at > timezone.now()
    # Never tried: planned again at once, no attempt counted.
    assert (third.status, third.attempts, third.claimed_until) == ("planned", 0, None)
    assert third.due_at == third.intended_at
    assert reminders_dispatch_batch(backend=backend).sent == 1  # the third, at once

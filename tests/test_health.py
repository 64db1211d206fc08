"""/healthz: database, broker, worker and beat, from real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client, override_settings
from django.utils import timezone

from clinic.health import heartbeat_record
from clinic.models import Heartbeat
from tests.dbroles import url_of_test_database

BASE_DIR = Path(settings.BASE_DIR)


def health(client: Client) -> tuple[int, dict]:
    response = client.get("/healthz")
    return response.status_code, response.json()


@pytest.mark.django_db
def test_health_is_503_until_worker_and_beat_report(client: Client) -> None:
    status, body = health(client)
    assert status == 503
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is True
    assert body["checks"]["worker"] == {"ok": False, "detail": "no heartbeat yet"}


@pytest.mark.django_db
def test_health_is_200_with_fresh_heartbeats_and_503_when_they_go_stale(client: Client) -> None:
    heartbeat_record(name="worker")
    heartbeat_record(name="beat")
    assert health(client)[0] == 200
    Heartbeat.objects.filter(name="worker").update(at=timezone.now() - timedelta(minutes=5))
    status, body = health(client)
    assert status == 503
    assert body["checks"]["worker"]["ok"] is False
    assert body["checks"]["beat"]["ok"] is True


@pytest.mark.django_db
def test_health_reports_the_broker_down_without_hanging(client: Client) -> None:
    heartbeat_record(name="worker")
    heartbeat_record(name="beat")
    with override_settings(CELERY_BROKER_URL="redis://127.0.0.1:1/0"):
        started = time.monotonic()
        status, body = health(client)
    assert time.monotonic() - started < 3
    assert status == 503
    assert body["checks"]["broker"] == {"ok": False, "detail": "unreachable"}


@pytest.mark.django_db
def test_health_reveals_no_data(client: Client) -> None:
    _, body = health(client)
    assert set(body) == {"status", "checks"}
    assert set(body["checks"]) == {"database", "broker", "worker", "beat"}


@pytest.fixture
def celery_processes(tmp_path: Path) -> Iterator[list[subprocess.Popen]]:
    env = {
        **os.environ,
        "DATABASE_URL": url_of_test_database(),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "HEARTBEAT_INTERVAL_SECONDS": "1",
        "CELERY_BEAT_SCHEDULE_FILE": str(tmp_path / "beat-schedule"),
    }
    celery = [sys.executable, "-m", "celery", "-A", "clinic"]
    worker = ["worker", "--pool", "solo", "--without-gossip", "--without-mingle"]
    logs = [open(tmp_path / name, "wb") for name in ("worker.log", "beat.log")]  # noqa: SIM115
    processes = [
        subprocess.Popen(
            [*celery, *worker, "--loglevel", "INFO"],
            env=env, cwd=BASE_DIR, stdout=logs[0], stderr=subprocess.STDOUT,
        ),
        subprocess.Popen(
            [*celery, "beat", "--loglevel", "INFO"],
            env=env, cwd=BASE_DIR, stdout=logs[1], stderr=subprocess.STDOUT,
        ),
    ]  # fmt: skip
    yield processes
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
    for log in logs:
        log.close()


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_real_worker_and_beat_turn_health_green_then_red_when_the_worker_dies(
    celery_processes: list[subprocess.Popen], client: Client
) -> None:
    deadline = time.monotonic() + 60
    status, body = health(client)
    while status != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
        status, body = health(client)
    assert status == 200, body
    worker, _beat = celery_processes
    worker.kill()
    worker.wait()
    with override_settings(HEARTBEAT_STALE_AFTER=timedelta(seconds=3)):
        time.sleep(4)
        status, body = health(client)
    assert status == 503
    assert body["checks"]["worker"]["ok"] is False
    assert body["checks"]["beat"]["ok"] is True

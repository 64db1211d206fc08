"""Health of the parts the clinic depends on, for /healthz and the dashboard."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone

from clinic.models import Heartbeat

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def heartbeat_record(*, name: str) -> None:
    """Upsert one heartbeat row; idempotent, safe from several processes."""
    Heartbeat.objects.update_or_create(name=name, defaults={"at": timezone.now()})


def check_database() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means "down"; the reason goes to the log
        logger.warning("Health: database check failed: %s", type(exc).__name__)
        return Check("database", False, "unreachable")
    return Check("database", True, "ok")


def check_broker() -> Check:
    try:
        client = redis.Redis.from_url(
            settings.CELERY_BROKER_URL, socket_connect_timeout=1, socket_timeout=1
        )
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        logger.warning("Health: broker check failed: %s", type(exc).__name__)
        return Check("broker", False, "unreachable")
    return Check("broker", True, "ok")


def check_heartbeats(database_ok: bool) -> list[Check]:
    names = ("worker", "beat")
    if not database_ok:
        return [Check(n, False, "unknown (database down)") for n in names]
    seen = dict(Heartbeat.objects.filter(name__in=names).values_list("name", "at"))
    now = timezone.now()
    checks = []
    for name in names:
        at = seen.get(name)
        if at is None:
            checks.append(Check(name, False, "no heartbeat yet"))
        elif now - at > settings.HEARTBEAT_STALE_AFTER:
            checks.append(
                Check(name, False, f"last heartbeat {int((now - at).total_seconds())} s ago")
            )
        else:
            checks.append(Check(name, True, "ok"))
    return checks


def run_checks() -> list[Check]:
    database = check_database()
    return [database, check_broker(), *check_heartbeats(database.ok)]

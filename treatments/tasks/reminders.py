"""Celery tasks of reminders: thin, no arguments, no patient data in logs."""

from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(name="treatments.reminders_dispatch", ignore_result=True, acks_late=True)
def reminders_dispatch() -> dict[str, int]:
    """Send the reminders that are due (run by beat every minute). Safe to run
    twice at once: rows are claimed with SKIP LOCKED under a lease. Stops
    taking rows at half the task's soft time limit (MESSAGE_TASK_SOFT_TIME_LIMIT,
    seconds; clinic/celery.py), giving the rest to the next tick."""
    from django.conf import settings

    from treatments.services.reminders import reminders_dispatch_due

    result = reminders_dispatch_due(budget_seconds=settings.MESSAGE_TASK_SOFT_TIME_LIMIT / 2)
    counts = {
        "claimed": result.claimed,
        "sent": result.sent,
        "retried": result.retried,
        "failed": result.failed,
        "cancelled": result.cancelled,
        "released": result.released,
    }
    if result.claimed:
        logger.info("Reminders dispatched: %s", counts)
    return counts

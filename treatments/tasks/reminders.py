"""Celery tasks of reminders: thin, no arguments, no patient data in logs."""

from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(name="treatments.reminders_dispatch", ignore_result=True, acks_late=True)
def reminders_dispatch() -> dict[str, int]:
    """Send the reminders that are due (run by beat every minute). Safe to run
    twice at once: each batch claims its rows with SKIP LOCKED."""
    from treatments.services.reminders import reminders_dispatch_due

    result = reminders_dispatch_due()
    counts = {
        "claimed": result.claimed,
        "sent": result.sent,
        "retried": result.retried,
        "failed": result.failed,
        "cancelled": result.cancelled,
    }
    if result.claimed:
        logger.info("Reminders dispatched: %s", counts)
    return counts

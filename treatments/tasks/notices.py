"""Celery task of the contact-change notices: thin, no arguments, no patient data in logs."""

from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(name="treatments.contact_notices_dispatch", ignore_result=True, acks_late=True)
def contact_notices_dispatch() -> dict[str, int]:
    """Tell previous addresses of contact changes (run by beat every minute).
    Safe to run twice at once: rows are claimed with SKIP LOCKED under a
    lease. Its time limits are MESSAGE_TASK_SOFT_TIME_LIMIT and
    MESSAGE_TASK_TIME_LIMIT (seconds; clinic/celery.py)."""
    from treatments.services.contact_notices import contact_notices_dispatch as dispatch

    result = dispatch()
    counts = {"claimed": result.claimed, "sent": result.sent, "failed": result.failed}
    if result.claimed:
        logger.info("Contact change notices: %s", counts)
    return counts

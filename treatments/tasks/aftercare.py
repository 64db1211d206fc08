"""Celery tasks of aftercare sheets: thin, they take a document id (never
patient data) and call a service."""

from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(name="treatments.aftercare_render", ignore_result=True, acks_late=True)
def aftercare_render(document_id: int) -> None:
    """Make (or remake, replacing the file) one aftercare sheet. Safe to run twice."""
    from treatments.models import PatientDocument
    from treatments.services.aftercare import aftercare_render as render_now

    try:
        render_now(document_id=document_id)
    except PatientDocument.DoesNotExist:
        # A message outliving its row (a restored database): nothing to make.
        logger.info("Aftercare document %s no longer exists", document_id)


@shared_task(name="treatments.aftercare_requeue", ignore_result=True)
def aftercare_requeue() -> int:
    """Queue again the sheets whose task was lost (run every minute)."""
    from treatments.services.aftercare import aftercare_requeue_stale

    queued = aftercare_requeue_stale()
    if queued:
        logger.info("Aftercare sheets queued again: %s", queued)
    return queued


@shared_task(name="treatments.link_attempts_prune", ignore_result=True)
def link_attempts_prune() -> int:
    """Forget failed link attempts older than a day (run daily)."""
    from treatments.services.portal import link_attempts_prune as prune

    return prune()

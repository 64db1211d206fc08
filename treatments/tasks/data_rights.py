"""Celery tasks of patients' data rights: thin, they take an export id (never
patient data) and call a service."""

from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(
    name="treatments.subject_access_render",
    ignore_result=True,
    acks_late=True,
    soft_time_limit=600,
    time_limit=660,
)
def subject_access_render(export_id: int) -> None:
    """Make (or remake, replacing the file) one subject-access export. Safe to run twice."""
    from treatments.models import SubjectAccessExport
    from treatments.services.data_rights import subject_access_render as render_now

    try:
        render_now(export_id=export_id)
    except SubjectAccessExport.DoesNotExist:
        logger.info("Subject access export %s no longer exists", export_id)


@shared_task(name="treatments.subject_access_requeue", ignore_result=True)
def subject_access_requeue() -> int:
    """Queue again the exports whose task was lost (run every minute)."""
    from treatments.services.data_rights import subject_access_requeue_due

    return subject_access_requeue_due()


@shared_task(name="treatments.subject_access_purge", ignore_result=True)
def subject_access_purge() -> int:
    """Delete the files of expired exports (run hourly)."""
    from treatments.services.data_rights import subject_access_purge_expired

    return subject_access_purge_expired()


@shared_task(name="treatments.retention_anonymise", ignore_result=True)
def retention_anonymise() -> dict[str, int]:
    """Anonymise the records whose erasure was asked for and whose retention
    period has ended (run daily)."""
    from treatments.services.data_rights import retention_anonymise_due

    counts = retention_anonymise_due()
    if counts["anonymised"]:
        logger.info("Records anonymised at the end of their retention: %s", counts["anonymised"])
    return counts

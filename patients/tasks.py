"""Celery tasks of the patient register: thin, they take an id (never
patient data) and call a service."""

from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(name="patients.import_run", ignore_result=True, acks_late=True)
def patient_import_run(job_id: int) -> None:
    """Run one confirmed patient import, all rows or none. Safe to run twice:
    a second run finds the import claimed or finished and does nothing."""
    from patients.imports import patient_import_run as run

    job = run(job_id=job_id)
    if job is not None:
        logger.info("Patient import %s: %s, %s patients", job_id, job.status, job.imported_count)

"""Background tasks of the clinic app."""

from celery import shared_task


@shared_task(name="clinic.tasks.heartbeat", ignore_result=True)
def heartbeat() -> None:
    """Record that a worker is consuming tasks (see clinic/celery.py)."""
    from clinic.health import heartbeat_record

    heartbeat_record(name="worker")


@shared_task(name="clinic.tasks.audit_seal", ignore_result=True)
def audit_seal() -> None:
    """Link the audit events written since the last run into the hash chain."""
    from clinic.auditchain import audit_seal as seal

    while seal():
        pass

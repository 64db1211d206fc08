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


@shared_task(name="clinic.tasks.sign_in_mail_send", ignore_result=True, acks_late=True)
def sign_in_mail_send(request_id: int) -> None:
    """Send (or not, for an unknown address) one password-reset or portal
    sign-in email asked for on a public page. Takes the row id; safe to run twice."""
    from clinic.sign_in_mail import sign_in_mail_send as send

    send(request_id=request_id)


@shared_task(name="clinic.tasks.sign_in_mail_requeue", ignore_result=True)
def sign_in_mail_requeue() -> int:
    """Queue again the sign-in emails whose task was lost (run every minute)."""
    from clinic.sign_in_mail import sign_in_mail_requeue_stale

    return sign_in_mail_requeue_stale()

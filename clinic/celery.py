"""The Celery application and the whole beat schedule.

Every periodic task is declared here, with when and why. Tasks themselves are
thin: they take ids and call a service.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import beat_init, before_task_publish

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clinic.settings")

app = Celery("clinic")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


class _TimeLimits:
    """Per-task time limits (a Celery task annotation), read from the settings
    when the worker binds each task: every other task has the defaults
    CELERY_TASK_SOFT_TIME_LIMIT / CELERY_TASK_TIME_LIMIT, generous enough for
    the PDF renders."""

    # The message dispatch ticks call mail servers and the SMS provider. A
    # tick stops taking rows at half its soft limit; the soft limit stops a
    # send that is still waiting, and the hard one (shorter than the claim's
    # lease, MESSAGE_CLAIM_LEASE) kills a worker that ignores it.
    MESSAGE_TASKS = frozenset(
        {"treatments.reminders_dispatch", "treatments.contact_notices_dispatch"}
    )

    def annotate(self, task: Any) -> dict[str, int] | None:
        if task.name not in self.MESSAGE_TASKS:
            return None
        from django.conf import settings

        return {
            "soft_time_limit": settings.MESSAGE_TASK_SOFT_TIME_LIMIT,
            "time_limit": settings.MESSAGE_TASK_TIME_LIMIT,
        }


app.conf.task_annotations = (_TimeLimits(),)

HEARTBEAT_TASK = "clinic.tasks.heartbeat"
# Every 30 s by default; tests shorten it to see a heartbeat quickly.
HEARTBEAT_EVERY_SECONDS = float(os.environ.get("HEARTBEAT_INTERVAL_SECONDS", "30"))

app.conf.beat_schedule = {
    # Every 30 s: proves beat is scheduling and a worker is consuming; read by /healthz.
    "heartbeat": {
        "task": HEARTBEAT_TASK,
        "schedule": HEARTBEAT_EVERY_SECONDS,
        # A heartbeat that waited longer than its period is stale: drop it.
        "options": {"expires": HEARTBEAT_EVERY_SECONDS},
    },
    # Every minute: link the new audit events into the hash chain (clinic/auditchain.py).
    "audit-seal": {
        "task": "clinic.tasks.audit_seal",
        "schedule": 60.0,
        "options": {"expires": 60},
    },
    # Every minute: signed-consent PDFs still queued after 2 minutes lost their task
    # (broker down at signing, worker died); queue them again.
    "consent-pdf-requeue": {
        "task": "consent.tasks.consent_pdf_requeue",
        "schedule": 60.0,
        "options": {"expires": 60},
    },
    # Every minute: send the reminders that are due (rows planned in PostgreSQL
    # with their booking). A tick that waited a minute is dropped: the next one
    # finds the same rows. Tests shorten the period to see ticks quickly.
    # Every minute: aftercare sheets still queued after 2 minutes lost their task
    # (broker down when the session was completed, worker died); queue them again.
    "aftercare-requeue": {
        "task": "treatments.aftercare_requeue",
        "schedule": 60.0,
        "options": {"expires": 60},
    },
    # Every minute: password-reset and portal sign-in emails asked for more than
    # 2 minutes ago and still owed lost their task (broker down); queue them again.
    "sign-in-mail-requeue": {
        "task": "clinic.tasks.sign_in_mail_requeue",
        "schedule": 60.0,
        "options": {"expires": 60},
    },
    # Daily: forget failed link attempts older than a day (they only serve the
    # 10-minute rate limit); no patient data is in them.
    "link-attempts-prune": {
        "task": "treatments.link_attempts_prune",
        "schedule": 24 * 3600.0,
        "options": {"expires": 3600},
    },
    # Every minute: tell previous addresses that a patient's email or mobile
    # number changed (rows owed in PostgreSQL, patients.contact_changes).
    "contact-notices-dispatch": {
        "task": "treatments.contact_notices_dispatch",
        "schedule": 60.0,
        "options": {"expires": 60},
    },
    # Every minute: subject-access exports still queued after 2 minutes lost
    # their task (broker down at the request, worker died); queue them again.
    "subject-access-requeue": {
        "task": "treatments.subject_access_requeue",
        "schedule": 60.0,
        "options": {"expires": 60},
    },
    # Hourly: delete the ZIPs of subject-access exports past their 7 days
    # (a whole record should not linger on the server); the rows stay.
    "subject-access-purge": {
        "task": "treatments.subject_access_purge",
        "schedule": 3600.0,
        "options": {"expires": 3600},
    },
    # Daily: anonymise the records whose erasure was asked for and whose
    # retention period has ended (UK GDPR Art. 5(1)(e), 17).
    "retention-anonymise": {
        "task": "treatments.retention_anonymise",
        "schedule": 24 * 3600.0,
        "options": {"expires": 3600},
    },
    "reminders-dispatch": {
        "task": "treatments.reminders_dispatch",
        "schedule": float(os.environ.get("REMINDER_DISPATCH_INTERVAL_SECONDS", "60")),
        "options": {"expires": float(os.environ.get("REMINDER_DISPATCH_INTERVAL_SECONDS", "60"))},
    },
}


@before_task_publish.connect
def _beat_heartbeat(sender: str | None = None, **kwargs: Any) -> None:
    """Beat is alive when it publishes the heartbeat, whether or not a worker runs it."""
    if sender != HEARTBEAT_TASK:
        return
    from clinic.health import heartbeat_record

    heartbeat_record(name="beat")


@beat_init.connect
def _first_heartbeat(sender: Any = None, **kwargs: Any) -> None:
    """Send a heartbeat as soon as beat starts, not one period later."""
    app.send_task(HEARTBEAT_TASK, expires=HEARTBEAT_EVERY_SECONDS)

"""Celery tasks of the treatments app (found by autodiscovery): reminders,
aftercare sheets and contact-change notices, each in its own module."""

from treatments.aftercare_tasks import *  # noqa: F403
from treatments.notice_tasks import *  # noqa: F403
from treatments.reminder_tasks import *  # noqa: F403

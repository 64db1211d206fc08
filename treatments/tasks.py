"""Celery tasks of the treatments app (found by autodiscovery): reminders and
aftercare sheets, each in its own module."""

from treatments.aftercare_tasks import *  # noqa: F403
from treatments.reminder_tasks import *  # noqa: F403

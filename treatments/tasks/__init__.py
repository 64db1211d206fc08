"""Celery tasks of the treatments app (found by autodiscovery): reminders,
aftercare sheets and contact-change notices, each in its own module."""

from treatments.tasks.aftercare import *  # noqa: F403
from treatments.tasks.data_rights import *  # noqa: F403
from treatments.tasks.notices import *  # noqa: F403
from treatments.tasks.reminders import *  # noqa: F403

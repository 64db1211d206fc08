"""The clinic project package: settings, URLs, Celery app, staff accounts, audit."""

from clinic.celery import app as celery_app

__all__ = ["celery_app"]

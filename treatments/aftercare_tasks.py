"""Celery tasks (filled in with their feature)."""

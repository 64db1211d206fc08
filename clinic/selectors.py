"""Reads of the clinic app that cross relations."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.db.models import QuerySet

from clinic.localtime import local_instant
from clinic.models import AuditEvent


def local_day_start(day: date) -> datetime | None:
    """Midnight at the start of `day` (a clinic-local date), as an aware datetime;
    None when that instant, or the day after it, is past what a datetime can hold
    (the first and last days of the calendar): a filter from or to such a day
    leaves that end open."""
    try:
        return local_instant(day, time.min)
    except OverflowError:
        return None


def audit_events_filtered(
    *,
    user: str = "",
    action: str = "",
    since: date | None = None,
    until: date | None = None,
) -> QuerySet[AuditEvent]:
    """Audit events, newest first, filtered by username, action and clinic-local
    dates (`since` and `until` both included). A date at the very edge of the
    calendar (0001-01-01, 9999-12-31) leaves that end of the range open."""
    events = AuditEvent.objects.all()
    if user:
        events = events.filter(actor_label__iexact=user)
    if action:
        events = events.filter(action=action)
    if since and (start := local_day_start(since)) is not None:
        events = events.filter(at__gte=start)
    if until and until < date.max and (end := local_day_start(until + timedelta(days=1))):
        events = events.filter(at__lt=end)
    return events.order_by("-at", "-id")

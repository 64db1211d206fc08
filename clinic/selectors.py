"""Reads of the clinic app that cross relations."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.db.models import QuerySet
from django.utils import timezone

from clinic.models import AuditEvent


def audit_events_filtered(
    *,
    user: str = "",
    action: str = "",
    since: date | None = None,
    until: date | None = None,
) -> QuerySet[AuditEvent]:
    """Audit events, newest first, filtered by username, action and clinic-local dates."""
    events = AuditEvent.objects.all()
    if user:
        events = events.filter(actor_label__iexact=user)
    if action:
        events = events.filter(action=action)
    zone = timezone.get_current_timezone()
    if since:
        events = events.filter(at__gte=datetime.combine(since, time.min, tzinfo=zone))
    if until:
        events = events.filter(
            at__lt=datetime.combine(until + timedelta(days=1), time.min, tzinfo=zone)
        )
    return events.order_by("-at", "-id")

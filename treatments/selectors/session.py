"""Reads for session records: the record of a booking (with its adverse
events and their follow-ups), whether an adverse event is resolved, what to
pre-fill a new session with, and a course's clinical summary."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.http import Http404
from django.utils import timezone

from clinic.models import User
from treatments.models import (
    AdverseEvent,
    AdverseEventFollowUp,
    Batch,
    Booking,
    BookingStatus,
    CautionAcknowledgement,
    CocktailLine,
    SessionAmendment,
    SessionRecord,
    TreatmentCourse,
)
from treatments.selectors.booking import booking_get_for_user, bookings_visible_to


def session_booking_get(*, user: User, booking_uuid: uuid.UUID) -> Booking:
    """The booking whose session is recorded, if this user may see its patient; 404 otherwise."""
    booking = booking_get_for_user(user=user, booking_uuid=booking_uuid)
    return booking


def _record_details() -> list[Any]:
    return [
        Prefetch(
            "lines",
            queryset=CocktailLine.objects.select_related("batch__product").order_by("id"),
        ),
        Prefetch(
            "adverse_events",
            queryset=AdverseEvent.objects.select_related("recorded_by")
            .prefetch_related(follow_ups_prefetch())
            .order_by("onset", "id"),
        ),
        Prefetch(
            "caution_acknowledgements",
            queryset=CautionAcknowledgement.objects.select_related("acknowledged_by").order_by(
                "id"
            ),
        ),
        Prefetch(
            "amendments",
            queryset=SessionAmendment.objects.select_related("by").order_by("at", "id"),
        ),
    ]


def follow_ups_prefetch() -> Prefetch[Any]:
    """An adverse event's follow-ups with who wrote them, oldest first."""
    return Prefetch(
        "follow_ups",
        queryset=AdverseEventFollowUp.objects.select_related("recorded_by").order_by(
            "recorded_at", "id"
        ),
    )


@dataclass(frozen=True)
class Resolution:
    """When an adverse event was marked resolved, and by whom: the day given
    when it was recorded (`follow_up` None), or its resolving follow-up."""

    day: date  # the clinic's date
    by: User
    at: datetime | None  # the resolving follow-up's moment (aware)
    follow_up: AdverseEventFollowUp | None

    @property
    def by_name(self) -> str:
        return self.by.get_full_name() or self.by.get_username()


def adverse_event_resolution(
    event: AdverseEvent, *, follow_ups: Iterable[AdverseEventFollowUp] | None = None
) -> Resolution | None:
    """How `event` was resolved, or None while it is open. `follow_ups` are
    its follow-ups (None: `event.follow_ups.all()`, prefetched for a list by
    `follow_ups_prefetch`); `event.recorded_by` is read when it was recorded
    already resolved. No query when both are loaded."""
    if event.resolved_on is not None:
        return Resolution(day=event.resolved_on, by=event.recorded_by, at=None, follow_up=None)
    for follow_up in event.follow_ups.all() if follow_ups is None else follow_ups:
        if follow_up.resolved:
            return Resolution(
                day=timezone.localdate(follow_up.recorded_at),
                by=follow_up.recorded_by,
                at=follow_up.recorded_at,
                follow_up=follow_up,
            )
    return None


def session_record_of(*, booking: Booking) -> SessionRecord | None:
    """The completed record of this booking with its lines, events and amendments."""
    return (
        SessionRecord.objects.filter(booking=booking)
        .select_related("completed_by", "day_of_check__asked_by")
        .prefetch_related(*_record_details())
        .first()
    )


def session_get_for_user(*, user: User, session_uuid: uuid.UUID) -> SessionRecord:
    """A session record whose patient this user may see; 404 otherwise."""
    try:
        return SessionRecord.objects.select_related(
            "booking__patient", "booking__protocol", "booking__practitioner"
        ).get(uuid=session_uuid, booking__in=bookings_visible_to(user))
    except SessionRecord.DoesNotExist:
        raise Http404 from None


def _nearest_expiry(usable: Iterable[Batch]) -> dict[int, Batch]:
    """Per product, the usable batch that expires first (use the oldest stock first)."""
    best: dict[int, Batch] = {}
    for batch in usable:
        current = best.get(batch.product_id)
        if current is None or (batch.expiry_date, batch.lot_number) < (
            current.expiry_date,
            current.lot_number,
        ):
            best[batch.product_id] = batch
    return best


def previous_session(*, booking: Booking) -> SessionRecord | None:
    """The last completed session of the same course before this booking."""
    if booking.course_id is None:
        return None
    return (
        SessionRecord.objects.filter(
            booking__course_id=booking.course_id,
            booking__status=BookingStatus.COMPLETED,
            booking__starts_at__lt=booking.starts_at,
        )
        .exclude(booking=booking)
        .prefetch_related(
            Prefetch("lines", queryset=CocktailLine.objects.select_related("batch").order_by("id"))
        )
        .order_by("-booking__starts_at", "-id")
        .first()
    )


def prefill_lines(*, booking: Booking, usable: list[Batch]) -> list[dict[str, Any]]:
    """Initial cocktail lines: the previous session of the course, else the
    protocol's default cocktail. A batch no longer usable is swapped for the
    usable batch of the same product that expires first (or left to choose)."""
    nearest = _nearest_expiry(usable)
    usable_ids = {b.pk for b in usable}
    previous = previous_session(booking=booking)
    if previous is not None:
        initial = []
        for line in previous.lines.all():
            batch = (
                line.batch if line.batch_id in usable_ids else nearest.get(line.batch.product_id)
            )
            initial.append(
                {
                    "batch": batch.uuid if batch else None,
                    "amount": line.amount,
                    "unit": line.unit,
                    "area": line.area,
                    "technique": line.technique,
                    "depth_mm": line.depth_mm,
                    "needle_gauge": line.needle_gauge,
                    "device": line.device,
                }
            )
        if initial:
            return initial
    area = booking.protocol.default_areas[0] if booking.protocol.default_areas else ""
    initial = []
    for default in booking.protocol.cocktail.all():
        batch = nearest.get(default.product_id)
        initial.append(
            {
                "batch": batch.uuid if batch else None,
                "amount": default.amount,
                "unit": default.unit,
                "area": area,
            }
        )
    return initial


# --- A course's clinical summary ------------------------------------------------------


@dataclass(frozen=True)
class SessionDone:
    booking: Booking
    record: SessionRecord


@dataclass(frozen=True)
class CourseClinicalSummary:
    planned: int
    sessions: list[SessionDone]
    adverse_events: list[AdverseEvent]

    @property
    def done(self) -> int:
        return len(self.sessions)


def course_clinical_summary(*, course: TreatmentCourse) -> CourseClinicalSummary:
    """Sessions done (with their dates) and adverse events so far: two queries."""
    records: QuerySet[SessionRecord] = (
        SessionRecord.objects.filter(booking__course=course)
        .select_related("booking__practitioner", "completed_by")
        .order_by("booking__starts_at", "id")
    )
    sessions = [SessionDone(booking=r.booking, record=r) for r in records]
    events = list(
        AdverseEvent.objects.filter(session__booking__course=course)
        .select_related("session__booking")
        .order_by("onset", "id")
    )
    return CourseClinicalSummary(
        planned=course.planned_sessions, sessions=sessions, adverse_events=events
    )

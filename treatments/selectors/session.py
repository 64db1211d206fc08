"""Reads for session records: the record of a booking (with its adverse
events and their follow-ups), whether an adverse event is resolved, what to
pre-fill a new session with (the last session's lines and their map), what
each area of a session received, and a course's clinical summary."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db.models import Case, Count, IntegerField, Prefetch, QuerySet, Sum, Value, When
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from clinic import dates
from clinic.localtime import to_local
from clinic.models import User
from patients.models import TreatmentArea
from treatments.models import (
    AdverseEvent,
    AdverseEventFollowUp,
    Batch,
    Booking,
    BookingStatus,
    CautionAcknowledgement,
    CocktailLine,
    InjectionPoint,
    SessionAmendment,
    SessionRecord,
    TreatmentCourse,
)
from treatments.selectors.booking import booking_get_for_user, bookings_visible_to


def session_booking_get(*, user: User, booking_uuid: uuid.UUID) -> Booking:
    """The booking whose session is recorded, if this user may see its patient; 404 otherwise."""
    booking = booking_get_for_user(user=user, booking_uuid=booking_uuid)
    return booking


def points_prefetch() -> Prefetch[Any]:
    """A cocktail line's injection points, in the order tapped."""
    return Prefetch("points", queryset=InjectionPoint.objects.order_by("position"))


def _record_details() -> list[Any]:
    return [
        Prefetch(
            "lines",
            queryset=CocktailLine.objects.select_related("batch__product")
            .prefetch_related(points_prefetch())
            .order_by("id"),
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
    """The session the next one starts from: the last completed session of
    the same course before this booking, else the patient's last completed
    session before it (another course, a one-off), with its lines and their
    injection points. One query for the record, two for its lines and points."""
    rows = SessionRecord.objects.filter(
        booking__patient_id=booking.patient_id,
        booking__status=BookingStatus.COMPLETED,
        booking__starts_at__lt=booking.starts_at,
    ).exclude(booking=booking)
    if booking.course_id is not None:
        same_course = Case(
            When(booking__course_id=booking.course_id, then=Value(0)),
            default=Value(1),
            output_field=IntegerField(),
        )
        rows = rows.alias(same_course=same_course).order_by(
            "same_course", "-booking__starts_at", "-id"
        )
    else:
        rows = rows.order_by("-booking__starts_at", "-id")
    return (
        rows.select_related("booking")
        .prefetch_related(
            Prefetch(
                "lines",
                queryset=CocktailLine.objects.select_related("batch")
                .prefetch_related(points_prefetch())
                .order_by("id"),
            )
        )
        .first()
    )


def points_as_field(points: Iterable[InjectionPoint]) -> str:
    """Points as the session form's hidden field holds them (JSON of
    [view, x, y]); "" for none."""
    listed = [[p.view, float(p.x), float(p.y)] for p in points]
    return json.dumps(listed, separators=(",", ":")) if listed else ""


# How a line is given: what a session's new lines start with.
HOW_GIVEN = ("technique", "depth_mm", "needle_gauge", "device")


@dataclass(frozen=True)
class LineDefaults:
    """How a session's new cocktail lines start (`values`: technique,
    depth_mm in mm, needle_gauge, device; only those known), and where from:
    `session_day`, the local day of the patient's earlier session on the
    protocol they were taken from, else `from_protocol` when the protocol's
    own defaults gave them; neither when nothing is known."""

    values: dict[str, Any]
    session_day: date | None = None
    from_protocol: bool = False

    def source(self) -> str:
        """Where the values come from, as the form says it ("" when none)."""
        if self.session_day is not None:
            return _("from the session on %(day)s") % {"day": dates.day(self.session_day)}
        if self.from_protocol:
            return _("from the protocol")
        return ""


def line_defaults(*, booking: Booking) -> LineDefaults:
    """How the new cocktail lines of `booking`'s session start, in this order:
    the last line of the patient's last completed session on the booking's
    protocol before it (its technique, depth in mm, needle gauge and device);
    else the protocol's own defaults, those it sets (Protocol.default_*);
    else nothing. One query; `booking.protocol` is read as loaded. The order
    is issue 15's: the patient's own last way first, the protocol's usual
    way for a first session."""
    last = (
        CocktailLine.objects.filter(
            session__booking__patient_id=booking.patient_id,
            session__booking__protocol_id=booking.protocol_id,
            session__booking__status=BookingStatus.COMPLETED,
            session__booking__starts_at__lt=booking.starts_at,
        )
        .exclude(session__booking_id=booking.pk)
        .order_by("-session__booking__starts_at", "-session_id", "-id")
        .values(*HOW_GIVEN, "session__booking__starts_at")
        .first()
    )
    if last is not None:
        started = last.pop("session__booking__starts_at")
        return LineDefaults(values=last, session_day=to_local(started).date())
    protocol = booking.protocol
    known = {
        "technique": protocol.default_technique,
        "depth_mm": protocol.default_depth_mm,
        "needle_gauge": protocol.default_needle_gauge,
        "device": protocol.default_device,
    }
    values = {name: value for name, value in known.items() if value not in ("", None)}
    return LineDefaults(values=values, from_protocol=bool(values))


@dataclass(frozen=True)
class SessionPrefill:
    """What a new session's form starts with: `lines`, the initial cocktail
    lines; `lines_day`, the local day of the earlier session they were copied
    from (None: the protocol's cocktail, or nothing); `new_line`, how lines
    added start."""

    lines: list[dict[str, Any]]
    lines_day: date | None
    new_line: LineDefaults


def session_prefill(*, booking: Booking, usable: list[Batch]) -> SessionPrefill:
    """The session form's starting point for `booking`: the lines of the
    previous session (`previous_session`: of the course, else the patient's
    last) with the points tapped for each; else the protocol's default
    cocktail, each line given as `line_defaults` says (for a first session,
    the protocol's defaults). A batch no longer usable is swapped for the
    usable batch of the same product that expires first (or left to choose).
    `usable`: the batches usable today. Four queries, whatever the history."""
    nearest = _nearest_expiry(usable)
    usable_ids = {b.pk for b in usable}
    new_line = line_defaults(booking=booking)
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
                    "points": points_as_field(line.points.all()),
                }
            )
        if initial:
            return SessionPrefill(
                lines=initial,
                lines_day=to_local(previous.booking.starts_at).date(),
                new_line=new_line,
            )
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
                **new_line.values,
            }
        )
    return SessionPrefill(lines=initial, lines_day=None, new_line=new_line)


@dataclass
class AreaDoses:
    """What one area received at a session: per ingredient, the amount of
    the products containing it (`(ingredient name, amount, unit)`, by name),
    and the number of injection points tapped there."""

    area: str
    doses: list[tuple[str, Decimal, str]] = field(default_factory=list)
    points: int = 0


def session_area_doses(*, session: SessionRecord) -> list[AreaDoses]:
    """Per treated area of `session` (in `TreatmentArea` order), the amount
    given of each ingredient: the sum of the amounts (mL or mg, per the
    line's unit) of the session's lines in that area whose product contains
    it (the catalogue holds a product's ingredients, not their share of
    it), with the points tapped there. For reports and the next session's
    form. Two queries."""
    rows = (
        CocktailLine.objects.filter(session=session)
        .values("area", "unit", "batch__product__ingredients__name")
        .annotate(total=Sum("amount"))
        .order_by("area", "batch__product__ingredients__name", "unit")
    )
    found: dict[str, AreaDoses] = {}
    for row in rows:
        name = row["batch__product__ingredients__name"]
        area = found.setdefault(row["area"], AreaDoses(area=row["area"]))
        if name is not None:
            area.doses.append((name, row["total"], row["unit"]))
    counts = (
        InjectionPoint.objects.filter(line__session=session)
        .values("line__area")
        .annotate(n=Count("id"))
        .order_by()
    )
    for count in counts:
        found.setdefault(count["line__area"], AreaDoses(area=count["line__area"])).points = count[
            "n"
        ]
    order = {code: n for n, code in enumerate(TreatmentArea.values)}
    return sorted(found.values(), key=lambda a: order.get(a.area, len(order)))


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

"""State changes of session records: completing a session behind the safety
gates (with where on the diagram each line was given), amending a completed
record, recording a later adverse event and following it up until it
resolves.

A session record, its cocktail lines and their injection points, adverse
events, their follow-ups and amendments are written once and never changed
(database triggers); a correction is a new amendment, and how an adverse
event went on is a new follow-up, each naming who wrote it and when.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from clinic import dates
from clinic.audit import audit_log
from clinic.concurrency import (
    StaleEditError,
    submission_check,
    submission_marks,
    version_bump,
    version_check,
)
from clinic.models import AuditAction, User
from clinic.refusals import RefusalKind, RefusedError
from patients.locking import patient_hold, patient_row_lock
from treatments.gates import GateFailure, area_labels, completion_opens_at, session_gates
from treatments.models import (
    DAY_OF_FIELDS,
    MAX_POINTS_PER_LINE,
    AdverseEvent,
    AdverseEventFollowUp,
    Batch,
    Booking,
    BookingEvent,
    BookingEventKind,
    BookingStatus,
    CautionAcknowledgement,
    CocktailLine,
    DayOfCheck,
    InjectionPoint,
    MapView,
    Product,
    SessionAmendment,
    SessionRecord,
    Technique,
)
from treatments.needle_map import (
    VIEW_BY_CODE,
    point_in_area,
    technique_takes_points,
    views_of_area,
)
from treatments.selectors.session import adverse_event_resolution
from treatments.services.aftercare import aftercare_queue
from treatments.services.course import course_session_completed
from treatments.services.reminders import reminders_plan_course


@dataclass(frozen=True)
class PointInput:
    """A point tapped on the diagram: the view (`MapView`) and its place as
    a fraction of the view's width (`x`) and height (`y`), 0 to 1 from the
    top left."""

    view: str
    x: Decimal
    y: Decimal


@dataclass(frozen=True)
class LineInput:
    """One product of the cocktail as typed by the practitioner, with the
    points tapped for it on the diagram, in the order tapped. `product` is
    the product the practitioner chose for the line (None: not said, the
    batch's own); its batch must be one of it."""

    batch: Batch
    amount: Decimal
    unit: str
    area: str
    technique: str
    depth_mm: Decimal
    needle_gauge: int
    device: str
    points: tuple[PointInput, ...] = ()
    product: Product | None = None


@dataclass(frozen=True)
class AdverseEventInput:
    effect: str
    severity: str
    onset: datetime
    resolved_on: date | None = None
    follow_up_needed: bool = False
    notes: str = ""


class SessionRefusedError(RefusedError):
    """A session cannot be completed (or changed) as asked: what was sent is
    incomplete or wrong (an empty cocktail, an amount out of range)."""

    code = "session_refused"

    def __init__(
        self,
        message: object = None,
        *,
        field: str | None = None,
        code: str | None = None,
        kind: RefusalKind | None = None,
        line: int | None = None,
        event: int | None = None,
    ) -> None:
        super().__init__(message, field=field, code=code, kind=kind)
        # Which of the lines or adverse events given (0-based) `field` is
        # of, so the page puts the sentence beside that field.
        self.line = line
        self.event = event


class SessionStateError(SessionRefusedError):
    """The booking is cancelled, did not come, or is already completed."""

    code = "session_state"
    kind = RefusalKind.CONFLICT


class GatesFailedError(SessionRefusedError):
    """One or more safety gates block completion; each failure has its sentence."""

    def __init__(self, failures: Sequence[GateFailure]) -> None:
        self.failures = list(failures)
        super().__init__(
            " ".join(f.sentence for f in self.failures),
            code="gates_failed",
            kind=RefusalKind.CONFLICT,
        )


STATE_SENTENCES = {
    BookingStatus.CANCELLED: gettext_lazy(
        "This booking was cancelled: a session cannot be recorded against it."
    ),
    BookingStatus.NO_SHOW: gettext_lazy(
        "The patient did not come to this booking: a session cannot be recorded against it."
    ),
    BookingStatus.COMPLETED: gettext_lazy(
        "This session is already completed: add an amendment instead."
    ),
}


def state_sentence(status: str) -> str:
    """Why a booking in `status` cannot be recorded ("" when it can)."""
    if status in (BookingStatus.BOOKED, BookingStatus.ARRIVED):
        return ""
    return str(STATE_SENTENCES[BookingStatus(status)])


def _check_adverse(event: AdverseEventInput, *, at: datetime, session_start: datetime) -> None:
    """An adverse event starts during or after its session and not in the
    future; it resolves after it started and not later than today."""
    if event.onset > at:
        raise ValidationError(
            {"onset": _("The start of an adverse event cannot be in the future.")}
        )
    if event.onset < session_start:
        raise ValidationError({"onset": _("It cannot start before the session did.")})
    if event.resolved_on is not None and event.resolved_on < timezone.localdate(event.onset):
        raise ValidationError({"resolved_on": _("It cannot resolve before it started.")})
    if event.resolved_on is not None and event.resolved_on > timezone.localdate(at):
        raise ValidationError(
            {"resolved_on": _("It cannot have resolved later than today: leave it empty.")}
        )


def _check_points(lines: Sequence[LineInput]) -> None:
    """Each line's points: at most MAX_POINTS_PER_LINE, on a known view that
    shows the line's area, inside it (0 to 1). The form says the same first;
    this holds for every caller."""
    for number, line in enumerate(lines, start=1):
        if len(line.points) > MAX_POINTS_PER_LINE:
            raise SessionRefusedError(
                _("Line %(number)s has %(count)s points: at most %(most)s a line.")
                % {"number": number, "count": len(line.points), "most": MAX_POINTS_PER_LINE},
                field="points",
                line=number - 1,
            )
        if line.points and not technique_takes_points(line.technique):
            raise SessionRefusedError(
                _(
                    "Line %(number)s has points on the diagram, but %(technique)s covers an "
                    "area: clear its points, or choose papules or point by point."
                )
                % {"number": number, "technique": Technique(line.technique).label.lower()},
                field="points",
                line=number - 1,
            )
        shown_on = views_of_area(line.area)
        for point in line.points:
            if point.view not in MapView.values:
                raise SessionRefusedError(
                    _("Line %(number)s has a point on a view the diagram does not have.")
                    % {"number": number},
                    field="points",
                    line=number - 1,
                )
            if not (0 <= point.x <= 1 and 0 <= point.y <= 1):
                raise SessionRefusedError(
                    _("Line %(number)s has a point outside the diagram.") % {"number": number},
                    field="points",
                    line=number - 1,
                )
            if point.view not in shown_on:
                raise SessionRefusedError(
                    _(
                        "Line %(number)s has points on the diagram's “%(view)s” view, "
                        "which does not show its area (%(area)s): clear its points on the "
                        "diagram, or choose the area again."
                    )
                    % {
                        "number": number,
                        "view": VIEW_BY_CODE[point.view].label,
                        "area": area_labels([line.area]),
                    },
                    field="points",
                    line=number - 1,
                )
            if not point_in_area(line.area, point.view, point.x, point.y):
                raise SessionRefusedError(
                    _(
                        "Line %(number)s has a point outside its area (%(area)s) on the "
                        "diagram: clear its points and tap them again on the area."
                    )
                    % {"number": number, "area": area_labels([line.area])},
                    field="points",
                    line=number - 1,
                )


def _check_products(lines: Sequence[LineInput], batches: Mapping[int, Batch]) -> None:
    """Each line's batch is a batch of the product chosen for the line: a lot
    of another product recorded by a slip of the list would send a recall to
    the wrong patients. `batches` are the lines' batches as read under lock."""
    for number, line in enumerate(lines, start=1):
        batch = batches[line.batch.pk]
        if line.product is not None and batch.product_id != line.product.pk:
            raise SessionRefusedError(
                _(
                    "Line %(number)s: lot %(lot)s is a batch of %(other)s, not of %(product)s. "
                    "Choose a batch of %(product)s, or change the product."
                )
                % {
                    "number": number,
                    "lot": batch.lot_number,
                    "other": batch.product.name,
                    "product": line.product.name,
                },
                field="batch",
                code="batch_of_another_product",
                line=number - 1,
            )


def _save_event(
    *, session: SessionRecord, event: AdverseEventInput, recorded_by: User
) -> AdverseEvent:
    row = AdverseEvent(
        session=session,
        effect=event.effect,
        severity=event.severity,
        onset=event.onset,
        resolved_on=event.resolved_on,
        follow_up_needed=event.follow_up_needed,
        notes=event.notes.strip(),
        recorded_by=recorded_by,
    )
    row.full_clean()
    row.save()
    return row


def _record_event(booking: Booking, kind: str, by: User) -> None:
    BookingEvent.objects.create(booking=booking, kind=kind, by=by)


@transaction.atomic
def session_complete(
    *,
    booking: Booking,
    completed_by: User,
    lines: Sequence[LineInput],
    adverse_events: Sequence[AdverseEventInput],
    numbing_cream: bool,
    immediate_reactions: str,
    notes: str,
    day_of: Mapping[str, bool | None] | None,
    cautions_acknowledged: Mapping[str, Collection[str]],
    at: datetime,
    expected_version: int | None = None,
    submission_token: uuid.UUID | None = None,
) -> SessionRecord:
    """Record what was given and complete the booking, if every gate passes.

    `expected_version` is the booking's version the session page showed
    (None: not from a page); `submission_token` the page's one-time token.

    `day_of` holds the patient's answers to the day-of-treatment questions
    (each field of `DAY_OF_QUESTIONS`: True, False, or None if not asked);
    each line's `points` are written with it, in the same transaction;
    `cautions_acknowledged` the history's cautions the practitioner ticked,
    each code with the area codes shown beside it when ticked (gate 7 counts
    a tick only for exactly the areas the caution concerns in `lines`:
    `gates.caution_areas`); `at` (aware) is now.

    The booking row is locked first, so two practitioners completing the same
    session at once record it once (the booking's version is raised, so a
    move opened before is refused); then the rows of the batches used, so a
    recall made at the same moment either waits for this completion or blocks
    it. Raises `AlreadySubmittedError` (clinic.concurrency, with `.obj`, the
    session record) when this very page was already saved (sent twice): one
    session is recorded. Raises `StaleEditError` when the booking changed
    since the page was opened (moved, its practitioner or room changed:
    "stale_edit" with what changed, who and when; being marked arrived is no
    change that matters here). Raises GatesFailedError (409) with every
    failing gate, SessionStateError (409) when the booking is cancelled,
    missed or completed, and SessionRefusedError (400) for an
    acknowledgement of a caution that does not apply to this session, a
    line whose batch is not one of the line's product (field "batch"), a
    line with more than MAX_POINTS_PER_LINE points, or a point outside the
    diagram or on a view that does not show its line's area (field
    "points"), an adverse event starting in the future or before the
    session, or resolving before it started or after today (fields "onset",
    "resolved_on"); a refusal about one line or event names it (`line`,
    `event`: its index in `lines`, `adverse_events`). Nothing is written
    then.
    """
    # First the token: a second post of the same page waits here for the first.
    submission_check(SessionRecord, submission_token, by=completed_by)
    # The patient held, then the booking alone, then read with what it points
    # at (patients.locking): a merge of the record finishes first, or waits.
    patient_row_lock(Booking, booking.pk, patient_id=booking.patient_id)
    current = Booking.objects.select_related("patient", "protocol__consent_form", "course").get(
        pk=booking.pk
    )
    sentence = state_sentence(current.status)
    if sentence:
        raise SessionStateError(sentence)
    _booking_check(current, expected_version)
    if not lines:
        raise SessionRefusedError(_("Record at least one cocktail line."))
    _check_points(lines)
    for index, event in enumerate(adverse_events):
        try:
            _check_adverse(event, at=at, session_start=completion_opens_at(current.starts_at))
        except ValidationError as invalid:
            field, messages = next(iter(invalid.message_dict.items()))
            raise SessionRefusedError(" ".join(messages), field=field, event=index) from None

    # Read and lock the batches inside the transaction, in a fixed order: a
    # recall made since the form was shown blocks, and one made now waits.
    # The rows alone, then read with their product (patients.locking: a row
    # locked with a join drops out of the answer if it changed meanwhile).
    batch_ids = {line.batch.pk for line in lines}
    list(
        Batch.objects.select_for_update()
        .filter(pk__in=batch_ids)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    batches = list(Batch.objects.select_related("product").filter(pk__in=batch_ids).order_by("pk"))
    _check_products(lines, {batch.pk: batch for batch in batches})
    areas = {line.area for line in lines}
    gates = session_gates(
        booking=current,
        batches=batches,
        areas=areas,
        day_of=day_of,
        acknowledged=cautions_acknowledged,
        at=at,
    )
    applicable = {caution.code for caution in gates.cautions}
    if set(cautions_acknowledged) - applicable:
        raise SessionRefusedError(
            _(
                "A caution was acknowledged that does not apply to this session's areas "
                "(%(areas)s). Reload the page and acknowledge the cautions shown."
            )
            % {"areas": area_labels(sorted(areas))}
        )
    if gates.failures:
        raise GatesFailedError(gates.failures)

    if current.status == BookingStatus.BOOKED:
        current.transition_to(BookingStatus.ARRIVED)
        _record_event(current, BookingEventKind.ARRIVED, completed_by)
    current.transition_to(BookingStatus.COMPLETED)
    mark = version_bump(current)
    current.save(update_fields=["status", "updated_at", "version"])
    _record_event(current, BookingEventKind.COMPLETED, completed_by)
    # The booking changed too: a move opened before is refused, naming this.
    audit_log(
        actor=completed_by,
        action=AuditAction.UPDATE,
        obj=current,
        patient_ref=current.patient.uuid,
        changed_fields=["status", mark],
    )

    record = SessionRecord(
        booking=current,
        numbing_cream=numbing_cream,
        immediate_reactions=immediate_reactions.strip(),
        notes=notes.strip(),
        completed_at=at,
        completed_by=completed_by,
    )
    record.full_clean()
    record.save()
    # The patient's aftercare sheet: rendered in the background after commit.
    aftercare_queue(session=record)
    points: list[InjectionPoint] = []
    for line in lines:
        row = CocktailLine(
            session=record,
            batch=line.batch,
            amount=line.amount,
            unit=line.unit,
            area=line.area,
            technique=line.technique,
            depth_mm=line.depth_mm,
            needle_gauge=line.needle_gauge,
            device=line.device,
        )
        row.full_clean()
        row.save()
        for position, point in enumerate(line.points):
            tapped = InjectionPoint(
                line=row, position=position, view=point.view, x=point.x, y=point.y
            )
            # Checked above and held by the table's constraints: no query a point.
            tapped.full_clean(validate_unique=False, validate_constraints=False)
            points.append(tapped)
    # Every point of the session in one statement, with its lines.
    InjectionPoint.objects.bulk_create(points)
    for event in adverse_events:
        _save_event(session=record, event=event, recorded_by=completed_by)
    assert day_of is not None  # gate 6 refuses a check not asked
    check = DayOfCheck(
        session=record,
        asked_by=completed_by,
        asked_at=at,
        **{name: bool(day_of[name]) for name in DAY_OF_FIELDS},
    )
    check.full_clean()
    check.save()
    for caution in gates.cautions:
        acknowledgement = CautionAcknowledgement(
            session=record,
            code=caution.code,
            wording=caution.reason,
            areas=sorted(caution.areas.intersection(areas)),
            acknowledged_by=completed_by,
            acknowledged_at=at,
        )
        acknowledgement.full_clean()
        acknowledgement.save()

    if current.course is not None:
        course = course_session_completed(course=current.course, completed_by=completed_by)
        # Next session not booked: reception's follow-up; course over: maintenance recall.
        reminders_plan_course(course=course)
    audit_log(
        actor=completed_by,
        action=AuditAction.COMPLETED,
        obj=record,
        patient_ref=current.patient.uuid,
        changed_fields=["lines", "numbing_cream", "immediate_reactions", "notes", "day_of_check"]
        + (["injection_points"] if points else [])
        + (["cautions_acknowledged"] if gates.cautions else [])
        + (["adverse_events"] if adverse_events else [])
        + submission_marks(submission_token),
    )
    return record


def _booking_check(current: Booking, expected_version: int | None) -> None:
    """Refuse a completion from a page showing the booking as it no longer is
    (moved, another practitioner or room); the patient being marked arrived
    meanwhile is the usual course of a session, not a change that matters."""
    try:
        version_check(current, expected=expected_version)
    except StaleEditError as error:
        arrived_only = {change.field for change in error.changes} <= {"status"}
        if not (error.is_stale and arrived_only and current.status == BookingStatus.ARRIVED):
            raise


@transaction.atomic
def session_amend(
    *,
    session: SessionRecord,
    text: str,
    amended_by: User,
    submission_token: uuid.UUID | None = None,
) -> SessionAmendment:
    """Add a correction or addition (`text`, trimmed, required) to a completed
    record; the record itself stays. `submission_token` is the amendment
    form's one-time token. Raises `AlreadySubmittedError` (clinic.concurrency,
    with `.obj`, the session record) when this very form was already saved
    (sent twice, even at the same instant): one amendment is added.
    `ValidationError` ("text") for an empty amendment."""
    submission_check(SessionAmendment, submission_token, by=amended_by, find=lambda _e: session)
    text = text.strip()
    if not text:
        raise ValidationError({"text": _("Write the amendment.")})
    amendment = SessionAmendment(session=session, text=text, by=amended_by)
    amendment.full_clean()
    amendment.save()
    audit_log(
        actor=amended_by,
        action=AuditAction.AMENDED,
        obj=amendment,
        object_id=str(session.uuid),
        patient_ref=session.booking.patient.uuid,
        changed_fields=["text", *submission_marks(submission_token)],
    )
    return amendment


@transaction.atomic
def adverse_event_record(
    *,
    session: SessionRecord,
    recorded_by: User,
    event: AdverseEventInput,
    at: datetime,
    submission_token: uuid.UUID | None = None,
) -> AdverseEvent:
    """An adverse event noticed after the session (the patient called back,
    say); `at` (aware) is now. `submission_token` is the form's one-time
    token. Raises `AlreadySubmittedError` (clinic.concurrency, with `.obj`,
    the session record) when this very form was already saved (sent twice,
    even at the same instant): one event is recorded, and counted once in the
    adverse-events-by-batch report. `ValidationError` ("onset",
    "resolved_on") for times `_check_adverse` refuses."""
    submission_check(AdverseEvent, submission_token, by=recorded_by, find=lambda _e: session)
    _check_adverse(event, at=at, session_start=completion_opens_at(session.booking.starts_at))
    row = _save_event(session=session, event=event, recorded_by=recorded_by)
    audit_log(
        actor=recorded_by,
        action=AuditAction.CREATE,
        obj=row,
        patient_ref=session.booking.patient.uuid,
        changed_fields=[
            "effect",
            "severity",
            "onset",
            "resolved_on",
            "follow_up_needed",
            *submission_marks(submission_token),
        ],
    )
    return row


class AdverseEventResolvedError(SessionRefusedError):
    """The adverse event is resolved already: it takes no more follow-ups."""

    code = "adverse_event_resolved"
    kind = RefusalKind.CONFLICT


@transaction.atomic
def adverse_event_follow_up(
    *,
    event: AdverseEvent,
    recorded_by: User,
    note: str,
    resolved: bool,
    at: datetime,
    submission_token: uuid.UUID | None = None,
) -> AdverseEventFollowUp:
    """Add a follow-up to an adverse event: `note` (trimmed, required: how it
    is going, what was advised), and `resolved` True when it has now settled
    (the event is then closed, with who and when: `recorded_by`, `at`, aware,
    now). The event itself stays as recorded (append-only).

    The patient is held first (a merge of the record waits, or is waited
    for), then the event's row is locked, so two follow-ups of one event
    are written one after the other and only one can resolve it (the
    database holds that too). `submission_token` is the form's one-time
    token: the same form sent twice adds one follow-up
    (`AlreadySubmittedError`, with `.obj`, the session record).
    `ValidationError` ("note") for an empty note; `AdverseEventResolvedError`
    (409) when the event was resolved already, by its own resolved date or a
    follow-up, saying when and by whom: one that comes back is a new adverse
    event. Source: domain.md, "Side effects and complications" (a clinic
    records every adverse event against the session)."""
    session = event.session
    submission_check(
        AdverseEventFollowUp, submission_token, by=recorded_by, find=lambda _e: session
    )
    note = note.strip()
    if not note:
        raise ValidationError({"note": _("Write how it is going, or what was done.")})
    patient = patient_hold(session.booking.patient)
    locked = (
        AdverseEvent.objects.select_for_update(no_key=True)
        .select_related("recorded_by")
        .get(pk=event.pk)
    )
    # Read under the lock: what a colleague added a moment ago counts.
    resolution = adverse_event_resolution(
        locked,
        follow_ups=AdverseEventFollowUp.objects.filter(event=locked).select_related("recorded_by"),
    )
    if resolution is not None:
        raise AdverseEventResolvedError(
            _(
                "This adverse event was marked resolved on %(day)s by %(by)s. If it has "
                "come back, record a new adverse event against the session."
            )
            % {"day": dates.day(resolution.day), "by": resolution.by_name}
        )
    row = AdverseEventFollowUp(
        event=locked, note=note, resolved=resolved, recorded_at=at, recorded_by=recorded_by
    )
    row.full_clean()
    row.save()
    audit_log(
        actor=recorded_by,
        action=AuditAction.CREATE,
        obj=row,
        patient_ref=patient.uuid,
        changed_fields=["note", "resolved", *submission_marks(submission_token)],
    )
    return row

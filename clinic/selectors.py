"""Reads of the clinic app that cross relations."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db import connection
from django.db.models import BooleanField, Expression, F, QuerySet

from clinic.localtime import local_instant
from clinic.models import AuditAction, AuditEvent, User

# Up to this many matching events the audit log counts them exactly (a short
# index range); past it, it says "about N" from the planner's estimate, since
# an exact COUNT(*) over millions of events reads them all (issue 14).
AUDIT_EXACT_COUNT_UP_TO = 1000
# Events a page of the audit log shows: the default, and the range a manager
# may ask for (a page of 100,000 would be a full scan by another name).
AUDIT_PAGE_SIZE = 50
AUDIT_PAGE_SIZE_LEAST = 10
AUDIT_PAGE_SIZE_MOST = 200


def local_day_start(day: date) -> datetime | None:
    """Midnight at the start of `day` (a clinic-local date), as an aware datetime;
    None when that instant, or the day after it, is past what a datetime can hold
    (the first and last days of the calendar): a filter from or to such a day
    leaves that end open."""
    try:
        return local_instant(day, time.min)
    except OverflowError:
        return None


# Other apps say which records stand for the same person as a given one (the
# patients app: the records merged into it), so that a filter by patient
# finds what was done under any of them. `clinic` cannot import them.
PatientRecordsOf = Callable[[uuid.UUID], Sequence[uuid.UUID]]
_patient_records_finders: list[PatientRecordsOf] = []


def patient_records_finder_register(finder: PatientRecordsOf) -> None:
    """Add `finder(uuid) -> other uuids of the same person` (called by an
    app's `ready()`); registering the same function twice adds it once."""
    if finder not in _patient_records_finders:
        _patient_records_finders.append(finder)


def patient_records_of(patient: uuid.UUID) -> list[uuid.UUID]:
    """`patient` first, then every other record of the same person that a
    registered finder knows of (records merged into it), without repeats."""
    records = [patient]
    for finder in _patient_records_finders:
        records += [other for other in finder(patient) if other not in records]
    return records


@dataclass(frozen=True)
class PatientLabel:
    """How the audit log names the patient a row concerns: `name` as pages
    show it, `url` of the record's page, `merged` when the row's record was
    merged into another (whose name and page these are then)."""

    name: str
    url: str
    merged: bool = False


# Other apps name the patients of a page of audit rows (the patients app:
# each record's name, or its survivor's when merged), in one query for the
# page. `clinic` cannot import them.
PatientLabelsOf = Callable[[Collection[uuid.UUID]], Mapping[uuid.UUID, PatientLabel]]
_patient_labels_finders: list[PatientLabelsOf] = []


def patient_labels_finder_register(finder: PatientLabelsOf) -> None:
    """Add `finder(uuids) -> {uuid: PatientLabel}` (called by an app's
    `ready()`); registering the same function twice adds it once."""
    if finder not in _patient_labels_finders:
        _patient_labels_finders.append(finder)


def patient_labels_of(records: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, PatientLabel]:
    """The label of each record in `records` (None and repeats skipped) that a
    registered finder knows; the first finder to name a record wins. One call
    per finder, whatever the number of records."""
    wanted = {record for record in records if record is not None}
    labels: dict[uuid.UUID, PatientLabel] = {}
    for finder in _patient_labels_finders:
        if missing := wanted - labels.keys():
            for record, label in finder(missing).items():
                labels.setdefault(record, label)
    return labels


def audit_events_filtered(
    *,
    user: str = "",
    action: str = "",
    patient: uuid.UUID | None = None,
    patient_records: Sequence[uuid.UUID] = (),
    since: date | None = None,
    until: date | None = None,
) -> QuerySet[AuditEvent]:
    """Audit events, newest first, filtered by username (any case, as it was
    when the event was written), action, patient (the record's public id; or
    `patient_records`, several records of one person, see
    `patient_records_of`) and clinic-local dates (`since` and `until` both
    included). A date at the very edge of the calendar (0001-01-01,
    9999-12-31) leaves that end of the range open. Each filter is served by an
    index ending in (at, id) (clinic migration 0010)."""
    events = AuditEvent.objects.all()
    if user:
        # UPPER(label) = UPPER(%s): the expression index audit_actor_label_idx
        # holds (tests/test_audit.py checks the plan reads it).
        events = events.filter(actor_label__iexact=user)
    if action:
        events = events.filter(action=action)
    if patient is not None:
        events = events.filter(patient_ref=patient)
    if len(patient_records) == 1:
        events = events.filter(patient_ref=patient_records[0])
    elif patient_records:
        events = events.filter(patient_ref__in=list(patient_records))
    if since and (start := local_day_start(since)) is not None:
        events = events.filter(at__gte=start)
    if until and until < date.max and (end := local_day_start(until + timedelta(days=1))):
        events = events.filter(at__lt=end)
    return events.order_by("-at", "-id")


class AuditCursorError(ValueError):
    """A cursor that is not one this page wrote (edited or cut short)."""


_CURSOR = re.compile(r"(\d{1,17})_(\d{1,19})")


@dataclass(frozen=True)
class AuditCursor:
    """A place in the trail between two events: the (at, id) of the event
    next to it. Written into the audit log's Older and Newer links as
    "<microseconds since 1970 UTC>_<id>"."""

    at: datetime
    id: int

    @classmethod
    def of(cls, event: AuditEvent) -> AuditCursor:
        return cls(at=event.at, id=event.pk)

    @classmethod
    def parse(cls, token: str) -> AuditCursor:
        """The cursor a link carries. Raises AuditCursorError when `token` is
        not two whole numbers joined by "_", or names a time no date holds."""
        match = _CURSOR.fullmatch(token)
        if match is None:
            raise AuditCursorError(token)
        micros, pk = int(match[1]), int(match[2])
        try:
            at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
        except OverflowError as error:
            raise AuditCursorError(token) from error
        if pk > 2**63 - 1:
            raise AuditCursorError(token)
        return cls(at=at, id=pk)

    def token(self) -> str:
        micros = (self.at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
        return f"{micros}_{self.id}"


class _RowCompare(Expression):
    """`(at, id) < (x, y)` (or `>`): PostgreSQL's row comparison, which a
    B-tree ending in (at, id) serves as one index range, where the
    equivalent `at < x OR (at = x AND id < y)` cannot be."""

    output_field = BooleanField()
    conditional = True

    def __init__(self, operator: str, cursor: AuditCursor) -> None:
        super().__init__()
        self.operator = operator
        self.cursor = cursor
        self.columns: list[Any] = [F("at"), F("id")]

    def get_source_expressions(self) -> list[Any]:
        return self.columns

    def set_source_expressions(self, exprs: Sequence[Any]) -> None:
        self.columns = list(exprs)

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, tuple[Any, ...]]:
        at_sql, at_params = compiler.compile(self.columns[0])
        id_sql, id_params = compiler.compile(self.columns[1])
        sql = f"({at_sql}, {id_sql}) {self.operator} (%s, %s)"
        return sql, (*at_params, *id_params, self.cursor.at, self.cursor.id)


def audit_events_older_than(
    events: QuerySet[AuditEvent], cursor: AuditCursor
) -> QuerySet[AuditEvent]:
    """The events of `events` older than `cursor` in the log's order (at,
    then id), as one index range: what an Older link shows."""
    return events.filter(_RowCompare("<", cursor))


@dataclass(frozen=True)
class AuditPage:
    """One page of the audit log: `events` newest first; `older` and `newer`
    the cursors of the neighbouring pages (None at either end); `count` the
    events matching the filters, exact when `count_is_estimate` is False, the
    planner's estimate otherwise."""

    events: list[AuditEvent]
    older: AuditCursor | None
    newer: AuditCursor | None
    count: int
    count_is_estimate: bool


def _estimated_count(events: QuerySet[AuditEvent]) -> int:
    """The planner's estimate of how many rows `events` holds (EXPLAIN, which
    reads no row): from the table's statistics, so it is about right."""
    sql, params = events.order_by().query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def audit_events_count(events: QuerySet[AuditEvent]) -> tuple[int, bool]:
    """How many events `events` holds, and whether that is an estimate: exact
    up to AUDIT_EXACT_COUNT_UP_TO (a bounded count over the filter's index),
    past it the planner's estimate (at least that many), so the cost does not
    grow with the trail."""
    bounded = events.order_by()[: AUDIT_EXACT_COUNT_UP_TO + 1].count()
    if bounded <= AUDIT_EXACT_COUNT_UP_TO:
        return bounded, False
    return max(_estimated_count(events), bounded), True


def audit_page(
    events: QuerySet[AuditEvent],
    *,
    size: int,
    before: AuditCursor | None = None,
    after: AuditCursor | None = None,
) -> AuditPage:
    """A page of `size` events of `events` (from `audit_events_filtered`):
    the newest, or the next ones older than `before`, or the ones just newer
    than `after` (at most one of the two). A page reached with `after` that
    meets the newest event is the first page. Keyset pagination: each page is
    one index range from its cursor, however deep, never an OFFSET. Raises
    ValueError when both cursors are given."""
    if before is not None and after is not None:
        raise ValueError("a page is older than one cursor or newer than another, not both")
    count, estimated = audit_events_count(events)
    if after is not None:
        rows = list(events.filter(_RowCompare(">", after)).order_by("at", "id")[: size + 1])
        if len(rows) > size:
            page = rows[:size][::-1]
            return AuditPage(
                events=page,
                older=AuditCursor.of(page[-1]),
                newer=AuditCursor.of(page[0]),
                count=count,
                count_is_estimate=estimated,
            )
        # Fewer than a page newer than the cursor: the newest events, the first page.
    if before is not None:
        events = audit_events_older_than(events, before)
    rows = list(events[: size + 1])
    page = rows[:size]
    return AuditPage(
        events=page,
        older=AuditCursor.of(page[-1]) if len(rows) > size else None,
        newer=(AuditCursor.of(page[0]) if page else before) if before is not None else None,
        count=count,
        count_is_estimate=estimated,
    )


def previous_sign_in(user: User) -> datetime | None:
    """When `user` signed in before the current sign-in (UTC), or None: the
    second newest "login" event (index audit_actor_login_idx)."""
    return (
        AuditEvent.objects.filter(actor=user, action=AuditAction.LOGIN)
        .order_by("-at")
        .values_list("at", flat=True)[1:2]
        .first()
    )


def recent_failed_sign_ins(*, limit: int = 5) -> list[AuditEvent]:
    """The newest `limit` failed sign-ins (wrong password or code), newest
    first, for the manager's dashboard: the head of index audit_action_idx,
    whatever the size of the trail."""
    return list(
        AuditEvent.objects.filter(action=AuditAction.LOGIN_FAILED).order_by("-at", "-id")[:limit]
    )

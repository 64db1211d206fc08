"""A patient's story on one page: every session, booking and clinical record
of the patient up to now, newest first, a page at a time, with the adverse
events still open above it. Bookings still to come are not in it: the
patient's page lists them once, in its sessions panel, with whether each is
ready to treat (`treatments.views.patient_panel`).

What each role reads follows the patient's page: a practitioner sees each
session with its cocktail lines, the cautions acknowledged, its adverse
events (and how they went on) and the photos taken that day, and beside the
sessions the consultations, medical histories, allergy tests, signed consents
and photos of other days. Every other role (reception, managers) sees the
past bookings alone: their dates, protocol and status, never clinical
content (design.md, "Roles").

A page is read in a fixed number of queries whatever the length of the
story: each kind of entry is read newest first from a cursor, at most one
page of each, then merged; what the entries shown need (lines, events,
photos) is read once for the whole page.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from typing import Any

from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.translation import gettext as _

from clinic.localtime import clinic_zone, local_instant
from clinic.refusals import RefusalKind, RefusedError
from consent.models import SignedConsent
from patients.models import Consultation, MedicalHistory, Patient, Photo
from treatments.models import (
    AdverseEvent,
    AdverseEventFollowUp,
    AllergyTest,
    Booking,
    BookingStatus,
    CautionAcknowledgement,
    CocktailLine,
    Ingredient,
    InjectionPoint,
    Product,
    SessionRecord,
)
from treatments.needle_map import NeedleMap, needle_map_of
from treatments.selectors.session import Resolution, adverse_event_resolution, follow_ups_prefetch

# Entries shown a page; "Older" reads the next page from where this one ended.
PAGE_SIZE = 30
# Open adverse events shown above the timeline (the rest are in the sessions).
OPEN_EVENTS_SHOWN = 20
# A booking in one of these states has happened, whatever its start: a
# session may be completed up to SESSION_COMPLETE_EARLY_MINUTES before its
# booked start. It is in the past at once. A booking cancelled ahead of its
# time is not: it stays at its booked time, listed (marked cancelled) with the
# bookings to come in the sessions panel, and joins the past when that time
# comes, in its place by booked time.
HAPPENED = (BookingStatus.COMPLETED, BookingStatus.NO_SHOW)

# The kinds of entry. Entries at the same instant are shown in this order
# (a session before the consent signed at its start), then newest row first.
BOOKING = "booking"
CONSENT = "consent"
ALLERGY_TEST = "allergy_test"
HISTORY = "history"
CONSULTATION = "consultation"
PHOTOS = "photos"
RANKS = {BOOKING: 6, CONSENT: 5, ALLERGY_TEST: 4, HISTORY: 3, CONSULTATION: 2, PHOTOS: 1}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class TimelineCursorError(RefusedError):
    """The "older" link's position is not one this page wrote (edited by hand)."""

    code = "timeline_cursor"
    kind = RefusalKind.INVALID


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page ended: the last entry's moment, kind rank and row id.
    The next page holds the entries strictly before it."""

    at: datetime
    rank: int
    pk: int

    def token(self) -> str:
        """The cursor as the "older" link carries it: digits and dots only."""
        return f"{(self.at - _EPOCH) // _MICROSECOND}.{self.rank}.{self.pk}"


def cursor_parse(token: str) -> Cursor:
    """The cursor an "older" link carries (`Cursor.token`). Raises
    `TimelineCursorError` (400) for anything else: a position edited by hand
    gets a plain refusal, never a server error."""
    parts = token.split(".")
    refused = TimelineCursorError(
        _("This link to older entries is damaged: open the patient's page again.")
    )
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() and len(p) <= 20 for p in parts):
        raise refused
    micro, rank, pk = (int(p) for p in parts)
    if rank not in RANKS.values() or pk > 2**63 - 1:
        raise refused
    try:
        at = _EPOCH + micro * _MICROSECOND
    except OverflowError:
        raise refused from None
    return Cursor(at=at, rank=rank, pk=pk)


def _before(rows: QuerySet[Any], moment: str, kind: str, cursor: Cursor | None) -> QuerySet[Any]:
    """The rows of one kind that come after `cursor` in the timeline's order
    (moment, rank, id), all descending."""
    if cursor is None:
        return rows
    rank = RANKS[kind]
    if rank < cursor.rank:
        return rows.filter(**{f"{moment}__lte": cursor.at})
    if rank > cursor.rank:
        return rows.filter(**{f"{moment}__lt": cursor.at})
    return rows.filter(
        Q(**{f"{moment}__lt": cursor.at}) | Q(**{moment: cursor.at, "pk__lt": cursor.pk})
    )


@dataclass(frozen=True, slots=True)
class EventShown:
    """An adverse event with its follow-ups (prefetched) and how it resolved
    (None: still open)."""

    event: AdverseEvent
    resolution: Resolution | None

    @property
    def latest(self) -> AdverseEventFollowUp | None:
        """The newest follow-up, if any."""
        follow_ups = list(self.event.follow_ups.all())
        return follow_ups[-1] if follow_ups else None


@dataclass
class TimelineEntry:
    """One line of the story. `obj` is the row itself: a `Booking` (with its
    `record` when the session was recorded and the reader is clinical), a
    `Consultation`, `MedicalHistory`, `AllergyTest`, `SignedConsent`, or for
    `PHOTOS` the day the photos were taken."""

    kind: str
    at: datetime
    pk: int
    obj: Any
    record: SessionRecord | None = None  # a recorded session (clinical readers)
    lines: list[CocktailLine] = field(default_factory=list)
    cautions: list[CautionAcknowledgement] = field(default_factory=list)
    events: list[EventShown] = field(default_factory=list)
    photos: list[Photo] = field(default_factory=list)
    current: bool = False  # the newest medical history: the one the gates read
    needle_map: NeedleMap | None = None  # a recorded session's lines on the diagram

    @property
    def cursor(self) -> Cursor:
        return Cursor(at=self.at, rank=RANKS[self.kind], pk=self.pk)

    @property
    def sort_key(self) -> tuple[datetime, int, int]:
        return (self.at, RANKS[self.kind], self.pk)


@dataclass(frozen=True)
class TimelinePage:
    entries: list[TimelineEntry]  # the past, newest first
    older: Cursor | None  # None: nothing older
    clinical: bool
    open_events: list[EventShown]  # the first page of a clinical reader only
    first: bool


def _photo_day_moment(day: date) -> datetime:
    # Photos carry a day, not a time: they sit at the day's start.
    return local_instant(day, time(0))


def _booking_rows(patient: Patient, clinical: bool) -> QuerySet[Booking]:
    rows = Booking.objects.filter(patient=patient).select_related("protocol")
    if clinical:
        rows = rows.select_related("practitioner", "record__completed_by")
    return rows


def _booking_entry(booking: Booking, clinical: bool) -> TimelineEntry:
    entry = TimelineEntry(BOOKING, booking.starts_at, booking.pk, booking)
    if clinical:
        entry.record = getattr(booking, "record", None)
    return entry


def _bookings(
    patient: Patient, cursor: Cursor | None, size: int, *, clinical: bool, now: datetime
) -> list[TimelineEntry]:
    """Bookings of the past: those that started by `now`, and those already
    completed or missed whatever their start (`HAPPENED`)."""
    rows = _booking_rows(patient, clinical).filter(Q(starts_at__lte=now) | Q(status__in=HAPPENED))
    rows = _before(rows, "starts_at", BOOKING, cursor).order_by("-starts_at", "-pk")[:size]
    return [_booking_entry(booking, clinical) for booking in rows]


def _consultations(patient: Patient, cursor: Cursor | None, size: int) -> list[Any]:
    rows = Consultation.objects.filter(patient=patient).select_related("recorded_by")
    rows = _before(rows, "recorded_at", CONSULTATION, cursor).order_by("-recorded_at", "-pk")
    return [TimelineEntry(CONSULTATION, c.recorded_at, c.pk, c) for c in rows[:size]]


def _histories(patient: Patient, cursor: Cursor | None, size: int) -> list[Any]:
    rows = (
        MedicalHistory.objects.filter(patient=patient)
        .select_related("signed_by")
        .only("uuid", "patient_id", "signed_at", "signed_by")
    )
    rows = _before(rows, "signed_at", HISTORY, cursor).order_by("-signed_at", "-pk")
    return [TimelineEntry(HISTORY, h.signed_at, h.pk, h) for h in rows[:size]]


def _allergy_tests(patient: Patient, cursor: Cursor | None, size: int) -> list[Any]:
    rows = (
        AllergyTest.objects.filter(patient=patient)
        .select_related("given_by", "read_by")
        .prefetch_related(
            Prefetch(
                "ingredients", queryset=Ingredient.objects.only("id", "name").order_by("name")
            ),
            Prefetch("products", queryset=Product.objects.only("id", "name").order_by("name")),
        )
    )
    rows = _before(rows, "given_at", ALLERGY_TEST, cursor).order_by("-given_at", "-pk")
    return [TimelineEntry(ALLERGY_TEST, t.given_at, t.pk, t) for t in rows[:size]]


def _consents(patient: Patient, cursor: Cursor | None, size: int) -> list[Any]:
    rows = (
        SignedConsent.objects.filter(patient=patient)
        .select_related("version__form", "withdrawal")
        # Not the signed text, its sections or the version's texts: a page of
        # consents would carry the whole form for each.
        .only(
            "uuid",
            "patient_id",
            "signed_at",
            "version__number",
            "version__form__title",
            "withdrawal__withdrawn_at",
        )
    )
    rows = _before(rows, "signed_at", CONSENT, cursor).order_by("-signed_at", "-pk")
    return [TimelineEntry(CONSENT, s.signed_at, s.pk, s) for s in rows[:size]]


def _photo_days(patient: Patient, cursor: Cursor | None, size: int) -> list[Any]:
    """Days photos were taken with no session recorded that day (a session
    shows its own day's photos). One query."""
    zone = clinic_zone()
    session_days = (
        Booking.objects.filter(patient=patient, record__isnull=False)
        .annotate(day=TruncDate("starts_at", tzinfo=zone))
        .values("day")
    )
    days = Photo.objects.filter(patient=patient).exclude(taken_on__in=session_days)
    if cursor is not None:
        days = days.filter(taken_on__lte=timezone.localdate(cursor.at, zone))
    found = []
    # One more than a page: the cursor's own day may be left out below.
    for day in days.values_list("taken_on", flat=True).distinct().order_by("-taken_on")[: size + 1]:
        entry = TimelineEntry(PHOTOS, _photo_day_moment(day), day.toordinal(), day)
        if cursor is None or entry.sort_key < (cursor.at, cursor.rank, cursor.pk):
            found.append(entry)
    return found[:size]


def _attach_sessions(entries: list[TimelineEntry]) -> None:
    """The cocktail lines (and their injection points, drawn on the
    diagram), cautions acknowledged and adverse events (with their
    follow-ups) of the sessions shown: four queries for a page."""
    records = {e.record.pk: e for e in entries if e.record is not None}
    if not records:
        return
    for line in (
        CocktailLine.objects.filter(session_id__in=records)
        .select_related("batch__product")
        .order_by("id")
    ):
        records[line.session_id].lines.append(line)
    points: dict[int, list[InjectionPoint]] = defaultdict(list)
    for point in InjectionPoint.objects.filter(line__session_id__in=records).order_by(
        "line_id", "position"
    ):
        points[point.line_id].append(point)
    for entry in records.values():
        entry.needle_map = needle_map_of(entry.lines, points)
    for caution in CautionAcknowledgement.objects.filter(session_id__in=records).order_by("id"):
        records[caution.session_id].cautions.append(caution)
    for event in (
        AdverseEvent.objects.filter(session_id__in=records)
        .select_related("recorded_by")
        .prefetch_related(follow_ups_prefetch())
        .order_by("onset", "id")
    ):
        records[event.session_id].events.append(
            EventShown(event=event, resolution=adverse_event_resolution(event))
        )


def _attach_photos(patient: Patient, entries: list[TimelineEntry]) -> None:
    """The photos of each session's day and of each photo day shown: one query."""
    zone = clinic_zone()
    by_day: dict[date, list[TimelineEntry]] = defaultdict(list)
    for entry in entries:
        if entry.kind == PHOTOS:
            by_day[entry.obj].append(entry)
        elif entry.record is not None:
            by_day[timezone.localdate(entry.at, zone)].append(entry)
    if not by_day:
        return
    for photo in (
        Photo.objects.filter(patient=patient, taken_on__in=by_day)
        .only("uuid", "patient_id", "area", "kind", "taken_on")
        .order_by("taken_on", "area", "id")
    ):
        for entry in by_day[photo.taken_on]:
            entry.photos.append(photo)


def _current_history(patient: Patient, entries: list[TimelineEntry], *, first: bool) -> None:
    """Mark the patient's newest medical history, if on this page: on the
    first page the newest shown; on another, if none is newer (one query)."""
    histories = [e for e in entries if e.kind == HISTORY]
    if not histories:
        return
    newest = max(histories, key=lambda e: e.sort_key)
    newest.current = first or not (
        MedicalHistory.objects.filter(patient=patient)
        .filter(Q(signed_at__gt=newest.at) | Q(signed_at=newest.at, pk__gt=newest.pk))
        .exists()
    )


def open_adverse_events(*, patient: Patient, limit: int = OPEN_EVENTS_SHOWN) -> list[EventShown]:
    """The patient's adverse events not yet resolved (no resolved date when
    recorded, no resolving follow-up), newest first, at most `limit`, each
    with its session's booking and its follow-ups: two queries."""
    resolving = AdverseEventFollowUp.objects.filter(event=OuterRef("pk"), resolved=True)
    events = (
        AdverseEvent.objects.filter(session__booking__patient=patient, resolved_on__isnull=True)
        .exclude(Exists(resolving))
        .select_related("session__booking__protocol", "recorded_by")
        .prefetch_related(follow_ups_prefetch())
        .order_by("-onset", "-id")[:limit]
    )
    return [EventShown(event=event, resolution=None) for event in events]


def patient_timeline(
    *,
    patient: Patient,
    clinical: bool,
    now: datetime,
    before: Cursor | None = None,
    size: int = PAGE_SIZE,
) -> TimelinePage:
    """One page of `patient`'s timeline, newest first: `size` entries of the
    past (up to `now`, aware) after `before` (None: from the newest), and the
    cursor of the next page (None when nothing is older). Bookings still to
    come are left to the sessions panel (`HAPPENED`).

    `clinical` (the reader holds the practitioner role) shows every kind of
    entry with its clinical content and, on the first page, the open adverse
    events; otherwise bookings alone, for their dates, protocol and status.
    The number of queries is fixed whatever the number of entries: six for
    the kinds, four for the sessions' details,
    one for photos, at most one for the current history, two for the open
    adverse events (two for a non-clinical reader). Raises nothing."""
    readers: list[Callable[[Patient, Cursor | None, int], list[TimelineEntry]]]
    readers = [partial(_bookings, clinical=clinical, now=now)]
    if clinical:
        readers += [_consultations, _histories, _allergy_tests, _consents, _photo_days]
    found: list[TimelineEntry] = []
    for read in readers:
        # One more than a page of each: whether anything is older.
        found.extend(read(patient, before, size + 1))
    found.sort(key=lambda e: e.sort_key, reverse=True)
    entries = found[:size]
    older = entries[-1].cursor if len(found) > size else None
    open_events: list[EventShown] = []
    if clinical:
        _attach_sessions(entries)
        _attach_photos(patient, entries)
        _current_history(patient, entries, first=before is None)
        if before is None:
            open_events = open_adverse_events(patient=patient)
    return TimelinePage(
        entries=entries,
        older=older,
        clinical=clinical,
        open_events=open_events,
        first=before is None,
    )

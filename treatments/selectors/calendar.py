"""The calendar's day and week views, built in a fixed number of queries
whatever the number of bookings: practitioners, rooms, working hours,
closures, the bookings themselves, and their readiness.

Bookings that overlap in one column (the week view's day, the day view's
practitioner: different rooms or practitioners at the same time) are laid
side by side, never on top of each other: each gets a lane of its overlap
cluster (`_lay_out_lanes`); a cluster needing more than MAX_LANES lanes
shows the first MAX_LANES - 1 and lists the rest from the last one.
Ready-to-treat reads the same on the calendar's card and the booking's own
page (`SafeToTreat`, `safe_to_treat_sentence`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from django.db.models import QuerySet
from django.utils.formats import get_format
from django.utils.translation import gettext as _

from clinic import clinic_settings, dates
from clinic.localtime import local_day_bounds, to_local
from clinic.models import User
from clinic.names import person_name
from treatments.gates import GateFailure
from treatments.models import FINISHED_STATUSES, Booking, BookingStatus, Protocol, Room
from treatments.selectors.booking import (
    MAX_BOOKING_LENGTH,
    HoursMap,
    closures_between,
    practitioners,
    rooms_in_use,
    working_hours_map,
)
from treatments.selectors.readiness import readiness_of

SLOT_MINUTES = 15
DEFAULT_OPENS = time(8, 0)
DEFAULT_CLOSES = time(19, 0)
# A card is drawn at most this many rows tall (four hours, the longest session).
MAX_SPAN = 16
# Lanes a cluster of overlapping bookings is drawn in: the stylesheet has a
# class for each (static/css/calendar.css). A cluster needing more keeps the
# bookings of its first MAX_LANES - 1 lanes and, in the last, a "+k more" list
# of the others (`CalendarBooking.hidden`): six lanes keep a busy day's
# cards readable and the whole week on a 1366-pixel screen.
MAX_LANES = 6


@dataclass(frozen=True, slots=True)
class SafeToTreat:
    """Reception's answer for one booking: what stands in the way, in words
    without clinical detail (`notes`, once each), the latest moment waiting
    clears one of them (`earliest`, aware), and whether waiting alone clears
    them all (`waits`: then `earliest` is when the session becomes safe)."""

    notes: tuple[str, ...] = ()
    earliest: datetime | None = None
    waits: bool = False

    @property
    def safe(self) -> bool:
        return not self.notes


SAFE = SafeToTreat()


def safe_to_treat(failures: Iterable[GateFailure]) -> SafeToTreat:
    """What `failures` (gates 1 to 4 of one booking) say to reception: each
    note once, in the order met; failures without a note for reception are
    left out. Raises nothing."""
    notes: dict[str, None] = {}
    earliest: datetime | None = None
    waits = True
    for failure in failures:
        if not failure.reception_note:
            continue
        notes[str(failure.reception_note)] = None
        if failure.earliest is None:
            waits = False
        elif earliest is None or failure.earliest > earliest:
            earliest = failure.earliest
    if not notes:
        return SAFE
    return SafeToTreat(tuple(notes), earliest, waits and earliest is not None)


class SafeToTreatWords:
    """The words of `safe_to_treat_sentence` in the active language, looked
    up once for a page of cards rather than once a card."""

    def __init__(self) -> None:
        self.safe = _("Ready to treat")
        self.not_ready = _("Not ready")
        self.safe_from = _("ready to treat from %(when)s")
        self.not_before = _("not before %(when)s")


def safe_to_treat_sentence(state: SafeToTreat, words: SafeToTreatWords | None = None) -> str:
    """The sentence reception reads under the "Not ready" badge, on the
    calendar's card and on the booking's page alike: what is missing, then
    the earliest date, "ready to treat from" it when waiting is all it takes,
    "not before" it when something must also be done (a consent signed, a
    history taken), left out when a note already names that moment. Empty
    when safe. Times in the clinic's zone (`clinic.dates.day_or_day_time`):
    a moment at midnight is the day alone."""
    if state.safe:
        return ""
    words = words or SafeToTreatWords()
    sentence = "; ".join(state.notes)
    if state.earliest is not None:
        # A day's start (a contraindication that lifts on a date) reads as the day.
        when = dates.day_or_day_time(state.earliest)
        # A note that names the moment already ("allergy reading due ...") says it once.
        if when not in sentence:
            wording = words.safe_from if state.waits else words.not_before
            sentence += " · " + wording % {"when": when}
    return sentence


@dataclass(frozen=True, slots=True)
class _Proposed:
    """A booking not made yet, as ready-to-treat reads one (`Judged`)."""

    pk: int
    patient_id: int
    protocol_id: int
    consent_form_id: int
    course_id: int | None
    starts_at: datetime


def booking_proposed_readiness(
    *, patient_id: int, protocol: Protocol, starts_at: datetime, at: datetime
) -> SafeToTreat:
    """Ready-to-treat for a session not booked yet: patient `patient_id` with
    `protocol` from `starts_at` (aware), on the facts known at `at` (aware,
    now), as the booking will say once made (gates 1 to 4, the protocol's
    own cocktail: a single booking is in no course yet). Six queries.
    Raises nothing. Source: design.md, "Clinical safety gates" (booking
    shows the gates to reception as warnings)."""
    proposed = _Proposed(0, patient_id, protocol.pk, protocol.consent_form_id, None, starts_at)
    return safe_to_treat(readiness_of(bookings=[proposed], at=at).get(0, []))


@dataclass(slots=True)
class WeekBooking:
    """A booking as the grid and ready-to-treat read it: plain values from one
    query. Eight hundred bookings as model instances, each with its patient,
    protocol, room and practitioner, cost more than the rest of the page."""

    pk: int
    uuid: UUID
    starts_at: datetime  # aware, UTC
    ends_at: datetime
    status: str
    version: int  # sent with a drag, so a booking changed since is not moved
    course_id: int | None  # ready-to-treat reads the course's last cocktail
    patient_id: int
    patient_name: str
    protocol_id: int
    protocol_name: str
    consent_form_id: int
    room_uuid: UUID
    room_name: str
    practitioner_id: int
    practitioner_uuid: UUID
    practitioner_name: str


@dataclass(slots=True)
class CalendarBooking:
    booking: WeekBooking
    starts: datetime  # local
    ends: datetime
    span: int  # rows of SLOT_MINUTES
    readiness: SafeToTreat = SAFE
    lane: int = 0  # 0-based, within its overlap cluster
    lanes: int = 1  # lanes of that cluster, at most MAX_LANES
    # Beyond the lanes drawn: listed under "+k more" in the last lane.
    hidden: bool = False

    @property
    def safe(self) -> bool:
        return self.readiness.safe

    @property
    def notes(self) -> tuple[str, ...]:
        return self.readiness.notes

    @property
    def earliest(self) -> datetime | None:
        return self.readiness.earliest

    @property
    def rows(self) -> tuple[int, int]:
        """The grid rows the card covers in its day: first, and one past the last."""
        first = _minutes(self.starts.time()) // SLOT_MINUTES
        return first, first + min(self.span, MAX_SPAN)


@dataclass
class Cell:
    state: str  # "open" (working), "off" (not working), "closed" (clinic closure)
    bookings: list[CalendarBooking] = field(default_factory=list)
    free_query: str = ""
    html: str = ""  # filled in by the view (the grid is rendered in Python for speed)


@dataclass
class Column:
    day: date
    practitioner: User | None
    closed_reason: str = ""
    booking_count: int = 0  # set by `calendar_build`
    lanes: int = 1  # the most lanes any moment of the column needs (idem)

    @property
    def lane_units(self) -> range:
        """One per lane: the grid gives each column room for its lanes."""
        return range(min(self.lanes, MAX_LANES))


@dataclass
class Row:
    at: time
    cells: list[Cell]

    @property
    def on_the_hour(self) -> bool:
        return self.at.minute == 0


@dataclass
class Calendar:
    view: str
    day: date
    days: list[date]
    columns: list[Column]
    rows: list[Row]
    practitioners: list[User]
    rooms: list[Room]
    practitioner: User | None
    room: Room | None
    booking_count: int
    readiness_checked: bool

    @property
    def previous(self) -> date:
        return self.day - timedelta(days=1 if self.view == "day" else 7)

    @property
    def next(self) -> date:
        return self.day + timedelta(days=1 if self.view == "day" else 7)


_ROW = (
    "id",
    "uuid",
    "starts_at",
    "ends_at",
    "status",
    "version",
    "course_id",
    "patient_id",
    "patient__first_name",
    "patient__last_name",
    "protocol_id",
    "protocol__name",
    "protocol__consent_form_id",
    "room__uuid",
    "room__name",
    "practitioner_id",
    "practitioner__uuid",
    "practitioner__username",
    "practitioner__first_name",
    "practitioner__last_name",
)


def _week_bookings(query: QuerySet[Booking]) -> list[WeekBooking]:
    """The bookings of `query` as plain rows (one query), names as pages show
    them (`clinic.names.person_name`; a practitioner without one by username)."""
    staff_names: dict[int, str] = {}
    rows = []
    for (
        pk,
        uuid,
        starts_at,
        ends_at,
        status,
        version,
        course_id,
        patient_id,
        first_name,
        last_name,
        protocol_id,
        protocol_name,
        consent_form_id,
        room_uuid,
        room_name,
        practitioner_id,
        practitioner_uuid,
        username,
        staff_first,
        staff_last,
    ) in query.values_list(*_ROW):
        name = staff_names.get(practitioner_id)
        if name is None:
            name = staff_names[practitioner_id] = person_name(staff_first, staff_last) or username
        rows.append(
            WeekBooking(
                pk=pk,
                uuid=uuid,
                starts_at=starts_at,
                ends_at=ends_at,
                status=status,
                version=version,
                course_id=course_id,
                patient_id=patient_id,
                patient_name=person_name(first_name, last_name),
                protocol_id=protocol_id,
                protocol_name=protocol_name,
                consent_form_id=consent_form_id,
                room_uuid=room_uuid,
                room_name=room_name,
                practitioner_id=practitioner_id,
                practitioner_uuid=practitioner_uuid,
                practitioner_name=name,
            )
        )
    return rows


def first_weekday() -> int:
    """The day the clinic's week starts on (0 Monday ... 6 Sunday): the
    locale's (Django's FIRST_DAY_OF_WEEK format of the active language;
    Monday in en-GB, Sunday in en-US)."""
    # Django counts from Sunday (0), Python from Monday (0).
    return (int(get_format("FIRST_DAY_OF_WEEK")) - 1) % 7


def week_of(day: date, first: int | None = None) -> list[date]:
    """The seven dates of the week that holds `day`, starting on weekday
    `first` (0 Monday ... 6 Sunday; None: `first_weekday()`)."""
    if first is None:
        first = first_weekday()
    start = day - timedelta(days=(day.weekday() - first) % 7)
    return [start + timedelta(days=i) for i in range(7)]


def _minutes(at: time) -> int:
    return at.hour * 60 + at.minute


def _grid_bounds(
    hours: HoursMap, bookings: list[CalendarBooking], days: Iterable[date]
) -> tuple[int, int]:
    """The grid's first and last minute: the practitioners' hours and the
    bookings shown; with neither, the clinic's opening hours on `days` (the
    settings'), and 08:00-19:00 when it is closed on all of them."""
    values = clinic_settings.current()
    opening = [
        spans for day in set(days) if (spans := values.opening_on(day.weekday())) is not None
    ]
    fallback_opens = min((_minutes(o) for o, _c in opening), default=_minutes(DEFAULT_OPENS))
    fallback_closes = max((_minutes(c) for _o, c in opening), default=_minutes(DEFAULT_CLOSES))
    opens = [_minutes(s) for spans in hours.values() for s, _e in spans]
    closes = [_minutes(e) + (1 if e.second else 0) for spans in hours.values() for _s, e in spans]
    opens += [_minutes(b.starts.time()) for b in bookings]
    closes += [
        _minutes(b.ends.time()) if b.ends.date() == b.starts.date() else 24 * 60 for b in bookings
    ]
    first = min(opens, default=fallback_opens)
    last = max(closes, default=fallback_closes)
    first -= first % SLOT_MINUTES
    last += (-last) % SLOT_MINUTES
    return first, max(last, first + SLOT_MINUTES)


def _lay_out_lanes(items: list[CalendarBooking], limit: int = MAX_LANES) -> None:
    """Give each booking of one column (in start order) a lane, and the lane
    count of its overlap cluster: the classic interval partitioning over
    the rows the cards cover, so cards that would touch sit side by side
    and a cluster uses as few lanes as its busiest moment needs. A booking
    overlapping nothing keeps the whole width. A cluster needing more than
    `limit` lanes is drawn in `limit`: the bookings of lanes `limit` - 1 and
    beyond are `hidden`, and the last lane lists them (a booking lands
    there only when the lanes before it are all taken at its start)."""
    cluster: list[CalendarBooking] = []
    lane_ends: list[int] = []  # per lane, the row its last card ends on
    cluster_end = -1

    def close() -> None:
        lanes = len(lane_ends)
        for member in cluster:
            if lanes > limit:
                member.lanes = limit
                member.hidden = member.lane >= limit - 1
            else:
                member.lanes = lanes

    for item in items:
        first, last = item.rows
        if cluster and first >= cluster_end:
            close()
            cluster, lane_ends = [], []
        for lane, ends in enumerate(lane_ends):
            if ends <= first:
                lane_ends[lane] = last
                item.lane = lane
                break
        else:
            item.lane = len(lane_ends)
            lane_ends.append(last)
        cluster.append(item)
        cluster_end = max(cluster_end, last)
    close()


def _working(hours: HoursMap, practitioner_ids: list[int], day: date, at: time) -> list[int]:
    """The practitioners (of those shown) working at local `at` on `day`."""
    end = (datetime.combine(day, at) + timedelta(minutes=SLOT_MINUTES)).time()
    working = []
    for pid in practitioner_ids:
        for opens, closes in hours.get((pid, day.weekday()), []):
            if opens <= at and (end <= closes or end == time(0)):
                working.append(pid)
                break
    return working


def calendar_frame(
    *, view: str, day: date, practitioner: User | None, room: Room | None
) -> Calendar:
    """The page around the grid for `view` ("day" or "week") around local
    `day`: the days, the columns with the clinic's closures, and the
    practitioners and rooms to choose from; no rows (three queries). The
    rows come from `calendar_build`, or from the cache
    (`treatments.selectors.calendar_cache`)."""
    staff = list(practitioners())
    rooms = list(rooms_in_use())
    shown = [practitioner] if practitioner is not None else staff
    days = [day] if view == "day" else week_of(day)
    closed = closures_between(days[0], days[-1])
    if view == "day":
        columns = [Column(day, p, closed.get(day, "")) for p in shown]
    else:
        columns = [Column(d, practitioner, closed.get(d, "")) for d in days]
    return Calendar(
        view=view,
        day=day,
        days=days,
        columns=columns,
        rows=[],
        practitioners=staff,
        rooms=rooms,
        practitioner=practitioner,
        room=room,
        booking_count=0,
        readiness_checked=False,
    )


@clinic_settings.read_once
def calendar_build(
    *,
    view: str,
    day: date,
    practitioner: User | None,
    room: Room | None,
    at: datetime,
    readiness: Any = None,
    frame: Calendar | None = None,
) -> Calendar:
    """The grid for `view` ("day" or "week") around local `day`.

    `readiness`, when given, is a callable (bookings, at) -> {booking id:
    [failures]} with `reception_note` and `earliest` on each failure.
    `frame`, when given, is `calendar_frame` of the same arguments, already
    loaded (its queries are not run again).
    """
    if frame is None:
        frame = calendar_frame(view=view, day=day, practitioner=practitioner, room=room)
    rooms = frame.rooms
    shown = [practitioner] if practitioner is not None else frame.practitioners
    days = frame.days
    columns = frame.columns
    start, _ = local_day_bounds(days[0])
    _, end = local_day_bounds(days[-1])
    query = (
        # The lower bound on the start lets the index on starts_at do the work:
        # a booking lies within one working day.
        Booking.objects.filter(
            starts_at__gte=start - MAX_BOOKING_LENGTH, starts_at__lt=end, ends_at__gt=start
        )
        .exclude(status=BookingStatus.CANCELLED)
        .order_by("starts_at", "id")
    )
    if practitioner is not None:
        query = query.filter(practitioner=practitioner)
    if room is not None:
        query = query.filter(room=room)
    bookings = _week_bookings(query)
    hours = working_hours_map([p.pk for p in shown])
    # A finished booking (completed, missed) shows its outcome, not readiness.
    to_happen = [b for b in bookings if b.status not in FINISHED_STATUSES]
    failures = readiness(bookings=to_happen, at=at) if readiness is not None else {}

    items: list[CalendarBooking] = []
    for booking in bookings:
        starts, ends = to_local(booking.starts_at), to_local(booking.ends_at)
        span = max(1, round((booking.ends_at - booking.starts_at).total_seconds() / 60 / 15))
        found = failures.get(booking.pk)
        items.append(
            CalendarBooking(booking, starts, ends, span, safe_to_treat(found) if found else SAFE)
        )

    placed: dict[tuple[int, date, int], list[CalendarBooking]] = defaultdict(list)
    by_column: dict[tuple[int, date], list[CalendarBooking]] = defaultdict(list)
    for item in items:
        slot = _minutes(item.starts.time()) // SLOT_MINUTES
        owner = item.booking.practitioner_id if view == "day" else 0
        placed[(owner, item.starts.date(), slot)].append(item)
        by_column[(owner, item.starts.date())].append(item)
    for column_items in by_column.values():
        # In start order (the query's), then by the card's length: longer first.
        column_items.sort(key=lambda item: (item.rows[0], -item.rows[1], item.booking.pk))
        _lay_out_lanes(column_items)
    for column in columns:
        owner = column.practitioner.pk if view == "day" and column.practitioner else 0
        found = by_column.get((owner, column.day), [])
        column.booking_count = len(found)
        column.lanes = max((item.lanes for item in found), default=1)

    first, last = _grid_bounds(hours, items, (column.day for column in columns))
    rows: list[Row] = []
    shown_ids = [p.pk for p in shown]
    for minute in range(first, last, SLOT_MINUTES):
        at_time = time(minute // 60, minute % 60)
        cells = []
        for column in columns:
            ids = [column.practitioner.pk] if column.practitioner is not None else shown_ids
            owner = column.practitioner.pk if view == "day" and column.practitioner else 0
            found_items = placed.get((owner, column.day, minute // SLOT_MINUTES), [])
            if column.closed_reason:
                cells.append(Cell("closed", found_items))
                continue
            working = _working(hours, ids, column.day, at_time)
            params: dict[str, str] = {
                "date": column.day.isoformat(),
                "time": dates.input_time(at_time),
            }
            if column.practitioner is not None:
                params["practitioner"] = str(column.practitioner.uuid)
            elif len(working) == 1:
                params["practitioner"] = str(next(p.uuid for p in shown if p.pk == working[0]))
            if room is not None:
                params["room"] = str(room.uuid)
            elif len(rooms) == 1:
                params["room"] = str(rooms[0].uuid)
            cells.append(
                Cell(
                    "open" if working else "off", found_items, urlencode(params) if working else ""
                )
            )
        rows.append(Row(at_time, cells))
    return Calendar(
        view=view,
        day=day,
        days=days,
        columns=columns,
        rows=rows,
        practitioners=frame.practitioners,
        rooms=rooms,
        practitioner=practitioner,
        room=room,
        booking_count=len(items),
        readiness_checked=readiness is not None,
    )

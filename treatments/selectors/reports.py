"""Manager reports over a range of days, for the whole clinic or one
practitioner: sessions per practitioner per week, no-show rates, course
completion, adverse events by product and by batch.

Each figure is one or two aggregate queries (GROUP BY in PostgreSQL), so the
number of queries stays the same whatever the range and the size of the
clinic's history.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Count, Exists, Min, OuterRef, Q, QuerySet, Sum
from django.db.models.functions import TruncWeek

from clinic.localtime import clinic_zone, local_day_bounds, to_local
from clinic.models import User
from clinic.names import person_name
from clinic.roles import Role
from treatments.models import (
    AdverseEffect,
    AdverseEvent,
    Booking,
    BookingStatus,
    CourseStatus,
    Severity,
    TreatmentCourse,
)

# The range shown when none is asked for: the last 12 ISO weeks, this one last.
REPORT_WEEKS = 12
# How far back from its last day a report reaches: two years. A longer range
# is refused (treatments.forms.reports): a week per row, the sessions table
# would run to hundreds of rows nobody reads.
REPORT_MAX_YEARS = 2


def _percent(part: int, whole: int) -> Decimal | None:
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"), ROUND_HALF_UP)


def _name(first: str, last: str, username: str) -> str:
    return person_name(first, last) or username


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def earliest_start(until: date) -> date:
    """The first day a report ending on `until` may start on: the same day
    REPORT_MAX_YEARS years earlier (28 February for a 29th)."""
    year = until.year - REPORT_MAX_YEARS
    try:
        return until.replace(year=year)
    except ValueError:  # 29 February, in a year without one
        return date(year, 2, 28)


@dataclass(frozen=True)
class ReportPeriod:
    """The clinic-local days `first` to `last`, both included."""

    first: date
    last: date

    @classmethod
    def default(cls, *, until: date, opened: date | None = None) -> ReportPeriod:
        """The last REPORT_WEEKS ISO weeks to `until` (a clinic-local day, the
        week of `until` last), starting no earlier than `opened` (the clinic's
        first booking, when there is one) nor later than `until`."""
        first = _monday(until) - timedelta(weeks=REPORT_WEEKS - 1)
        if opened is not None and first < opened:
            first = min(opened, until)
        return cls(first=first, last=until)

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def bounds(self) -> tuple[datetime, datetime]:
        """The UTC instants at which the first day starts and the day after the last starts."""
        return local_day_bounds(self.first)[0], local_day_bounds(self.last)[1]

    def mondays(self) -> list[date]:
        """The Monday of each ISO week the range touches, oldest first: the
        first and last may count only some of their days."""
        monday, last = _monday(self.first), _monday(self.last)
        weeks = []
        while monday <= last:
            weeks.append(monday)
            monday += timedelta(weeks=1)
        return weeks


def reports_first_day() -> date | None:
    """The clinic-local day of the first booking ever made (any status): the
    day the clinic opened, as far as its records go; None before any booking.
    One query, the head of index booking_starts_idx."""
    first = Booking.objects.aggregate(first=Min("starts_at"))["first"]
    return to_local(first).date() if first is not None else None


def report_practitioners() -> QuerySet[User]:
    """Everyone holding the practitioner role, those who left included (their
    sessions stay in the figures), by name: whom a report can be narrowed to."""
    return (
        User.objects.filter(groups__name=Role.PRACTITIONER.value)
        .distinct()
        .order_by("first_name", "last_name", "username")
    )


def _bookings(period: ReportPeriod, practitioner: User | None) -> QuerySet[Booking]:
    since, until = period.bounds()
    bookings = Booking.objects.filter(starts_at__gte=since, starts_at__lt=until)
    if practitioner is not None:
        bookings = bookings.filter(practitioner=practitioner)
    return bookings


@dataclass(frozen=True)
class PractitionerWeeks:
    name: str
    counts: list[int]

    @property
    def total(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True)
class WeekRow:
    """One week of the sessions table: sessions per practitioner, in the
    order of the table's columns, and their sum."""

    monday: date
    counts: list[int]

    @property
    def total(self) -> int:
        return sum(self.counts)


def sessions_per_week(
    *, period: ReportPeriod, practitioner: User | None = None
) -> tuple[list[date], list[PractitionerWeeks]]:
    """Completed sessions per practitioner per ISO week (weeks in the clinic's
    zone) for the sessions that started within `period`, of `practitioner`
    only when given; the Mondays of the weeks, and a row per practitioner with
    a count for each, by name. One query."""
    mondays = period.mondays()
    rows = (
        _bookings(period, practitioner)
        .filter(status=BookingStatus.COMPLETED)
        .annotate(week=TruncWeek("starts_at", tzinfo=clinic_zone()))
        .values(
            "practitioner_id",
            "practitioner__first_name",
            "practitioner__last_name",
            "practitioner__username",
            "week",
        )
        .annotate(n=Count("id"))
        .order_by()
    )
    index = {monday: i for i, monday in enumerate(mondays)}
    names: dict[int, str] = {}
    counts: dict[int, list[int]] = defaultdict(lambda: [0] * len(mondays))
    for row in rows:
        week = row["week"]
        day = week.date() if isinstance(week, datetime) else week
        if day not in index:
            continue
        pid = row["practitioner_id"]
        names[pid] = _name(
            row["practitioner__first_name"],
            row["practitioner__last_name"],
            row["practitioner__username"],
        )
        counts[pid][index[day]] += row["n"]
    table = [PractitionerWeeks(name=names[pid], counts=counts[pid]) for pid in names]
    table.sort(key=lambda r: r.name.lower())
    return mondays, table


@dataclass(frozen=True)
class NoShowRate:
    name: str
    completed: int
    no_shows: int

    @property
    def rate(self) -> Decimal | None:
        return _percent(self.no_shows, self.completed + self.no_shows)


def no_show_rates(
    *, period: ReportPeriod, practitioner: User | None = None
) -> tuple[list[NoShowRate], NoShowRate]:
    """No-shows / (completed + no-shows) of the sessions booked within
    `period`, per practitioner (by name) and overall; of `practitioner` only
    when given. Percentages to one decimal, None with no session. One query."""
    rows = (
        _bookings(period, practitioner)
        .filter(status__in=(BookingStatus.COMPLETED, BookingStatus.NO_SHOW))
        .values(
            "practitioner_id",
            "practitioner__first_name",
            "practitioner__last_name",
            "practitioner__username",
        )
        .annotate(
            completed=Count("id", filter=Q(status=BookingStatus.COMPLETED)),
            no_shows=Count("id", filter=Q(status=BookingStatus.NO_SHOW)),
        )
        .order_by()
    )
    per = [
        NoShowRate(
            name=_name(
                r["practitioner__first_name"],
                r["practitioner__last_name"],
                r["practitioner__username"],
            ),
            completed=r["completed"],
            no_shows=r["no_shows"],
        )
        for r in rows
    ]
    per.sort(key=lambda r: r.name.lower())
    overall = NoShowRate(
        name="",
        completed=sum(r.completed for r in per),
        no_shows=sum(r.no_shows for r in per),
    )
    return per, overall


@dataclass(frozen=True)
class CourseCompletion:
    started: int
    completed: int
    stopped: int
    sessions_planned: int
    sessions_done: int

    @property
    def running(self) -> int:
        return self.started - self.completed - self.stopped

    @property
    def rate(self) -> Decimal | None:
        return _percent(self.completed, self.started)

    @property
    def sessions_rate(self) -> Decimal | None:
        return _percent(self.sessions_done, self.sessions_planned)


def course_completion(
    *, period: ReportPeriod, practitioner: User | None = None
) -> CourseCompletion:
    """The courses started (created) within `period`: how many were completed,
    stopped or still run, and their sessions done to date against those
    planned. With `practitioner`, the courses with a session booked with them
    (not cancelled); the sessions done are all of those courses', whoever gave
    them. Two queries."""
    since, until = period.bounds()
    courses = TreatmentCourse.objects.filter(created_at__gte=since, created_at__lt=until)
    if practitioner is not None:
        courses = courses.filter(
            Exists(
                Booking.objects.filter(course=OuterRef("pk"), practitioner=practitioner).exclude(
                    status=BookingStatus.CANCELLED
                )
            )
        )
    figures = courses.aggregate(
        started=Count("id"),
        completed=Count("id", filter=Q(status=CourseStatus.COMPLETED)),
        stopped=Count("id", filter=Q(status=CourseStatus.STOPPED)),
        planned=Sum("planned_sessions"),
    )
    done = Booking.objects.filter(
        course__in=courses.values("pk"), status=BookingStatus.COMPLETED
    ).count()
    return CourseCompletion(
        started=figures["started"],
        completed=figures["completed"],
        stopped=figures["stopped"],
        sessions_planned=figures["planned"] or 0,
        sessions_done=done,
    )


@dataclass
class AdverseRow:
    """Adverse events of sessions that used one product (or one batch)."""

    label: str
    detail: str = ""
    total: int = 0
    by_effect: dict[str, int] = field(default_factory=dict)
    by_severity: dict[str, int] = field(default_factory=dict)

    @property
    def effects(self) -> list[tuple[str, int]]:
        labels = dict(AdverseEffect.choices)
        return [(str(labels[k]), n) for k, n in sorted(self.by_effect.items(), key=lambda i: -i[1])]

    @property
    def severities(self) -> list[int]:
        return [self.by_severity.get(s, 0) for s in Severity.values]


def _adverse_rows(
    key: str,
    label_fields: tuple[str, ...],
    period: ReportPeriod,
    practitioner: User | None,
) -> list[AdverseRow]:
    # An event counts once per product (or batch) its session used, whatever
    # the number of lines of that product: COUNT(DISTINCT).
    prefix = "session__lines__batch__"
    since, until = period.bounds()
    events = AdverseEvent.objects.filter(
        **{f"{prefix}{key}__isnull": False},
        session__booking__starts_at__gte=since,
        session__booking__starts_at__lt=until,
    )
    if practitioner is not None:
        events = events.filter(session__booking__practitioner=practitioner)
    rows = (
        events.values(f"{prefix}{key}", *(prefix + f for f in label_fields), "effect", "severity")
        .annotate(n=Count("id", distinct=True))
        .order_by()
    )
    table: dict[object, AdverseRow] = {}
    for row in rows:
        labels = [row[prefix + f] for f in label_fields]
        entry = table.setdefault(
            row[prefix + key],
            AdverseRow(label=str(labels[0]), detail=" ".join(map(str, labels[1:]))),
        )
        entry.total += row["n"]
        entry.by_effect[row["effect"]] = entry.by_effect.get(row["effect"], 0) + row["n"]
        entry.by_severity[row["severity"]] = entry.by_severity.get(row["severity"], 0) + row["n"]
    return sorted(table.values(), key=lambda r: (-r.total, r.label.lower(), r.detail))


def adverse_events_by_product(
    *, period: ReportPeriod, practitioner: User | None = None
) -> list[AdverseRow]:
    """Adverse events of the sessions within `period` (of `practitioner` when
    given), counted per product (name and maker), most first: a product
    behind many events stands out. One query."""
    return _adverse_rows("product_id", ("product__name", "product__maker"), period, practitioner)


def adverse_events_by_batch(
    *, period: ReportPeriod, practitioner: User | None = None
) -> list[AdverseRow]:
    """Adverse events of the sessions within `period` (of `practitioner` when
    given), counted per batch (product name and lot number), most first: for
    a possible recall. One query."""
    return _adverse_rows("id", ("product__name", "lot_number"), period, practitioner)


@dataclass(frozen=True)
class ManagerReports:
    period: ReportPeriod
    weeks: list[date]
    sessions: list[PractitionerWeeks]
    no_shows: list[NoShowRate]
    no_show_overall: NoShowRate
    courses: CourseCompletion
    adverse_by_product: list[AdverseRow]
    adverse_by_batch: list[AdverseRow]

    @property
    def sessions_total(self) -> int:
        return sum(row.total for row in self.sessions)

    def week_rows(self) -> list[WeekRow]:
        """The sessions table a week a row, practitioners in the order of `sessions`."""
        return [
            WeekRow(monday=monday, counts=[row.counts[i] for row in self.sessions])
            for i, monday in enumerate(self.weeks)
        ]


def manager_reports(
    *, today: date, period: ReportPeriod | None = None, practitioner: User | None = None
) -> ManagerReports:
    """Every figure of the reports page over `period` (by default the last
    REPORT_WEEKS weeks to `today`, a clinic-local day), for the whole clinic
    or `practitioner`: six aggregate queries."""
    period = period or ReportPeriod.default(until=today)
    weeks, sessions = sessions_per_week(period=period, practitioner=practitioner)
    per, overall = no_show_rates(period=period, practitioner=practitioner)
    return ManagerReports(
        period=period,
        weeks=weeks,
        sessions=sessions,
        no_shows=per,
        no_show_overall=overall,
        courses=course_completion(period=period, practitioner=practitioner),
        adverse_by_product=adverse_events_by_product(period=period, practitioner=practitioner),
        adverse_by_batch=adverse_events_by_batch(period=period, practitioner=practitioner),
    )

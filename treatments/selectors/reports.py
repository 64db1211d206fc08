"""Manager reports: sessions per practitioner per week, no-show rates, course
completion, adverse events by product and by batch.

Each figure is one aggregate query (GROUP BY in PostgreSQL), so the number of
queries stays the same whatever the size of the clinic's history.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncWeek

from clinic.localtime import clinic_zone, local_day_bounds
from treatments.models import (
    AdverseEffect,
    AdverseEvent,
    Booking,
    BookingStatus,
    CourseStatus,
    Severity,
    TreatmentCourse,
)

REPORT_WEEKS = 12


def _percent(part: int, whole: int) -> Decimal | None:
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"), ROUND_HALF_UP)


def _name(first: str, last: str, username: str) -> str:
    return f"{first} {last}".strip() or username


def report_weeks(*, today: date, weeks: int = REPORT_WEEKS) -> list[date]:
    """The Mondays of the last `weeks` ISO weeks, this week last."""
    monday = today - timedelta(days=today.weekday())
    return [monday - timedelta(weeks=n) for n in range(weeks - 1, -1, -1)]


@dataclass(frozen=True)
class PractitionerWeeks:
    name: str
    counts: list[int]

    @property
    def total(self) -> int:
        return sum(self.counts)


def sessions_per_week(
    *, today: date, weeks: int = REPORT_WEEKS
) -> tuple[list[date], list[PractitionerWeeks]]:
    """Completed sessions per practitioner per ISO week (weeks in the clinic's zone)."""
    mondays = report_weeks(today=today, weeks=weeks)
    since, _end = local_day_bounds(mondays[0])
    rows = (
        Booking.objects.filter(status=BookingStatus.COMPLETED, starts_at__gte=since)
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


def no_show_rates(*, today: date, weeks: int = REPORT_WEEKS) -> tuple[list[NoShowRate], NoShowRate]:
    """No-shows / (completed + no-shows), per practitioner and overall, over the report's weeks."""
    since, _end = local_day_bounds(report_weeks(today=today, weeks=weeks)[0])
    _today_start, today_end = local_day_bounds(today)
    rows = (
        Booking.objects.filter(
            starts_at__gte=since,
            starts_at__lt=today_end,
            status__in=(BookingStatus.COMPLETED, BookingStatus.NO_SHOW),
        )
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
    def rate(self) -> Decimal | None:
        return _percent(self.completed, self.started)

    @property
    def sessions_rate(self) -> Decimal | None:
        return _percent(self.sessions_done, self.sessions_planned)


def course_completion() -> CourseCompletion:
    """Courses completed / courses started, and sessions done against planned (two queries)."""
    courses = TreatmentCourse.objects.aggregate(
        started=Count("id"),
        completed=Count("id", filter=Q(status=CourseStatus.COMPLETED)),
        stopped=Count("id", filter=Q(status=CourseStatus.STOPPED)),
        planned=Sum("planned_sessions"),
    )
    done = Booking.objects.filter(course__isnull=False, status=BookingStatus.COMPLETED).aggregate(
        n=Count("id")
    )["n"]
    return CourseCompletion(
        started=courses["started"],
        completed=courses["completed"],
        stopped=courses["stopped"],
        sessions_planned=courses["planned"] or 0,
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


def _adverse_rows(key: str, label_fields: tuple[str, ...]) -> list[AdverseRow]:
    # An event counts once per product (or batch) its session used, whatever
    # the number of lines of that product: COUNT(DISTINCT).
    prefix = "session__lines__batch__"
    rows = (
        AdverseEvent.objects.filter(**{f"{prefix}{key}__isnull": False})
        .values(f"{prefix}{key}", *(prefix + f for f in label_fields), "effect", "severity")
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


def adverse_events_by_product() -> list[AdverseRow]:
    """Adverse events counted per product (name and maker), for the
    manager's report: a product behind many events stands out."""
    return _adverse_rows("product_id", ("product__name", "product__maker"))


def adverse_events_by_batch() -> list[AdverseRow]:
    """Adverse events counted per batch (product name and lot number), for
    the manager's report and a possible recall."""
    return _adverse_rows("id", ("product__name", "lot_number"))


@dataclass(frozen=True)
class ManagerReports:
    weeks: list[date]
    sessions: list[PractitionerWeeks]
    no_shows: list[NoShowRate]
    no_show_overall: NoShowRate
    courses: CourseCompletion
    adverse_by_product: list[AdverseRow]
    adverse_by_batch: list[AdverseRow]


def manager_reports(*, today: date) -> ManagerReports:
    """Every figure of the reports page: six aggregate queries."""
    weeks, sessions = sessions_per_week(today=today)
    per, overall = no_show_rates(today=today)
    return ManagerReports(
        weeks=weeks,
        sessions=sessions,
        no_shows=per,
        no_show_overall=overall,
        courses=course_completion(),
        adverse_by_product=adverse_events_by_product(),
        adverse_by_batch=adverse_events_by_batch(),
    )

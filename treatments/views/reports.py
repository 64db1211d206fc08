"""The manager's reports: activity, no-shows, course completion, adverse
events, over a range of days, for the whole clinic or one practitioner; each
table also as a CSV file."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from clinic import dates
from clinic.access import staff
from clinic.models import User
from clinic.roles import Role
from clinic.spreadsheets import csv_writer
from treatments.forms.reports import ReportFilterForm
from treatments.models import AdverseEffect, Severity
from treatments.selectors.reports import (
    AdverseRow,
    ManagerReports,
    ReportPeriod,
    adverse_events_by_batch,
    adverse_events_by_product,
    course_completion,
    manager_reports,
    no_show_rates,
    reports_first_day,
    sessions_per_week,
)


def week_label(monday: date, *, today: date) -> str:
    """A week as its Monday in the clinic's format (`clinic.dates.day`),
    "Mon 16 Nov", with the year when it is not `today`'s."""
    return dates.day(monday, current=today.year)


def report_ranges(today: date, practitioner: str = "") -> list[tuple[str, str]]:
    """The ranges the page offers as links, (label, query string): the last
    12 weeks (the default), this month, last month and this year, whole
    months and years; a range ending after `today` is reported up to today
    (`ReportFilterForm`). `practitioner` (a public id as given) is kept."""
    month = today.replace(day=1)
    next_month = (month + timedelta(days=31)).replace(day=1)
    last_month_end = month - timedelta(days=1)
    ranges = [
        (_("Last 12 weeks"), {}),
        (_("This month"), {"since": month, "until": next_month - timedelta(days=1)}),
        (_("Last month"), {"since": last_month_end.replace(day=1), "until": last_month_end}),
        (_("This year"), {"since": date(today.year, 1, 1), "until": date(today.year, 12, 31)}),
    ]
    links = []
    for label, days in ranges:
        query = {name: day.isoformat() for name, day in days.items()}
        if practitioner:
            query["practitioner"] = practitioner
        links.append((label, urlencode(query)))
    return links


def _cut_note(form: ReportFilterForm) -> str:
    """What the page says when the range reported is not the one asked for:
    cut to today, or to the clinic's first booking."""
    notes = []
    if form.asked_since is not None:
        notes.append(
            _("The clinic's first booking was on %(day)s: the figures start there.")
            % {"day": dates.day(form.period.first)}
        )
    if form.asked_until is not None:
        notes.append(
            _("The range asked for ends on %(asked)s: the figures go up to today, %(today)s.")
            % {"asked": dates.day(form.asked_until), "today": dates.day(form.period.last)}
        )
    return " ".join(notes)


def _number(value: Decimal | None) -> float | None:
    return float(value) if value is not None else None


def chart_data(reports: ManagerReports, *, today: date) -> dict[str, Any]:
    """What static/js/reports.js draws, the figures of the tables beside each
    chart: sessions per week (a series per practitioner), the no-show rate per
    practitioner and for the whole clinic, and how the courses ended."""
    return {
        "sessions": {
            "labels": [week_label(monday, today=today) for monday in reports.weeks],
            "series": [{"name": row.name, "data": row.counts} for row in reports.sessions],
            "axis": _("Sessions completed"),
        },
        "noShows": {
            "labels": [row.name for row in reports.no_shows] + [_("Whole clinic")],
            "data": [_number(row.rate) for row in reports.no_shows]
            + [_number(reports.no_show_overall.rate)],
            "axis": _("Did not come (%)"),
        },
        "courses": {
            "labels": [_("Completed"), _("Stopped"), _("Still running")],
            "data": [
                reports.courses.completed,
                reports.courses.stopped,
                reports.courses.running,
            ],
            "axis": _("Courses"),
        },
    }


Rows = Iterable[list[object]]


def _sessions_csv(period: ReportPeriod, practitioner: User | None) -> Rows:
    weeks, table = sessions_per_week(period=period, practitioner=practitioner)
    yield [_("Week of"), *(row.name for row in table), _("Total")]
    for i, monday in enumerate(weeks):
        counts = [row.counts[i] for row in table]
        yield [monday.isoformat(), *counts, sum(counts)]
    yield [_("Total"), *(row.total for row in table), sum(row.total for row in table)]


def _no_shows_csv(period: ReportPeriod, practitioner: User | None) -> Rows:
    per, overall = no_show_rates(period=period, practitioner=practitioner)
    yield [_("Practitioner"), _("Completed"), _("Did not come"), _("Rate (%)")]
    for row in per:
        yield [row.name, row.completed, row.no_shows, row.rate]
    yield [_("Whole clinic"), overall.completed, overall.no_shows, overall.rate]


def _courses_csv(period: ReportPeriod, practitioner: User | None) -> Rows:
    courses = course_completion(period=period, practitioner=practitioner)
    yield [_("Courses started in the range"), _("Number"), _("Percentage")]
    yield [_("Courses started"), courses.started, None]
    yield [_("Completed"), courses.completed, courses.rate]
    yield [_("Stopped"), courses.stopped, None]
    yield [_("Still running"), courses.running, None]
    yield [_("Sessions planned"), courses.sessions_planned, None]
    yield [_("Sessions done"), courses.sessions_done, courses.sessions_rate]


def _adverse_csv(rows: list[AdverseRow], first: str, second: str) -> Rows:
    effects = AdverseEffect.choices
    yield [
        first,
        second,
        _("Events"),
        *(label for _value, label in Severity.choices),
        *(label for _value, label in effects),
    ]
    for row in rows:
        yield [
            row.label,
            row.detail,
            row.total,
            *row.severities,
            *(row.by_effect.get(value, 0) for value, _label in effects),
        ]


def _adverse_products_csv(period: ReportPeriod, practitioner: User | None) -> Rows:
    rows = adverse_events_by_product(period=period, practitioner=practitioner)
    return _adverse_csv(rows, _("Product"), _("Maker"))


def _adverse_batches_csv(period: ReportPeriod, practitioner: User | None) -> Rows:
    rows = adverse_events_by_batch(period=period, practitioner=practitioner)
    return _adverse_csv(rows, _("Product"), _("Lot number"))


# The tables a CSV is offered of: `?download=<name>` on the reports page, with
# the page's range and practitioner. Each runs only its own queries.
CSV_TABLES: dict[str, Callable[[ReportPeriod, User | None], Rows]] = {
    "sessions-per-week": _sessions_csv,
    "no-shows": _no_shows_csv,
    "course-completion": _courses_csv,
    "adverse-events-by-product": _adverse_products_csv,
    "adverse-events-by-batch": _adverse_batches_csv,
}


def csv_filename(table: str, period: ReportPeriod, practitioner: User | None) -> str:
    """ "sessions-per-week_2026-08-24_to_2026-11-18.csv", with the
    practitioner's username when the report is narrowed to one."""
    who = ""
    if practitioner is not None:
        who = "_" + "".join(c if c.isalnum() or c in "-." else "-" for c in practitioner.username)
    return f"{table}_{period.first.isoformat()}_to_{period.last.isoformat()}{who}.csv"


def _csv_response(table: str, period: ReportPeriod, practitioner: User | None) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    disposition = content_disposition_header(True, csv_filename(table, period, practitioner))
    if disposition:
        response["Content-Disposition"] = disposition
    response.write("\ufeff")  # spreadsheet programs read UTF-8 with the mark
    csv_writer(response).writerows(CSV_TABLES[table](period, practitioner))
    return response


@staff(Role.MANAGER)
@require_GET
def reports(request: HttpRequest) -> HttpResponse:
    """The reports page over the range and practitioner asked for (by
    default the last 12 weeks, the whole clinic), or with `download`, one of
    its tables as CSV. A range ending after today, or starting before the
    clinic's first booking, is reported up to today and from that booking,
    and the page says so. A range or practitioner refused, or a table that
    is not one, answers 400 with the reason and no figures."""
    today = timezone.localdate()
    form = ReportFilterForm.bind(request.GET, today=today, opened=reports_first_day())
    download = request.GET.get("download", "")
    ranges = report_ranges(today, request.GET.get("practitioner", "")[:64])
    refusal = ""
    if download and download not in CSV_TABLES:
        refusal = _("There is no such table to download. Choose one of the page's own links.")
    if not form.is_valid() or refusal:
        return render(
            request,
            "treatments/report_manager.html",
            {"form": form, "reports": None, "refusal": refusal, "ranges": ranges},
            status=400,
        )
    period, practitioner = form.period, form.cleaned_data["practitioner"]
    if download:
        return _csv_response(download, period, practitioner)
    reports = manager_reports(today=today, period=period, practitioner=practitioner)
    # The CSV links carry the range and practitioner shown, nothing else.
    query = QueryDict(mutable=True)
    query["since"], query["until"] = period.first.isoformat(), period.last.isoformat()
    if practitioner is not None:
        query["practitioner"] = str(practitioner.uuid)
    return render(
        request,
        "treatments/report_manager.html",
        {
            "form": form,
            "reports": reports,
            "ranges": ranges,
            "cut_note": _cut_note(form),
            "practitioner": practitioner,
            "today": today,
            "weeks": [
                (week_label(monday, today=today), row)
                for monday, row in zip(reports.weeks, reports.week_rows(), strict=True)
            ],
            "charts": chart_data(reports, today=today),
            "query": query.urlencode(),
            "severities": [label for _value, label in Severity.choices],
        },
    )

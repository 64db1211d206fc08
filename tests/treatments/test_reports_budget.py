"""The reports' query budget: the page and each CSV file run the same number
of queries for a week of a small clinic and for two years of a busier one,
for the whole clinic and for one practitioner."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from clinic.models import User
from clinic.roles import Role
from tests.conftest import sign_in
from tests.factories import BatchFactory, PatientFactory, ProtocolFactory, UserFactory
from tests.treatments.test_reports import book, event, record
from treatments.models import BookingStatus, TreatmentCourse
from treatments.views.reports import CSV_TABLES

pytestmark = pytest.mark.django_db

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 18, 12, 0, tzinfo=LONDON)
FIRST_DAY = date(2024, 11, 18)  # two years back: the longest range there is


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


def one_set(practitioner: User, day: datetime) -> None:
    """A course started on `day`, its first session completed with an adverse
    event, and another patient's session that day missed."""
    protocol = ProtocolFactory()
    with time_machine.travel(day, tick=False):
        course = TreatmentCourse.objects.create(
            patient=PatientFactory(),
            protocol=protocol,
            planned_sessions=4,
            interval="fortnightly",
            created_by=practitioner,
        )
    done = book(practitioner, protocol, day, BookingStatus.COMPLETED, course=course)
    event(record(done, BatchFactory(received_on=FIRST_DAY)), "bruising", "mild")
    book(practitioner, protocol, day + timedelta(hours=2), BookingStatus.NO_SHOW)


def grow(practitioners: list[User], *, weeks: int) -> None:
    """`one_set` a practitioner every `104 / weeks` weeks over the last two years."""
    step = max(1, 104 // weeks)
    for n, practitioner in enumerate(practitioners):
        for week in range(0, 104, step):
            day = FIRST_DAY + timedelta(weeks=week, days=n % 5)
            one_set(practitioner, datetime.combine(day, time(9 + n), LONDON))


def count_queries(client: Client, query: dict[str, str]) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("treatments:reports"), query)
    assert response.status_code == 200, response.content.decode()[:2000]
    return len(queries)


def counts(client: Client, query: dict[str, str]) -> dict[str, int]:
    """Queries of the page and of each of its files, for `query`."""
    found = {"page": count_queries(client, query)}
    for table in CSV_TABLES:
        found[table] = count_queries(client, {**query, "download": table})
    return found


def test_the_reports_and_their_files_cost_the_same_queries_whatever_the_range_or_data(
    manager: User,
) -> None:
    client = sign_in(Client(), manager)
    client.get(reverse("home"))  # the first request starts the idle timer
    one = UserFactory(roles=[Role.PRACTITIONER])
    one_set(one, datetime(2026, 11, 17, 10, tzinfo=LONDON))
    week = {"since": "2026-11-17", "until": "2026-11-18"}  # from the first booking
    small = counts(client, week)
    small_one = counts(client, {**week, "practitioner": str(one.uuid)})

    grow([UserFactory(roles=[Role.PRACTITIONER]) for _ in range(5)], weeks=26)
    two_years = {"since": FIRST_DAY.isoformat(), "until": "2026-11-18"}
    large = counts(client, two_years)
    large_one = counts(client, {**two_years, "practitioner": str(one.uuid)})

    assert large == small
    assert large_one == small_one
    # The page: the session and the signed-in user (4), the first booking
    # (1), the six figures (6), the practitioners to choose from (1); a
    # practitioner chosen adds the look-up of their account; the clinic's
    # settings (its name in the header, 1).
    assert small["page"] == 13
    assert small_one["page"] == 14
    # A file runs its own figure's queries only.
    assert small["sessions-per-week"] == small["no-shows"] == 6
    assert small["course-completion"] == 7


def test_the_two_year_report_shows_every_week_of_it(manager: User) -> None:
    practitioner = UserFactory(first_name="Wendy", last_name="Weeks", roles=[Role.PRACTITIONER])
    grow([practitioner], weeks=104)
    client = sign_in(Client(), manager)
    response = client.get(
        reverse("treatments:reports"), {"since": FIRST_DAY.isoformat(), "until": "2026-11-18"}
    )
    reports = response.context["reports"]
    assert len(reports.weeks) == 105  # from Monday 18 Nov 2024 to Monday 16 Nov 2026
    assert reports.sessions[0].total == 104
    assert reports.no_show_overall.rate == 50
    assert reports.courses.started == 104

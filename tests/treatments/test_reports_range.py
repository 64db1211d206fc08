"""The manager's reports over a range of days and for one practitioner: the
defaults, what each figure counts inside the range, the refusals (400 with the
reason, never a 500) and who may see them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime
from html import unescape
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from clinic import dates
from clinic.models import User
from clinic.roles import Role
from tests.conftest import sign_in
from tests.factories import (
    BatchFactory,
    PatientFactory,
    ProductFactory,
    ProtocolFactory,
    UserFactory,
)
from tests.treatments.test_reports import book, event, record
from treatments.models import BookingStatus, CourseStatus, TreatmentCourse
from treatments.selectors.reports import earliest_start
from treatments.services.portal import portal_invite

pytestmark = pytest.mark.django_db

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 18, 12, 0, tzinfo=LONDON)  # a Wednesday
URL = "/treatments/reports/"


def at(day: int, month: int = 11, year: int = 2026, hour: int = 10) -> datetime:
    return datetime(year, month, day, hour, 0, tzinfo=LONDON)


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def clinic() -> dict[str, User]:
    """Two practitioners; the clinic's first booking on 1 Jun 2025."""
    alice = UserFactory(
        username="alice", first_name="Alice", last_name="Adams", roles=[Role.PRACTITIONER]
    )
    bob = UserFactory(
        username="bob", first_name="Bob", last_name="Brown", roles=[Role.PRACTITIONER]
    )
    protocol = ProtocolFactory()
    batch = BatchFactory(
        product=ProductFactory(name="Glow cocktail"), lot_number="G-1", received_on=date(2025, 1, 1)
    )
    book(alice, protocol, at(1, month=6, year=2025), BookingStatus.COMPLETED)  # the first
    book(alice, protocol, at(3), BookingStatus.COMPLETED)
    book(alice, protocol, at(4), BookingStatus.NO_SHOW)
    event(record(book(alice, protocol, at(16), BookingStatus.COMPLETED), batch), "bruising", "mild")
    event(record(book(bob, protocol, at(17), BookingStatus.COMPLETED), batch), "swelling", "severe")
    book(bob, protocol, at(10), BookingStatus.NO_SHOW)
    return {"alice": alice, "bob": bob}


def page(client: Client, **query: str) -> tuple[int, str]:
    response = client.get(reverse("treatments:reports"), query)
    return response.status_code, response.content.decode()


@pytest.fixture
def as_manager(manager: User) -> Client:
    return sign_in(Client(), manager)


def test_reports_url_is_the_one_the_menu_links() -> None:
    assert reverse("treatments:reports") == URL


def test_without_a_range_the_reports_cover_the_last_twelve_weeks_to_today(
    clinic: dict[str, User], as_manager: Client
) -> None:
    response = as_manager.get(URL)
    assert response.status_code == 200
    reports = response.context["reports"]
    assert (reports.period.first, reports.period.last) == (date(2026, 8, 31), date(2026, 11, 18))
    assert len(reports.weeks) == 12
    form_values = response.content.decode()
    assert 'value="31/08/2026"' in form_values
    assert 'value="18/11/2026"' in form_values
    assert "From Mon 31 Aug to Wed 18 Nov, the whole clinic." in form_values


def test_a_range_counts_only_the_sessions_of_its_days(
    clinic: dict[str, User], as_manager: Client
) -> None:
    response = as_manager.get(URL, {"since": "2026-11-04", "until": "2026-11-16"})
    assert response.status_code == 200
    reports = response.context["reports"]
    # The weeks of 2, 9 and 16 Nov; 3 Nov (before the range) is left out.
    assert reports.weeks == [date(2026, 11, 2), date(2026, 11, 9), date(2026, 11, 16)]
    assert {r.name: r.counts for r in reports.sessions} == {"Alice Adams": [0, 0, 1]}
    rates = {r.name: (r.completed, r.no_shows) for r in reports.no_shows}
    assert rates == {"Alice Adams": (1, 1), "Bob Brown": (0, 1)}
    assert [(r.label, r.total) for r in reports.adverse_by_product] == [("Glow cocktail", 1)]


def test_a_range_reaching_back_to_the_first_booking_reads_a_year_and_a_half(
    clinic: dict[str, User], as_manager: Client
) -> None:
    response = as_manager.get(URL, {"since": "2025-06-01", "until": "2026-11-18"})
    assert response.status_code == 200
    reports = response.context["reports"]
    assert reports.weeks[0] == date(2025, 5, 26)
    assert {r.name: r.total for r in reports.sessions} == {"Alice Adams": 3, "Bob Brown": 1}
    # Weeks of another year name it.
    assert "26 May 2025" in response.content.decode()


def test_the_practitioner_filter_keeps_that_practitioners_figures_only(
    clinic: dict[str, User], as_manager: Client
) -> None:
    bob = clinic["bob"]
    response = as_manager.get(URL, {"practitioner": str(bob.uuid)})
    assert response.status_code == 200
    reports = response.context["reports"]
    assert [r.name for r in reports.sessions] == ["Bob Brown"]
    assert [(r.name, r.completed, r.no_shows) for r in reports.no_shows] == [("Bob Brown", 1, 1)]
    overall = reports.no_show_overall
    assert (overall.completed, overall.no_shows) == (1, 1)
    assert [(r.label, r.by_effect) for r in reports.adverse_by_product] == [
        ("Glow cocktail", {"swelling": 1})
    ]
    body = response.content.decode()
    assert "Bob Brown's sessions." in body
    assert f'<option value="{bob.uuid}" selected>Bob Brown</option>' in body


def test_course_completion_counts_the_courses_started_in_the_range(
    clinic: dict[str, User], as_manager: Client
) -> None:
    alice, bob = clinic["alice"], clinic["bob"]
    protocol = ProtocolFactory()
    courses = {}
    for name, day, status in [("early", 2, CourseStatus.COMPLETED), ("late", 12, "stopped")]:
        with time_machine.travel(at(day), tick=False):
            courses[name] = TreatmentCourse.objects.create(
                patient=PatientFactory(),
                protocol=protocol,
                planned_sessions=4,
                interval="fortnightly",
                status=status,
                created_by=alice,
            )
    with time_machine.travel(at(13), tick=False):
        running = TreatmentCourse.objects.create(
            patient=PatientFactory(),
            protocol=protocol,
            planned_sessions=6,
            interval="fortnightly",
            created_by=alice,
        )
    book(alice, protocol, at(5), BookingStatus.COMPLETED, course=courses["early"])
    book(bob, protocol, at(13, hour=15), BookingStatus.COMPLETED, course=running)
    book(alice, protocol, at(14), BookingStatus.COMPLETED, course=running)

    second_week = as_manager.get(URL, {"since": "2026-11-09", "until": "2026-11-18"})
    courses_in_range = second_week.context["reports"].courses
    assert (courses_in_range.started, courses_in_range.completed) == (2, 0)
    assert (courses_in_range.stopped, courses_in_range.running) == (1, 1)
    assert (courses_in_range.sessions_done, courses_in_range.sessions_planned) == (2, 10)

    # Bob gave one session of the running course: that course is his too, all
    # its sessions done counted.
    bobs = as_manager.get(
        URL, {"since": "2026-11-01", "until": "2026-11-18", "practitioner": str(bob.uuid)}
    )
    bobs_courses = bobs.context["reports"].courses
    assert (bobs_courses.started, bobs_courses.running, bobs_courses.sessions_done) == (1, 1, 2)


def test_a_new_clinic_sees_its_reports_from_its_first_booking(
    manager: User, as_manager: Client
) -> None:
    practitioner = UserFactory(roles=[Role.PRACTITIONER])
    book(practitioner, ProtocolFactory(), at(6), BookingStatus.COMPLETED)
    response = as_manager.get(URL)
    assert response.status_code == 200
    assert response.context["reports"].period.first == date(2026, 11, 6)


def test_a_clinic_without_bookings_sees_empty_reports(as_manager: Client) -> None:
    status, body = page(as_manager)
    assert status == 200
    assert "No session completed in these days." in body
    assert "No course started in these days." in body


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"since": "2026-13-01"}, "since", "Enter the date as dd/mm/yyyy"),
        ({"until": "yesterday"}, "until", "Enter the date as dd/mm/yyyy"),
        ({"since": "2026-11-31"}, "since", "Enter the date as dd/mm/yyyy"),
        (
            {"since": "2026-11-19", "until": "2026-11-30"},
            "since",
            "The reports go up to today, ",
        ),
        ({"until": "9999-12-31"}, "until", "Choose a date between 01/01/1900 and 31/12/2199."),
        (
            {"since": "2026-11-10", "until": "2026-11-09"},
            "since",
            "The start date is after the end date.",
        ),
        ({"since": "0001-01-01"}, "since", "Choose a date between 01/01/1900 and 31/12/2199."),
        ({"practitioner": "not-a-uuid"}, "practitioner", "That practitioner is not known."),
        (
            {"practitioner": "00000000-0000-4000-8000-000000000099"},
            "practitioner",
            "That practitioner is not known.",
        ),
    ],
)
def test_a_range_or_practitioner_refused_answers_400_with_the_reason(
    clinic: dict[str, User], as_manager: Client, query: dict[str, str], field: str, message: str
) -> None:
    response = as_manager.get(URL, query)
    assert response.status_code == 400
    body = response.content.decode()
    assert message in body
    assert response.context["form"].errors[field]
    assert 'data-testid="report-refused"' in body
    assert 'id="report-charts"' not in body  # no figure under a refused filter


@pytest.mark.parametrize(
    ("until", "cut"),
    [
        ("2026-11-18", False),  # today: the range as asked
        ("2026-11-19", True),  # tomorrow: up to today
        ("2026-11-30", True),  # this month
        ("2026-12-31", True),  # this year
        ("2199-12-31", True),
    ],
)
def test_a_range_ending_after_today_is_reported_up_to_today_and_says_so(
    clinic: dict[str, User], as_manager: Client, until: str, cut: bool
) -> None:
    response = as_manager.get(URL, {"since": "2026-11-01", "until": until})
    assert response.status_code == 200
    reports = response.context["reports"]
    assert (reports.period.first, reports.period.last) == (date(2026, 11, 1), date(2026, 11, 18))
    # The figures of the days up to today: 3, 16 and 17 Nov completed.
    assert sum(r.total for r in reports.sessions) == 3
    body = response.content.decode()
    assert 'id="report-charts"' in body
    note = re.search(r'data-testid="report-cut">([^<]*)<', body)
    if not cut:
        assert note is None
        return
    assert note is not None
    asked = dates.day(date.fromisoformat(until))
    assert unescape(note[1]) == (
        f"The range asked for ends on {asked}: the figures go up to today, Wed 18 Nov."
    )
    # What was typed stays in the form.
    assert f'value="{until}"' in body or dates.input_date(date.fromisoformat(until)) in body


def test_a_range_starting_before_the_first_booking_is_reported_from_it(
    clinic: dict[str, User], as_manager: Client
) -> None:
    response = as_manager.get(URL, {"since": "2025-01-01", "until": "2025-12-31"})
    assert response.status_code == 200
    reports = response.context["reports"]
    assert (reports.period.first, reports.period.last) == (date(2025, 6, 1), date(2025, 12, 31))
    assert {r.name: r.total for r in reports.sessions} == {"Alice Adams": 1}
    note = re.search(r'data-testid="report-cut">([^<]*)<', response.content.decode())
    assert note is not None
    assert unescape(note[1]) == (
        f"The clinic's first booking was on {dates.day(date(2025, 6, 1))}: the figures start there."
    )
    # The day before the first booking is cut too; the day itself is not.
    assert as_manager.get(URL, {"since": "2025-05-31"}).context["form"].asked_since is not None
    assert as_manager.get(URL, {"since": "2025-06-01"}).context["form"].asked_since is None


def test_every_range_the_page_offers_gives_figures(
    clinic: dict[str, User], as_manager: Client
) -> None:
    body = as_manager.get(URL, {"practitioner": str(clinic["alice"].uuid)}).content.decode()
    offered = re.search(r'data-testid="report-ranges">(.*?)</nav>', body, re.S)
    assert offered is not None
    links = re.findall(r'href="([^"]*)">([^<]*)<', offered[1])
    assert [label for _href, label in links] == [
        "Last 12 weeks",
        "This month",
        "Last month",
        "This year",
    ]
    for href, label in links:
        response = as_manager.get(URL + unescape(href))
        assert response.status_code == 200, label
        assert 'id="report-charts"' in response.content.decode(), label
        assert response.context["practitioner"] == clinic["alice"], label
    this_year = as_manager.get(URL + unescape(links[3][0])).context["reports"]
    assert (this_year.period.first, this_year.period.last) == (date(2026, 1, 1), NOW.date())


def test_a_range_over_two_years_is_refused(as_manager: Client) -> None:
    # No booking yet: only the length of the range is in question.
    status, body = page(as_manager, since="2024-11-17", until="2026-11-18")
    assert status == 400
    assert "A report covers at most two years: choose a shorter range." in body
    status, _body = page(as_manager, since="2024-11-18", until="2026-11-18")
    assert status == 200
    # Two years back from today, not from the end asked for after it.
    status, body = page(as_manager, since="2024-11-17", until="2026-12-31")
    assert status == 400
    assert "A report covers at most two years: choose a shorter range." in body
    status, _body = page(as_manager, since="2024-11-18", until="2026-12-31")
    assert status == 200


def test_two_years_back_from_a_29th_of_february_is_the_28th() -> None:
    assert earliest_start(date(2028, 2, 29)) == date(2026, 2, 28)
    assert earliest_start(date(2026, 11, 18)) == date(2024, 11, 18)


def test_a_practitioner_who_left_can_still_be_reported_on(
    clinic: dict[str, User], as_manager: Client
) -> None:
    alice = clinic["alice"]
    User.objects.filter(pk=alice.pk).update(is_active=False)
    response = as_manager.get(URL, {"practitioner": str(alice.uuid)})
    assert response.status_code == 200
    assert [r.name for r in response.context["reports"].sessions] == ["Alice Adams"]


def test_a_receptionist_is_not_a_practitioner_to_report_on(
    clinic: dict[str, User], receptionist: User, as_manager: Client
) -> None:
    status, body = page(as_manager, practitioner=str(receptionist.uuid))
    assert status == 400
    assert "That practitioner is not known." in body


# --- Who sees the reports ------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["receptionist", "practitioner"], indirect=True)
@pytest.mark.parametrize("download", ["", "sessions-per-week", "no-shows"])
def test_staff_other_than_managers_are_refused_the_reports_and_their_files(
    clinic: dict[str, User], persona: User, download: str
) -> None:
    client = sign_in(Client(), persona)
    response = client.get(URL, {"download": download} if download else {})
    assert response.status_code == 403
    assert "Alice Adams" not in response.content.decode()


def test_a_stranger_is_sent_to_sign_in(clinic: dict[str, User]) -> None:
    response = Client().get(URL, {"download": "no-shows"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_a_patient_signed_in_to_the_portal_is_refused(
    clinic: dict[str, User], practitioner: User
) -> None:
    account = portal_invite(patient=PatientFactory(), invited_by=practitioner)
    client = Client()
    client.force_login(account.user)
    assert client.get(URL).status_code == 403
    assert client.get(URL, {"download": "no-shows"}).status_code == 403


def test_a_practitioner_who_is_also_a_manager_sees_them(
    clinic: dict[str, User], make_staff: object
) -> None:
    both = make_staff("both", Role.PRACTITIONER, Role.MANAGER)  # type: ignore[operator]
    status, body = page(sign_in(Client(), both))
    assert status == 200
    assert "Alice Adams" in body

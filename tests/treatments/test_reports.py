"""The manager's reports, on a small data set whose figures are known."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

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
from tests.treatments.test_session_helpers import make_booking
from treatments.models import (
    AdverseEvent,
    Batch,
    Booking,
    BookingStatus,
    CocktailLine,
    CourseStatus,
    Protocol,
    SessionRecord,
    TreatmentCourse,
)
from treatments.selectors.reports import manager_reports

pytestmark = pytest.mark.django_db

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 18, 12, 0, tzinfo=LONDON)  # a Wednesday


def at(day: int, month: int = 11, hour: int = 10) -> datetime:
    return datetime(2026, month, day, hour, 0, tzinfo=LONDON)


def book(
    practitioner: User, protocol: Protocol, starts: datetime, status: str, **kw: object
) -> Booking:
    return make_booking(
        patient=PatientFactory(),
        practitioner=practitioner,
        protocol=protocol,
        starts_at=starts,
        status=status,
        **kw,  # type: ignore[arg-type]
    )


def record(booking: Booking, *batches: Batch) -> SessionRecord:
    session = SessionRecord.objects.create(
        booking=booking,
        numbing_cream=False,
        completed_at=booking.ends_at,
        completed_by=booking.practitioner,
    )
    for batch in batches:
        CocktailLine.objects.create(
            session=session,
            batch=batch,
            amount=Decimal("1.00"),
            area="face",
            technique="nappage",
            depth_mm=Decimal("1.0"),
            needle_gauge=32,
            device="syringe",
        )
    return session


def event(session: SessionRecord, effect: str, severity: str) -> AdverseEvent:
    return AdverseEvent.objects.create(
        session=session,
        effect=effect,
        severity=severity,
        onset=session.booking.ends_at,
        recorded_by=session.booking.practitioner,
    )


@pytest.fixture
def known() -> Iterator[dict[str, object]]:
    # Made on the day the reports are read: a course counts from the day it
    # was created, which must not be the day the suite runs.
    with time_machine.travel(NOW, tick=False):
        yield _known()


def _known() -> dict[str, object]:
    alice = UserFactory(first_name="Alice", last_name="Adams", roles=[Role.PRACTITIONER])
    bob = UserFactory(first_name="Bob", last_name="Brown", roles=[Role.PRACTITIONER])
    protocol = ProtocolFactory()
    p1 = ProductFactory(name="Glow cocktail", maker="Lab A")
    p2 = ProductFactory(name="Hydra boost", maker="Lab B")
    b1 = BatchFactory(product=p1, lot_number="G-1", received_on=date(2026, 1, 1))
    b2 = BatchFactory(product=p2, lot_number="H-1", received_on=date(2026, 1, 1))
    b3 = BatchFactory(product=p1, lot_number="G-2", received_on=date(2026, 1, 1))

    course_done = TreatmentCourse.objects.create(
        patient=PatientFactory(),
        protocol=protocol,
        planned_sessions=6,
        interval="fortnightly",
        status=CourseStatus.COMPLETED,
        created_by=alice,
    )
    TreatmentCourse.objects.create(
        patient=PatientFactory(),
        protocol=protocol,
        planned_sessions=4,
        interval="fortnightly",
        created_by=alice,
    )

    a1 = book(alice, protocol, at(16), BookingStatus.COMPLETED, course=course_done)
    book(alice, protocol, at(17), BookingStatus.COMPLETED, course=course_done)
    book(alice, protocol, at(2), BookingStatus.COMPLETED)
    book(alice, protocol, at(3), BookingStatus.NO_SHOW)
    book(alice, protocol, at(1, month=6), BookingStatus.COMPLETED)  # outside the 12 weeks
    book(alice, protocol, at(18, hour=9), BookingStatus.CANCELLED)
    b_1 = book(bob, protocol, at(17), BookingStatus.COMPLETED)
    book(bob, protocol, at(16), BookingStatus.NO_SHOW)
    book(bob, protocol, at(9), BookingStatus.NO_SHOW)

    s1 = record(a1, b1, b1, b2)  # two lines of the same batch count once
    s2 = record(b_1, b3)
    event(s1, "bruising", "mild")
    event(s1, "swelling", "moderate")
    event(s2, "bruising", "mild")
    return {"alice": alice, "bob": bob}


def test_sessions_per_practitioner_per_iso_week(known: dict[str, object]) -> None:
    with time_machine.travel(NOW, tick=False):
        reports = manager_reports(today=NOW.date())
    assert len(reports.weeks) == 12
    assert reports.weeks[-1] == date(2026, 11, 16)
    table = {row.name: row.counts for row in reports.sessions}
    assert table["Alice Adams"][-1] == 2  # week of 16 Nov
    assert table["Alice Adams"][-3] == 1  # week of 2 Nov
    assert sum(table["Alice Adams"]) == 3  # June is outside the 12 weeks
    assert table["Bob Brown"][-1] == 1
    assert sum(table["Bob Brown"]) == 1


def test_no_show_rate_per_practitioner_and_overall(known: dict[str, object]) -> None:
    with time_machine.travel(NOW, tick=False):
        reports = manager_reports(today=NOW.date())
    rates = {r.name: (r.completed, r.no_shows, r.rate) for r in reports.no_shows}
    assert rates["Alice Adams"] == (3, 1, Decimal("25.0"))
    assert rates["Bob Brown"] == (1, 2, Decimal("66.7"))
    overall = reports.no_show_overall
    assert (overall.completed, overall.no_shows, overall.rate) == (4, 3, Decimal("42.9"))


def test_course_completion(known: dict[str, object]) -> None:
    with time_machine.travel(NOW, tick=False):
        courses = manager_reports(today=NOW.date()).courses
    assert (courses.started, courses.completed, courses.rate) == (2, 1, Decimal("50.0"))
    assert (courses.sessions_done, courses.sessions_planned) == (2, 10)
    assert courses.sessions_rate == Decimal("20.0")


def test_adverse_events_by_product_and_by_batch(known: dict[str, object]) -> None:
    with time_machine.travel(NOW, tick=False):
        reports = manager_reports(today=NOW.date())
    products = {r.label: r for r in reports.adverse_by_product}
    glow = products["Glow cocktail"]
    assert glow.total == 3
    assert glow.by_effect == {"bruising": 2, "swelling": 1}
    assert glow.severities == [2, 1, 0]  # mild, moderate, severe
    hydra = products["Hydra boost"]
    assert (hydra.total, hydra.by_effect) == (2, {"bruising": 1, "swelling": 1})
    batches = {r.detail: r.total for r in reports.adverse_by_batch}
    assert batches == {"G-1": 2, "H-1": 2, "G-2": 1}


def test_reports_page_shows_the_figures_to_the_manager(
    known: dict[str, object], manager: User
) -> None:
    client = sign_in(Client(), manager)
    with time_machine.travel(NOW, tick=False):
        response = client.get(reverse("treatments:reports"))
    page = response.content.decode()
    assert response.status_code == 200
    assert "Alice Adams" in page
    assert "Bob Brown" in page
    assert "42.9%" in page
    assert "66.7%" in page
    assert "2 / 10" in page
    assert "Glow cocktail" in page
    assert "G-2" in page


@pytest.mark.parametrize("persona", ["receptionist", "practitioner"], indirect=True)
def test_reports_are_for_managers_only(persona: User) -> None:
    client = sign_in(Client(), persona)
    assert client.get(reverse("treatments:reports")).status_code == 403


def test_reports_page_query_budget_is_the_same_for_one_row_and_many(
    manager: User, django_assert_max_num_queries: object
) -> None:
    client = sign_in(Client(), manager)
    protocol = ProtocolFactory()
    batch = BatchFactory(received_on=date(2026, 1, 1))
    practitioner = UserFactory(roles=[Role.PRACTITIONER])
    with time_machine.travel(NOW, tick=False):
        first = book(practitioner, protocol, at(16), BookingStatus.COMPLETED)
        event(record(first, batch), "redness", "mild")
        # 16: the clinic's settings (its name in the header) are read once a page.
        with django_assert_max_num_queries(16):  # type: ignore[operator]
            assert client.get(reverse("treatments:reports")).status_code == 200
        for day in range(1, 13):
            other = UserFactory(roles=[Role.PRACTITIONER])
            booking = book(other, protocol, at(day), BookingStatus.COMPLETED)
            event(record(booking, BatchFactory(received_on=date(2026, 1, 1))), "pain", "severe")
            book(other, protocol, at(day, hour=14), BookingStatus.NO_SHOW)
        # 16: the clinic's settings (its name in the header) are read once a page.
        with django_assert_max_num_queries(16):  # type: ignore[operator]
            page = client.get(reverse("treatments:reports")).content.decode()
    assert page.count('class="adverse-row"') == 13 + 13

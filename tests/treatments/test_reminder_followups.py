"""Reception's follow-up list at any length: the same queries and the same
rendering work for one row as for sixty, and every time written in the
clinic's zone, as the rest of the product writes it."""

from __future__ import annotations

import cProfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import formats
from django.utils.translation import trans_real

from clinic import dates
from clinic.models import AuditEvent, User
from tests.conftest import sign_in
from tests.factories import PatientFactory
from tests.treatments import test_reminders_support as support
from tests.treatments.test_reminders_support import Clinic, book, local
from treatments.models import (
    Booking,
    BookingStatus,
    Interval,
    Reminder,
    ReminderStatus,
    TreatmentCourse,
)

clinic = support.clinic

# A Monday in November: London on GMT.
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
URL = "treatments:reminder_followups"


@pytest.fixture
def frozen() -> Iterator[time_machine.Coordinates]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def _waiting_courses(c: Clinic, number: int, start: int = 0) -> None:
    """`number` patients each in a course with nothing booked."""
    for index in range(start, start + number):
        TreatmentCourse.objects.create(
            patient=PatientFactory(first_name="Waiting", last_name=f"Number{index}"),
            protocol=c.protocol,
            planned_sessions=3,
            interval=Interval.WEEKLY,
            created_by=c.practitioner,
        )


def _failed_reminders(c: Clinic, bookings: int, start: int = 0) -> None:
    """Two failed reminders (48 and 2 hours before) for each of `bookings`
    weekly sessions."""
    made = [
        book(c, local(date(2026, 11, 5), 9) + timedelta(days=7 * week))
        for week in range(start, start + bookings)
    ]
    Reminder.objects.filter(booking__in=made).update(
        status=ReminderStatus.FAILED, error="Mailbox unavailable."
    )


def _queries(client: Client, **pages: str) -> int:
    with CaptureQueriesContext(connection) as seen:
        page = client.get(reverse(URL), pages)
    assert page.status_code == 200
    return len(seen)


def test_the_follow_up_list_runs_the_same_queries_for_1_or_60_rows_in_each_list(
    clinic: Clinic, frozen: time_machine.Coordinates, receptionist: User, client: Client
) -> None:
    _waiting_courses(clinic, 1)
    booking = book(clinic, local(date(2026, 11, 5), 9))
    Reminder.objects.filter(booking=booking, lead_minutes=120).update(status=ReminderStatus.FAILED)
    sign_in(client, receptionist)
    client.get(reverse(URL))  # the first request of a signed-in client reads its session once more
    one = _queries(client)
    _waiting_courses(clinic, 59, start=1)
    Reminder.objects.filter(booking=booking).update(status=ReminderStatus.FAILED)
    _failed_reminders(clinic, 29, start=1)
    assert Reminder.objects.filter(status=ReminderStatus.FAILED).count() == 60
    sixty = _queries(client)
    # Session, user, device and roles; one query a list; the audit events
    # of the patients shown, in one statement; the clinic's settings.
    assert one == sixty == 8
    html = client.get(reverse(URL)).content.decode()
    assert "1 to 25 of 60" in html
    assert html.count("Waiting Number") == 25
    assert html.count('data-status="failed"') == 25
    # A page past the end is the last page, in the same queries.
    assert _queries(client, courses_page="999999999", failed_page="3") == 8
    last = client.get(reverse(URL), {"courses_page": "999999999"}).content.decode()
    assert "51 to 60 of 60" in last
    assert last.count("Waiting Number") == 10


def _work(client: Client) -> dict[str, int]:
    """Django's per-item work in one request of the first page: translations
    looked up, dates formatted and URLs reversed."""
    profiler = cProfile.Profile()
    profiler.enable()
    page = client.get(reverse(URL))
    profiler.disable()
    assert page.status_code == 200
    profiler.create_stats()
    counted = {
        "translations": trans_real.gettext,
        "dates": formats.date_format,
        "reversals": reverse,
    }
    calls = {key: row[1] for key, row in profiler.stats.items()}
    return {
        name: calls.get((f.__code__.co_filename, f.__code__.co_firstlineno, f.__code__.co_name), 0)
        for name, f in counted.items()
    }


def test_a_longer_follow_up_list_adds_no_translation_date_format_or_url_reversal_a_row(
    clinic: Clinic, frozen: time_machine.Coordinates, receptionist: User, client: Client
) -> None:
    _waiting_courses(clinic, 1)
    _failed_reminders(clinic, 1)
    sign_in(client, receptionist)
    client.get(reverse(URL))
    one = _work(client)
    _waiting_courses(clinic, 24, start=1)
    _failed_reminders(clinic, 11, start=1)
    full = _work(client)
    html = client.get(reverse(URL)).content.decode()
    # Each list a whole page long (a second page would add its pager's words).
    assert html.count("Waiting Number") == 25
    assert html.count('data-status="failed"') == 24
    # Each label, phrase and URL pattern is read once a page, however many rows.
    assert full == one


def test_the_follow_up_list_writes_times_in_the_clinics_zone_as_the_date_filter_does(
    clinic: Clinic, frozen: time_machine.Coordinates, receptionist: User, client: Client
) -> None:
    # A session in summer time (10:00 UTC is 11:00 in London) whose reminder
    # failed, and a course whose last session ended at 23:30 UTC on 31 May:
    # already 1 June in London.
    patient = PatientFactory(first_name="Summer", last_name="Time")
    session = book(clinic, datetime(2027, 5, 6, 10, 0, tzinfo=UTC), patient=patient)
    Reminder.objects.filter(booking=session, lead_minutes=120).update(
        status=ReminderStatus.FAILED, error="The email address was refused."
    )
    course = TreatmentCourse.objects.create(
        patient=PatientFactory(first_name="Late", last_name="Evening"),
        protocol=clinic.protocol,
        planned_sessions=4,
        interval=Interval.WEEKLY,
        created_by=clinic.practitioner,
    )
    done = book(clinic, NOW + timedelta(days=1), patient=course.patient, course=course)
    ended = datetime(2026, 5, 31, 23, 30, tzinfo=UTC)
    Booking.objects.filter(pk=done.pk).update(
        status=BookingStatus.COMPLETED, starts_at=ended - timedelta(minutes=30), ends_at=ended
    )
    sign_in(client, receptionist)
    page = client.get(reverse(URL))
    html = page.content.decode()
    assert "session Thu 6 May 2027, 11:00 · 2 h before" in html
    assert "6 May 2027, 09:00" in html  # due two hours before, local
    assert "Mon 1 Jun" in html
    assert "1 of 4" in html
    # Written as the date filter writes the same instants in the same zone.
    # As clinic/dates.py writes them everywhere else.
    assert dates.day_time(datetime(2027, 5, 6, 10, 0, tzinfo=UTC)) in html
    assert dates.day_time(datetime(2027, 5, 6, 8, 0, tzinfo=UTC)) in html
    assert dates.day(ended) in html
    # The patients named are recorded as seen, once each.
    seen = set(
        AuditEvent.objects.filter(object_type="treatments.followups").values_list(
            "patient_ref", flat=True
        )
    )
    assert seen == {patient.uuid, course.patient.uuid}
    assert f'href="{reverse("patients:detail", kwargs={"patient": course.patient.uuid})}"' in html
    log = reverse("treatments:reminder_log", kwargs={"patient": patient.uuid})
    assert f'href="{log}"' in html

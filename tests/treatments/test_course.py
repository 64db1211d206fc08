"""The course engine: proposing a course, booking it all or nothing, and
closing it with its maintenance date."""

from __future__ import annotations

from datetime import date, time, timedelta

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from clinic.localtime import to_local
from clinic.models import User
from tests.conftest import sign_in
from tests.factories import PatientFactory
from tests.treatments import test_booking_support as support
from tests.treatments.test_booking_support import MONDAY, Clinic, at, book
from treatments.models import (
    Booking,
    BookingStatus,
    ClinicClosure,
    CourseStatus,
    TreatmentCourse,
)
from treatments.services.course import (
    CourseRefusedError,
    course_book,
    course_propose,
    course_session_completed,
)

clinic = support.clinic
frozen = support.frozen
pytestmark = pytest.mark.usefixtures("frozen")
TUESDAY = MONDAY + timedelta(days=1)


def _propose(c: Clinic, first: date, hour: int = 10, **extra: object) -> list:  # type: ignore[type-arg]
    return course_propose(
        patient=c.patient,
        protocol=c.protocol,
        practitioner=c.practitioner,
        room=c.room,
        first_start=at(first, hour),
        **extra,  # type: ignore[arg-type]
    )


def test_proposal_follows_the_protocol_sessions_and_interval(clinic: Clinic) -> None:
    proposals = _propose(clinic, TUESDAY)
    assert len(proposals) == 6
    assert [to_local(p.starts_at).date() for p in proposals] == [
        TUESDAY + timedelta(days=14 * i) for i in range(6)
    ]
    assert all(to_local(p.starts_at).time() == time(10) for p in proposals)
    assert not any(p.note for p in proposals)


@pytest.mark.parametrize(("interval", "days"), [("weekly", 7), ("monthly", 28)])
def test_weekly_and_monthly_keep_the_weekday(clinic: Clinic, interval: str, days: int) -> None:
    proposals = _propose(clinic, TUESDAY, sessions=3, interval=interval)
    assert [to_local(p.starts_at).date() for p in proposals] == [
        TUESDAY + timedelta(days=days * i) for i in range(3)
    ]


def test_a_weekly_ten_oclock_stays_ten_oclock_across_the_spring_clock_change(
    clinic: Clinic,
) -> None:
    with time_machine.travel(at(date(2027, 3, 1), 8), tick=False):
        proposals = _propose(clinic, date(2027, 3, 16), sessions=4, interval="weekly")
    local = [to_local(p.starts_at) for p in proposals]
    assert [(d.date(), d.time()) for d in local] == [
        (date(2027, 3, 16) + timedelta(days=7 * i), time(10)) for i in range(4)
    ]
    # The UTC instant moves by an hour; the wall clock does not.
    assert [p.starts_at.hour for p in proposals] == [10, 10, 9, 9]


def test_a_closure_moves_a_session_to_the_next_free_day(clinic: Clinic) -> None:
    closed = TUESDAY + timedelta(days=14)
    ClinicClosure.objects.create(starts_on=closed, ends_on=closed, reason="Training day")
    proposals = _propose(clinic, TUESDAY, sessions=3)
    second = proposals[1]
    assert second.planned_on == closed
    assert to_local(second.starts_at).date() == closed + timedelta(days=1)
    assert to_local(second.starts_at).time() == time(9)
    assert "Training day" in second.note


def test_a_busy_time_moves_to_the_nearest_free_time_that_day(clinic: Clinic) -> None:
    third = TUESDAY + timedelta(days=28)
    book(
        patient=clinic.other_patient,
        practitioner=clinic.practitioner,
        room=clinic.other_room,
        protocol=clinic.protocol,
        starts_at=at(third, 10),
        minutes=30,
    )
    proposals = _propose(clinic, TUESDAY, sessions=3)
    assert to_local(proposals[2].starts_at).date() == third
    # 10:00-10:30 is taken: 10:30 is half an hour away, 09:15 three quarters.
    assert to_local(proposals[2].starts_at).time() == time(10, 30)
    assert proposals[2].note


def test_the_proposal_uses_a_fixed_number_of_queries(clinic: Clinic) -> None:
    with CaptureQueriesContext(connection) as few:
        _propose(clinic, TUESDAY, sessions=2)
    with CaptureQueriesContext(connection) as many:
        _propose(clinic, TUESDAY, sessions=12)
    assert len(few) == len(many) <= 4


def test_course_book_creates_the_course_and_every_booking(
    clinic: Clinic, receptionist: User
) -> None:
    starts = [p.starts_at for p in _propose(clinic, TUESDAY)]
    course = course_book(
        patient=clinic.patient,
        protocol=clinic.protocol,
        practitioner=clinic.practitioner,
        room=clinic.room,
        starts=starts,
        interval="fortnightly",
        created_by=receptionist,
    )
    assert course.planned_sessions == 6
    assert list(course.bookings.order_by("starts_at").values_list("starts_at", flat=True)) == starts


def test_course_book_saves_nothing_when_one_session_conflicts_and_names_it(
    clinic: Clinic, receptionist: User
) -> None:
    starts = [p.starts_at for p in _propose(clinic, TUESDAY)]
    book(
        patient=clinic.other_patient,
        practitioner=clinic.practitioner,
        room=clinic.other_room,
        protocol=clinic.protocol,
        starts_at=starts[3],
    )
    with pytest.raises(CourseRefusedError) as raised:
        course_book(
            patient=clinic.patient,
            protocol=clinic.protocol,
            practitioner=clinic.practitioner,
            room=clinic.room,
            starts=starts,
            interval="fortnightly",
            created_by=receptionist,
        )
    assert raised.value.number == 4
    assert "Session 4" in raised.value.message
    assert "This slot was just taken" in raised.value.message
    assert not TreatmentCourse.objects.exists()
    assert Booking.objects.count() == 1


def test_the_last_completed_session_closes_the_course_with_its_maintenance_date(
    clinic: Clinic, receptionist: User
) -> None:
    starts = [at(TUESDAY, 10), at(TUESDAY + timedelta(days=14), 10)]
    course = course_book(
        patient=clinic.patient,
        protocol=clinic.protocol,
        practitioner=clinic.practitioner,
        room=clinic.room,
        starts=starts,
        interval="fortnightly",
        created_by=receptionist,
    )
    first, last = course.bookings.order_by("starts_at")
    Booking.objects.filter(pk=first.pk).update(status=BookingStatus.COMPLETED)
    assert course_session_completed(course=course).status == CourseStatus.ACTIVE
    Booking.objects.filter(pk=last.pk).update(status=BookingStatus.COMPLETED)
    closed = course_session_completed(course=course)
    assert closed.status == CourseStatus.COMPLETED
    assert closed.maintenance_due_on == date(2027, 6, 8)  # 8 Dec + 6 calendar months


# --- Pages -----------------------------------------------------------------------------


def _start(c: Clinic, day: date = TUESDAY, start: str = "10:00") -> dict[str, str]:
    return {
        "patient": str(c.patient.uuid),
        "protocol": str(c.protocol.uuid),
        "practitioner": str(c.practitioner.uuid),
        "room": str(c.room.uuid),
        "date": day.isoformat(),
        "start_time": start,
    }


def test_reception_proposes_adjusts_and_confirms_a_course(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    sign_in(client, receptionist)
    url = reverse("treatments:course_new")
    response = client.get(url, _start(clinic))
    body = response.content.decode()
    assert response.status_code == 200
    assert body.count('data-testid="proposal-row"') == 6
    data = {**_start(clinic), "sessions": "6", "interval": ""}
    for n in range(1, 7):
        data[f"date_{n}"] = (TUESDAY + timedelta(days=14 * (n - 1))).isoformat()
        data[f"time_{n}"] = "10:00"
    data["time_6"] = "15:00"  # adjusted
    response = client.post(url, data)
    course = TreatmentCourse.objects.get()
    assert response.status_code == 302
    assert response["Location"] == course.get_absolute_url()
    last = course.bookings.order_by("-starts_at").first()
    assert to_local(last.starts_at).time() == time(15)


def test_a_conflicting_session_on_confirm_is_409_named_and_nothing_is_saved(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    sign_in(client, receptionist)
    data = {
        **_start(clinic),
        "sessions": "2",
        "interval": "",
        "date_1": TUESDAY.isoformat(),
        "time_1": "10:00",
        "date_2": (TUESDAY + timedelta(days=14)).isoformat(),
        "time_2": "10:00",
    }
    book(
        patient=clinic.other_patient,
        practitioner=clinic.practitioner,
        room=clinic.other_room,
        protocol=clinic.protocol,
        starts_at=at(TUESDAY + timedelta(days=14), 10),
    )
    response = client.post(reverse("treatments:course_new"), data)
    assert response.status_code == 409
    body = response.content.decode()
    assert "Session 2" in body
    assert 'value="10:00"' in body
    assert not TreatmentCourse.objects.exists()


def test_course_proposal_with_bad_input_is_400(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    sign_in(client, receptionist)
    response = client.get(reverse("treatments:course_new"), {**_start(clinic), "date": "nope"})
    assert response.status_code == 400
    data = {
        **_start(clinic),
        "sessions": "2",
        "date_1": "2027-03-28",
        "time_1": "01:30",
        "date_2": "2027-04-11",
        "time_2": "10:00",
    }
    response = client.post(reverse("treatments:course_new"), data)
    assert response.status_code == 400
    assert "does not exist" in response.content.decode()


def test_the_booking_form_leads_to_the_course_proposal(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    sign_in(client, receptionist)
    data = {**_start(clinic), "duration": "", "action": "course"}
    response = client.post(reverse("treatments:booking_new"), data)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("treatments:course_new"))
    assert client.get(response["Location"]).status_code == 200
    assert not Booking.objects.exists()


def test_course_page_shows_planned_booked_done_and_next(
    client: Client,
    clinic: Clinic,
    receptionist: User,
    manager: User,
    django_assert_max_num_queries: object,
) -> None:
    starts = [p.starts_at for p in _propose(clinic, TUESDAY)]
    course = course_book(
        patient=clinic.patient,
        protocol=clinic.protocol,
        practitioner=clinic.practitioner,
        room=clinic.room,
        starts=starts,
        interval="fortnightly",
        created_by=receptionist,
    )
    sign_in(client, manager)
    with django_assert_max_num_queries(14):  # type: ignore[operator]
        response = client.get(course.get_absolute_url())
    body = response.content.decode()
    assert 'data-testid="planned">6<' in body
    assert 'data-testid="booked">6<' in body
    assert 'data-testid="done">0<' in body
    assert "Tue 24 Nov, 10:00" in body


def test_another_patients_course_under_this_patients_url_is_404(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    course = TreatmentCourse.objects.create(
        patient=clinic.other_patient,
        protocol=clinic.protocol,
        planned_sessions=6,
        interval="fortnightly",
        created_by=receptionist,
    )
    sign_in(client, receptionist)
    url = reverse(
        "treatments:course_detail", kwargs={"patient": clinic.patient.uuid, "course": course.uuid}
    )
    assert client.get(url).status_code == 404
    unknown = reverse(
        "treatments:course_detail", kwargs={"patient": PatientFactory().uuid, "course": course.uuid}
    )
    assert client.get(unknown).status_code == 404


def test_manager_cannot_book_a_course(client: Client, clinic: Clinic, manager: User) -> None:
    sign_in(client, manager)
    assert client.post(reverse("treatments:course_new"), _start(clinic)).status_code == 403


def test_course_page_query_count_is_the_same_with_one_session_or_six(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    one_course = course_book(
        patient=clinic.patient,
        protocol=clinic.protocol,
        practitioner=clinic.practitioner,
        room=clinic.room,
        starts=[at(TUESDAY, 9)],
        interval="fortnightly",
        created_by=receptionist,
    )
    starts = [p.starts_at for p in _propose(clinic, TUESDAY, hour=11)]
    six = course_book(
        patient=clinic.patient,
        protocol=clinic.protocol,
        practitioner=clinic.practitioner,
        room=clinic.room,
        starts=starts,
        interval="fortnightly",
        created_by=receptionist,
    )
    sign_in(client, receptionist)
    client.get(one_course.get_absolute_url())
    with CaptureQueriesContext(connection) as one:
        client.get(one_course.get_absolute_url())
    with CaptureQueriesContext(connection) as many:
        response = client.get(six.get_absolute_url())
    assert 'data-testid="planned">6<' in response.content.decode()
    assert len(one) == len(many) <= 14

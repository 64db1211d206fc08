"""The demo sessions of earlier weeks: booked and completed behind the gates,
each on its day, safe to seed twice, and left out when the clock cannot move."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine

from clinic import demo_clock
from clinic.models import User
from consent import demo as consent_demo
from patients import demo as patients_demo
from treatments.demo import allergy as demo_allergy
from treatments.demo import booking as demo_booking
from treatments.demo import catalogue as demo_catalogue
from treatments.demo import session as demo_session
from treatments.models import (
    AdverseEvent,
    Booking,
    BookingStatus,
    CautionAcknowledgement,
    CourseStatus,
    SessionRecord,
    TreatmentCourse,
)

pytestmark = pytest.mark.django_db
# The demo is seeded on a Tuesday morning in London, whatever the wall clock says.
LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=LONDON)


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


def seed_before_sessions(practitioner: User, receptionist: User) -> None:
    for part in (patients_demo, consent_demo, demo_catalogue, demo_allergy, demo_booking):
        part.seed(practitioner=practitioner, reception=receptionist)


def test_without_protocols_or_patients_the_demo_adds_no_session(
    practitioner: User, receptionist: User
) -> None:
    assert demo_session.seed(practitioner=practitioner, reception=receptionist) == 0
    assert not SessionRecord.objects.exists()


def test_demo_sessions_are_completed_behind_the_gates_and_seeding_twice_adds_nothing(
    practitioner: User, receptionist: User
) -> None:
    seed_before_sessions(practitioner, receptionist)
    added = demo_session.seed(practitioner=practitioner, reception=receptionist)
    # Grace: 2 bookings, 2 sessions; Oliver: a course of 6, 4 sessions, a bruise.
    assert added == 2 + 2 + 1 + 6 + 4 + 1
    assert demo_session.seed(practitioner=practitioner, reception=receptionist) == 0

    records = list(
        SessionRecord.objects.select_related("booking__patient").order_by("completed_at")
    )
    when = [(r.booking.patient.first_name, r.booking.starts_at.astimezone(LONDON)) for r in records]
    assert when == [
        # Seven weeks before, fortnightly; Grace's days fell on Saturdays: the Friday before.
        ("Oliver", datetime(2026, 10, 6, 10, 0, tzinfo=LONDON)),
        ("Grace", datetime(2026, 10, 9, 14, 0, tzinfo=LONDON)),
        ("Oliver", datetime(2026, 10, 20, 10, 0, tzinfo=LONDON)),
        ("Grace", datetime(2026, 10, 30, 14, 0, tzinfo=LONDON)),
        ("Oliver", datetime(2026, 11, 3, 10, 0, tzinfo=LONDON)),
        ("Oliver", datetime(2026, 11, 17, 10, 0, tzinfo=LONDON)),
    ]
    assert {r.booking.status for r in records} == {BookingStatus.COMPLETED}
    grace_lots = [
        [line.batch.lot_number for line in r.lines.all()]
        for r in records
        if r.booking.patient.first_name == "Grace"
    ]
    # The lot in date at the first session has expired since; the second used the next.
    assert grace_lots == [["NVP-DC0399"], ["NVP-DC0417"]]
    # Oliver's history mentions cold sores: acknowledged at each session of the face.
    assert CautionAcknowledgement.objects.filter(code="cold_sores").count() == 4
    [bruise] = AdverseEvent.objects.all()
    assert (bruise.effect, bruise.severity) == ("bruising", "mild")
    course = TreatmentCourse.objects.get(patient__first_name="Oliver")
    assert course.status == CourseStatus.ACTIVE
    assert course.bookings.filter(status=BookingStatus.BOOKED, starts_at__gt=NOW).count() == 2


def test_without_a_clock_that_moves_no_session_of_earlier_weeks_is_written(
    practitioner: User, receptionist: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_before_sessions(practitioner, receptionist)
    monkeypatch.setattr(demo_clock, "TIME_MACHINE_INSTALLED", False)
    assert demo_session.seed(practitioner=practitioner, reception=receptionist) == 0
    assert not SessionRecord.objects.exists()
    assert not Booking.objects.filter(starts_at__lt=NOW).exists()

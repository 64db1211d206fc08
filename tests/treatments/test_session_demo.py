"""The demo sessions: a few past completed sessions, safe to seed twice."""

from __future__ import annotations

import pytest

from clinic.models import User
from patients import demo as patients_demo
from treatments.demo import catalogue as demo_catalogue
from treatments.demo import session as demo_session
from treatments.models import AdverseEvent, BookingStatus, CocktailLine, SessionRecord

pytestmark = pytest.mark.django_db


def test_without_protocols_or_patients_the_demo_adds_no_session(
    practitioner: User, receptionist: User
) -> None:
    assert demo_session.seed(practitioner=practitioner, reception=receptionist) == 0
    assert not SessionRecord.objects.exists()


def test_demo_sessions_are_completed_with_cocktails_and_seeding_twice_adds_nothing(
    practitioner: User, receptionist: User
) -> None:
    patients_demo.seed(practitioner=practitioner, reception=receptionist)
    demo_catalogue.seed(practitioner=practitioner, reception=receptionist)
    added = demo_session.seed(practitioner=practitioner, reception=receptionist)
    assert added >= 4  # three sessions and one adverse event
    records = list(SessionRecord.objects.select_related("booking"))
    assert len(records) == 3
    assert {r.booking.status for r in records} == {BookingStatus.COMPLETED}
    for line in CocktailLine.objects.select_related("batch", "session__booking"):
        assert line.batch.is_usable_on(line.session.booking.starts_at.date())
    [bruise] = AdverseEvent.objects.all()
    assert (bruise.effect, bruise.severity) == ("bruising", "mild")
    assert demo_session.seed(practitioner=practitioner, reception=receptionist) == 0
    assert SessionRecord.objects.count() == 3

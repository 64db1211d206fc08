"""A booking that has happened (or never will) is in the past at once: a
session completed a few minutes before its booked start (the form allows
SESSION_COMPLETE_EARLY_MINUTES) is shown under "Past" with its cocktail,
not under "To come" as a bare status."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from clinic.models import User
from tests.conftest import frozen_at, sign_in
from tests.treatments.timeline_story import RECALLED_LOT, SESSION_AT, returning_patient
from treatments.models import Booking, BookingStatus
from treatments.selectors.timeline import patient_timeline

pytestmark = pytest.mark.django_db
# Ten minutes before the session's booked start: it was completed early.
EARLY = SESSION_AT - timedelta(minutes=10)
frozen = frozen_at(EARLY)


def test_a_session_completed_before_its_start_is_in_the_past_with_its_cocktail(
    client: Client, practitioner: User
) -> None:
    story = returning_patient(practitioner)
    booking = story.session.booking
    assert booking.status == BookingStatus.COMPLETED
    with time_machine.travel(EARLY, tick=False):
        page = patient_timeline(patient=story.patient, clinical=True, now=EARLY)
        assert [e.pk for e in page.to_come] == [story.next_booking.pk]
        [session] = [e for e in page.entries if e.kind == "booking" and e.pk == booking.pk]
        assert not session.future
        assert session.record is not None
        assert len(session.lines) == 2
        assert session.needle_map is not None

        sign_in(client, practitioner)
        url = reverse("treatments:patient_timeline", kwargs={"patient": story.patient.uuid})
        shown = client.get(url, headers={"HX-Request": "true"}).content.decode()
    past = shown[shown.index("Past") :]
    assert RECALLED_LOT in past
    assert "Polyrevitalising solution" in past
    to_come = shown[shown.index("To come") : shown.index("Past")]
    assert "Tue 1 Dec" in to_come
    assert "Sun 1 Nov" not in to_come


@pytest.mark.parametrize("status", [BookingStatus.CANCELLED, BookingStatus.NO_SHOW])
def test_a_booking_to_come_that_will_not_happen_is_in_the_past(
    practitioner: User, status: str
) -> None:
    story = returning_patient(practitioner)
    Booking.objects.filter(pk=story.next_booking.pk).update(
        status=status, cancel_reason="Moved away"
    )
    for clinical in (True, False):
        page = patient_timeline(patient=story.patient, clinical=clinical, now=EARLY)
        assert page.to_come == []
        assert (page.entries[0].kind, page.entries[0].pk) == ("booking", story.next_booking.pk)
        assert not page.entries[0].future

"""A booking that has happened is in the past at once: a session completed a
few minutes before its booked start (the form allows
SESSION_COMPLETE_EARLY_MINUTES) is in the timeline with its cocktail. A
booking cancelled ahead of its time waits for that time: until then the
sessions panel lists it among those to come, marked cancelled."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from clinic.models import User
from tests.conftest import frozen_at, sign_in
from tests.treatments.test_session_helpers import make_booking
from tests.treatments.timeline_story import RECALLED_LOT, SESSION_AT, returning_patient
from treatments.models import Booking, BookingStatus
from treatments.selectors.timeline import patient_timeline
from treatments.services.booking import booking_cancel

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
        [session] = [e for e in page.entries if e.kind == "booking" and e.pk == booking.pk]
        assert session.record is not None
        assert len(session.lines) == 2
        assert session.needle_map is not None

        sign_in(client, practitioner)
        url = reverse("treatments:patient_timeline", kwargs={"patient": story.patient.uuid})
        shown = client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert RECALLED_LOT in shown
    assert "Polyrevitalising solution" in shown
    assert "Sun 1 Nov" in shown
    # The session still to come is listed under Sessions, not in the story.
    assert "Tue 1 Dec" not in shown


def test_a_booking_marked_missed_is_in_the_past_at_once(practitioner: User) -> None:
    story = returning_patient(practitioner)
    Booking.objects.filter(pk=story.next_booking.pk).update(status=BookingStatus.NO_SHOW)
    for clinical in (True, False):
        page = patient_timeline(patient=story.patient, clinical=clinical, now=EARLY)
        assert (page.entries[0].kind, page.entries[0].pk) == ("booking", story.next_booking.pk)


# --- A booking cancelled ahead of its time ---------------------------------------------
# Reception looks for it where the patient's sessions to come are, at its
# booked time, marked cancelled; it joins the past when that time comes.


def _cancel_next(story: Any, receptionist: User) -> Booking:
    booking = story.next_booking
    return booking_cancel(
        booking=booking,
        cancelled_by=receptionist,
        reason="Patient away that week",
        expected_version=booking.version,
    )


def test_a_booking_cancelled_ahead_of_its_time_is_not_at_the_top_of_the_past(
    practitioner: User, receptionist: User
) -> None:
    story = returning_patient(practitioner)
    _cancel_next(story, receptionist)
    for clinical in (True, False):
        page = patient_timeline(patient=story.patient, clinical=clinical, now=EARLY)
        assert story.next_booking.pk not in [e.pk for e in page.entries if e.kind == "booking"]
        assert (page.entries[0].kind, page.entries[0].pk) == ("booking", story.session.booking.pk)


def test_the_sessions_panel_lists_a_cancelled_booking_at_its_time_marked_cancelled(
    client: Client, practitioner: User, receptionist: User
) -> None:
    story = returning_patient(practitioner)
    later = make_booking(
        patient=story.patient,
        practitioner=practitioner,
        protocol=story.next_booking.protocol,
        starts_at=story.next_booking.starts_at + timedelta(days=14),
        status=BookingStatus.BOOKED,
    )
    _cancel_next(story, receptionist)
    sign_in(client, receptionist)
    url = reverse("treatments:patient_treatment_panel", kwargs={"patient": story.patient.uuid})
    panel = client.get(url, headers={"HX-Request": "true"}).content.decode()
    cancelled_at = panel.index(story.next_booking.get_absolute_url())
    assert cancelled_at < panel.index(later.get_absolute_url())
    item = panel[panel.rindex("<li", 0, cancelled_at) : panel.index("</li>", cancelled_at)]
    assert 'data-testid="upcoming-cancelled"' in item
    assert "Cancelled" in item
    assert "Tue 1 Dec" in item
    # Its outcome, never whether it is ready to treat.
    assert "ready to treat" not in item
    assert "needed" not in item


def test_a_cancelled_booking_joins_the_past_at_its_booked_time(
    practitioner: User, receptionist: User
) -> None:
    story = returning_patient(practitioner)
    _cancel_next(story, receptionist)
    after = story.next_booking.starts_at + timedelta(days=1)
    with time_machine.travel(after, tick=False):
        page = patient_timeline(patient=story.patient, clinical=False, now=after)
    assert [e.pk for e in page.entries] == [story.next_booking.pk, story.session.booking.pk]

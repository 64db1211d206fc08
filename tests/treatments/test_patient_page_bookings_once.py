"""A patient's page lists each booking to come once: in the sessions panel,
with whether it is ready to treat. The timeline beside it tells the story up
to now, so reception (and a practitioner) never reads the same bookings in
two places of one page."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.urls import reverse

from clinic.models import User
from tests.conftest import frozen_at, sign_in
from tests.treatments.timeline_story import returning_patient

pytestmark = pytest.mark.django_db
# Between the session of 1 Nov and the one booked for 1 Dec.
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("Europe/London"))
frozen = frozen_at(NOW)


def _patient_page(client: Client, patient: object) -> str:
    """The page as the browser assembles it: the page, then its panel and
    timeline, each loaded by htmx."""
    uuid = patient.uuid  # type: ignore[attr-defined]
    parts = [client.get(patient.get_absolute_url()).content.decode()]  # type: ignore[attr-defined]
    for name in ("treatments:patient_treatment_panel", "treatments:patient_timeline"):
        url = reverse(name, kwargs={"patient": uuid})
        parts.append(client.get(url, headers={"HX-Request": "true"}).content.decode())
    return "".join(parts)


@pytest.mark.parametrize("role", ["receptionist", "practitioner"])
def test_the_patient_page_lists_each_booking_to_come_once(
    practitioner: User, role: str, request: pytest.FixtureRequest
) -> None:
    story = returning_patient(practitioner)
    reader = practitioner if role == "practitioner" else request.getfixturevalue(role)
    page = _patient_page(sign_in(Client(), reader), story.patient)
    assert page.count(story.next_booking.get_absolute_url()) == 1
    assert page.count("Tue 1 Dec, 10:00") == 1
    # The past is still there, once.
    assert page.count(story.session.booking.get_absolute_url()) <= 1
    assert "Sun 1 Nov" in page

"""The sessions panel of a patient's page: upcoming bookings with what stands
in the way in reception's words, courses, and links to book and to reminders."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clinic.models import User
from tests.conftest import frozen_at, sign_in
from tests.factories import PatientFactory
from tests.treatments.test_session_helpers import make_booking, make_world

pytestmark = pytest.mark.django_db
# A Tuesday morning in London, whatever the wall clock says.
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("Europe/London"))
frozen = frozen_at(NOW)


def panel(client: Client, patient: Any) -> Any:
    return client.get(
        reverse("treatments:patient_treatment_panel", kwargs={"patient": patient.uuid})
    )


def test_reception_sees_upcoming_sessions_with_non_clinical_flags_only(
    client: Client, receptionist: User, practitioner: User
) -> None:
    # No consent and no medical history: reception sees that, never why clinically.
    world = make_world(
        practitioner, consent=False, history=False, status="booked", first_name="Ada"
    )
    world.booking.starts_at = timezone.now() + timedelta(days=2)
    world.booking.ends_at = world.booking.starts_at + timedelta(minutes=45)
    world.booking.save()

    response = panel(sign_in(client, receptionist), world.patient)
    page = response.content.decode()
    assert response.status_code == 200
    assert world.protocol.name in page
    assert "consent needed" in page
    assert "medical history needed" in page
    assert "has not signed" not in page  # the practitioner's sentence stays clinical
    assert reverse("treatments:reminder_log", kwargs={"patient": world.patient.uuid}) in page
    assert "Book a session" in page


def test_a_booking_with_everything_in_place_is_ready_to_treat(
    client: Client, receptionist: User, practitioner: User
) -> None:
    world = make_world(practitioner, status="booked")
    world.booking.starts_at = timezone.now() + timedelta(hours=3)
    world.booking.ends_at = world.booking.starts_at + timedelta(minutes=45)
    world.booking.save()
    page = panel(sign_in(client, receptionist), world.patient).content.decode()
    assert "ready to treat" in page


def test_managers_read_without_booking_links(
    client: Client, manager: User, practitioner: User
) -> None:
    world = make_world(practitioner, status="booked")
    response = panel(sign_in(client, manager), world.patient)
    assert response.status_code == 200
    assert "Book a session" not in response.content.decode()


def test_an_unknown_patient_is_404(client: Client, receptionist: User) -> None:
    patient = PatientFactory.build()
    assert panel(sign_in(client, receptionist), patient).status_code == 404


def test_panel_has_a_fixed_query_budget(
    client: Client,
    receptionist: User,
    practitioner: User,
    django_assert_max_num_queries: Callable[..., Any],
) -> None:
    world = make_world(practitioner, status="booked")
    sign_in(client, receptionist)
    # 20: the clinic's settings (its name, the validity windows) read once a page,
    # and one read of the bookings cancelled ahead of their time.
    with django_assert_max_num_queries(20):
        assert panel(client, world.patient).status_code == 200
    for day in range(2, 10):
        start = timezone.now() + timedelta(days=day)
        make_booking(
            patient=world.patient,
            practitioner=practitioner,
            protocol=world.protocol,
            starts_at=start,
            status="booked",
        )
    with django_assert_max_num_queries(19):
        assert panel(client, world.patient).status_code == 200


def test_a_note_shared_by_several_ingredients_is_shown_once(
    client: Client, receptionist: User, practitioner: User
) -> None:
    world = make_world(practitioner, allergy=False, status="booked", products=3)
    world.booking.starts_at = timezone.now() + timedelta(days=2)
    world.booking.ends_at = world.booking.starts_at + timedelta(minutes=45)
    world.booking.save()
    page = panel(sign_in(client, receptionist), world.patient).content.decode()
    assert page.count("readiness-flag") == 1

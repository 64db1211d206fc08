"""What the clinic's settings change, at once: the safety gates' windows,
reminder messages, the page header, and values read in the same request
as a save (never stale)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.template.loader import render_to_string
from django.test import Client
from django.utils import timezone

from clinic import clinic_settings
from clinic.clinic_settings_services import clinic_settings_change
from clinic.models import ClinicSettings, User
from patients.models import Patient
from tests.clinic_settings_support import settings_saved
from tests.conftest import frozen_at, sign_in
from tests.factories import IngredientFactory, PatientFactory, make_history
from tests.treatments.test_session_helpers import give_and_read
from treatments.gates import gate_allergy, gate_medical_history

pytestmark = pytest.mark.django_db

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 30, 10, 0, tzinfo=LONDON)


frozen = frozen_at(NOW)


@pytest.fixture
def patient() -> Patient:
    return PatientFactory()


def history_taken(patient: Patient, by: User, days_ago: int) -> None:
    with time_machine.travel(NOW - timedelta(days=days_ago), tick=False):
        make_history(patient, by)


# --- The safety gates -------------------------------------------------------------------------


@pytest.mark.parametrize(("days_ago", "blocks"), [(30, False), (31, True)])
def test_a_history_valid_30_days_blocks_once_it_is_31_days_old(
    patient: Patient, practitioner: User, days_ago: int, blocks: bool
) -> None:
    history_taken(patient, practitioner, days_ago)
    assert gate_medical_history(patient=patient, at=timezone.now()) == []
    settings_saved(medical_history_valid_days=30)
    failures = gate_medical_history(patient=patient, at=timezone.now())
    assert bool(failures) is blocks
    if blocks:
        assert "older than 30 days" in failures[0].sentence


def test_a_negative_reading_valid_one_month_blocks_after_it(
    patient: Patient, practitioner: User
) -> None:
    ingredient = IngredientFactory(name="Hyaluronic acid")
    give_and_read(patient, practitioner, [ingredient], given_at=NOW - timedelta(days=40))
    assert gate_allergy(patient=patient, ingredients=[ingredient], at=timezone.now()) == []
    settings_saved(allergy_test_valid_months=1)
    [failure] = gate_allergy(patient=patient, ingredients=[ingredient], at=timezone.now())
    assert failure.gate == 4
    assert "older than 1 month" in failure.sentence


# --- Never stale ------------------------------------------------------------------------------


def test_a_save_is_read_at_once_in_the_scope_that_made_it(manager: User) -> None:
    with clinic_settings.scope():
        assert clinic_settings.current().clinic_name == "Meso Clinic"
        clinic_settings_change(
            changed_by=manager,
            changes={"clinic_name": "Renamed Clinic"},
            expected_version=ClinicSettings.objects.order_by("-id").first().pk,  # type: ignore[union-attr]
        )
        assert clinic_settings.current().clinic_name == "Renamed Clinic"


def test_every_page_header_shows_the_name_saved_just_before(
    client: Client, receptionist: User
) -> None:
    sign_in(client, receptionist)
    assert "Meso Clinic" in client.get("/").content.decode()
    settings_saved(clinic_name="Skin & Co")
    page = client.get("/").content.decode()
    assert "Skin &amp; Co" in page
    assert "Meso Clinic" not in page


def test_text_messages_and_emails_carry_the_settings_name() -> None:
    settings_saved(clinic_name="Harley Row Aesthetics", clinic_phone="+442079460123")
    context = {
        **clinic_settings.printed(),
        "kind": "session",
        "starts": timezone.now() + timedelta(days=2),
    }
    sms = render_to_string("emails/reminder_sms.txt", context)
    assert sms.startswith("Harley Row Aesthetics: ")
    notice = render_to_string(
        "emails/contact_changed_sms.txt",
        {**clinic_settings.printed(), "what": "email", "changed_at": timezone.now()},
    )
    assert "Harley Row Aesthetics" in notice
    assert "020 7946 0123" in notice


def test_the_default_session_length_opens_a_new_protocol(client: Client, manager: User) -> None:
    settings_saved(default_session_minutes=60)
    sign_in(client, manager)
    from django.urls import reverse

    response = client.get(reverse("treatments:protocol_create"))
    page = response.content.decode()
    assert 'name="session_minutes" value="60"' in page

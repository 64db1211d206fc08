"""The summary at the top of the patient's page ("Ready to treat?")
says what the bookings to come shown beside it say: the same gates over the
same bookings (patients.readiness, treatments.selectors.patient_readiness)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clinic.models import User
from patients.models import Patient
from tests.conftest import frozen_at, sign_in
from tests.consent.helpers import signed_consent_for
from tests.factories import (
    BatchFactory,
    ConsentFormVersionFactory,
    IngredientFactory,
    PatientFactory,
    ProtocolFactory,
    make_history,
)
from tests.treatments.test_session_helpers import give_and_read, make_booking
from treatments.models import BookingStatus, ProtocolCocktailLine
from treatments.services.allergy import allergy_test_give

pytestmark = pytest.mark.django_db
# A Tuesday morning in London, whatever the wall clock says.
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("Europe/London"))
frozen = frozen_at(NOW)


def summary_of(client: Client, patient: Patient) -> str:
    """The summary at the top of the patient's page."""
    page = client.get(patient.get_absolute_url()).content.decode()
    return page.split('<div id="readiness-summary"')[1].split("</div>")[0]


def panel_of(client: Client, patient: Patient) -> str:
    """The sessions panel the page loads: the bookings to come and their flags."""
    url = reverse("treatments:patient_treatment_panel", kwargs={"patient": patient.uuid})
    return client.get(url).content.decode()


def test_the_summary_says_what_the_next_booking_says(
    client: Client, practitioner: User, receptionist: User
) -> None:
    """The reported disagreement: a history on file, no consent signed. The
    card said nothing stood in the way while the booking said "consent
    needed"; both now come from the same gates over the same bookings."""
    patient = PatientFactory()
    make_history(patient, practitioner)
    protocol = ProtocolFactory(consent_form=ConsentFormVersionFactory().form)
    make_booking(
        patient=patient,
        practitioner=practitioner,
        protocol=protocol,
        starts_at=timezone.now() + timedelta(days=2),
        status=BookingStatus.BOOKED,
    )
    sign_in(client, receptionist)
    summary = summary_of(client, patient)
    assert "consent needed" in panel_of(client, patient)
    assert "consent needed" in summary
    assert "Nothing stands in the way" not in summary
    assert "For the session booked" in summary


def _notes(html: str) -> set[str]:
    return set(re.findall(r'class="badge text-bg-warning readiness-[a-z-]+">([^<·]+?)[ <·]', html))


@pytest.mark.parametrize("state", ["ready", "no consent", "no history", "reading due", "untested"])
def test_the_summary_lists_every_note_of_the_bookings_and_no_other(
    client: Client, practitioner: User, receptionist: User, state: str
) -> None:
    patient = PatientFactory()
    version = ConsentFormVersionFactory()
    ingredient = IngredientFactory()
    protocol = ProtocolFactory(consent_form=version.form)
    batch = BatchFactory(product__ingredients=[ingredient])
    ProtocolCocktailLine.objects.create(
        protocol=protocol, product=batch.product, amount=Decimal("1.00"), position=0
    )
    if state != "no history":
        make_history(patient, practitioner)
    if state != "no consent":
        signed_consent_for(patient=patient, version=version)
    if state in ("ready", "no history", "no consent"):
        give_and_read(
            patient, practitioner, [ingredient], given_at=timezone.now() - timedelta(days=3)
        )
    elif state == "reading due":
        given_at = timezone.now() - timedelta(hours=2)
        with time_machine.travel(given_at, tick=False):
            allergy_test_give(
                patient=patient,
                given_by=practitioner,
                ingredients=[ingredient],
                products=[],
                site="Inner left forearm",
                given_at=given_at,
            )
    for days in (1, 9):
        make_booking(
            patient=patient,
            practitioner=practitioner,
            protocol=protocol,
            starts_at=timezone.now() + timedelta(days=days, hours=days),
            status=BookingStatus.BOOKED,
        )
    sign_in(client, receptionist)
    summary, bookings = summary_of(client, patient), panel_of(client, patient)
    assert _notes(summary) == _notes(bookings)
    if state == "ready":
        assert not _notes(bookings)
        assert "Nothing stands in the way of the 2 sessions booked." in summary
    else:
        assert _notes(bookings)
        assert "Nothing stands in the way" not in summary


def test_without_a_booking_the_summary_judges_the_record_now(
    client: Client, practitioner: User, receptionist: User
) -> None:
    patient = PatientFactory()
    sign_in(client, receptionist)
    assert "medical history needed" in summary_of(client, patient)
    make_history(patient, practitioner, pregnant=True)
    summary = summary_of(client, patient)
    assert "ask the practitioner" in summary
    assert "pregnan" not in summary.lower()  # reception's words, never the reason
    make_history(patient, practitioner)
    summary = summary_of(client, patient)
    assert "Nothing stands in the way on the patient's record." in summary
    assert "No session booked" in summary

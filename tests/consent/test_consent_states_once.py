"""The patient's consent list says each consent's state once: the badge names
it ("re-consent needed", "withdrawn", ...), and what is written beside it adds
only what the badge does not say (which versions, when signed)."""

from __future__ import annotations

import re
from datetime import datetime
from html import unescape
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.urls import reverse

from clinic.models import User
from consent.services import consent_withdraw
from tests.conftest import frozen_at, sign_in
from tests.consent.helpers import signed_consent_for
from tests.factories import ConsentFormFactory, ConsentFormVersionFactory, PatientFactory

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("Europe/London"))
frozen = frozen_at(NOW)

STATES = ("re-consent needed", "withdrawn", "not signed", "valid")


def _items(page: str) -> dict[str, str]:
    """Each consent of the list, as read: {form title: its words}."""
    found = {}
    for item in page.split('data-testid="consent-state"')[1:]:
        item = item[: item.index("</li>")]
        words = unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", item))).strip()
        title = re.search(r'<div class="fw-semibold">([^<]+)</div>', item)
        assert title is not None
        found[unescape(title.group(1))] = words
    return found


def test_each_consent_says_its_state_once(practitioner: User) -> None:
    patient = PatientFactory(first_name="Amelia", last_name="Hart")
    superseded = ConsentFormVersionFactory(form=ConsentFormFactory(title="Face and neck"))
    signed_consent_for(patient=patient, version=superseded)
    ConsentFormVersionFactory(form=superseded.form)  # version 2: re-consent needed
    taken_back = ConsentFormVersionFactory(form=ConsentFormFactory(title="Scalp"))
    consent_withdraw(
        signed=signed_consent_for(patient=patient, version=taken_back),
        reason="Changed her mind",
        recorded_by=practitioner,
    )
    ConsentFormVersionFactory(form=ConsentFormFactory(title="Body"))  # not signed
    kept = ConsentFormVersionFactory(form=ConsentFormFactory(title="Hands"))
    signed_consent_for(patient=patient, version=kept)

    url = reverse("consent:patient_consents", kwargs={"patient": patient.uuid})
    items = _items(sign_in(Client(), practitioner).get(url).content.decode())

    expected = {
        "Face and neck": "re-consent needed",
        "Scalp": "withdrawn",
        "Body": "not signed",
        "Hands": "valid",
    }
    for title, state in expected.items():
        said = items[title].lower()
        assert said.count(state) == 1, (title, said)
        assert all(said.count(other) == 0 for other in STATES if other not in state), said
    # Beside the badge: which version was signed, when, and which is current.
    assert "version 1 signed Tue 24 Nov; version 2 is now current" in items["Face and neck"]

"""A double tap on "Sign" (two identical posts of the signing page at the same
instant, each on its own database connection) records one signature: the page
carries a one-time token (clinic.concurrency), and the second post answers like
the first, with a redirect to the signed consent."""

from __future__ import annotations

from datetime import datetime
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from clinic.models import AuditAction, AuditEvent, User
from consent.models import CONSENT_SECTION_NAMES, SignedConsent, SignedConsentPDF
from tests.conftest import sign_in
from tests.consent.helpers import drawn_signature
from tests.factories import ConsentFormFactory, ConsentFormVersionFactory, PatientFactory
from tests.races import hidden_value, post_at_once

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=ZoneInfo("Europe/London"))
ALREADY = "This was already saved: the form was sent twice, and saved once."


@pytest.mark.django_db(transaction=True)
def test_a_double_tapped_signature_records_one_signed_consent(practitioner: User) -> None:
    with time_machine.travel(NOW, tick=False), mock.patch("consent.services.consent_pdf_enqueue"):
        patient = PatientFactory(first_name="Amelia", last_name="Hart")
        version = ConsentFormVersionFactory(form=ConsentFormFactory(title="Face, neck and hands"))
        url = reverse("consent:sign", kwargs={"patient": patient.uuid, "form": version.form.uuid})
        first, second = sign_in(Client(), practitioner), sign_in(Client(), practitioner)
        page = first.get(url).content.decode()
        data = {
            **{f"confirm_{name}": "on" for name in CONSENT_SECTION_NAMES},
            "version": str(version.uuid),
            "photo_consent": "yes",
            "signer_name": "Amelia Hart",
            "signature": drawn_signature(),
            "witnessed": "on",
            "submission_token": hidden_value(page, "submission_token"),
        }
        answers = post_at_once([first, second], url, [data, data])
        signed = SignedConsent.objects.get()
        assert [a.status for a in answers] == [302, 302], answers
        assert {a.location for a in answers} == {signed.get_absolute_url()}
        pages = [c.get(signed.get_absolute_url()).content.decode() for c in (first, second)]
    assert sum(ALREADY in p for p in pages) == 1
    assert SignedConsentPDF.objects.count() == 1
    assert AuditEvent.objects.filter(action=AuditAction.SIGNED).count() == 1

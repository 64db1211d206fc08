"""The demo consent data: three forms by exact title, and demo patients who
stand where the user guide says (one valid, one needing re-consent), each
signature on the day of the patient's visit."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine

from clinic.models import User
from consent import demo
from consent.models import ConsentForm, SignedConsent
from consent.selectors import ConsentStatus, consent_state
from patients import demo as patients_demo
from patients.models import Patient

pytestmark = pytest.mark.django_db
# The demo is seeded on a Tuesday morning in London, whatever the wall clock says.
LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=LONDON)


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


def test_the_demo_forms_and_signatures_are_made_once(
    practitioner: User, receptionist: User
) -> None:
    patients_demo.seed(practitioner=practitioner, reception=receptionist)
    assert demo.seed(practitioner=practitioner, reception=receptionist) > 0
    assert demo.seed(practitioner=practitioner, reception=receptionist) == 0
    assert set(ConsentForm.objects.values_list("title", flat=True)) == {
        "Mesotherapy of the face, neck and hands",
        "Mesotherapy of the body",
        "Mesotherapy of the scalp",
    }
    face = ConsentForm.objects.get(title=demo.FACE)
    assert sorted(face.versions.values_list("number", flat=True)) == [1, 2]
    amelia = Patient.objects.get(email="amelia.hart@demo.clinic.invalid")
    oliver = Patient.objects.get(email="oliver.bennett@demo.clinic.invalid")
    assert consent_state(patient=amelia, form=face).status == ConsentStatus.VALID
    assert consent_state(patient=oliver, form=face).status == ConsentStatus.RECONSENT_NEEDED
    assert SignedConsent.objects.count() == 4


def test_each_signature_is_dated_on_the_patients_visit_and_after_the_version_it_signs(
    practitioner: User, receptionist: User
) -> None:
    patients_demo.seed(practitioner=practitioner, reception=receptionist)
    demo.seed(practitioner=practitioner, reception=receptionist)
    signed = {
        (s.patient.first_name, s.version.form.title, s.version.number): s.signed_at.astimezone(
            LONDON
        )
        for s in SignedConsent.objects.select_related("patient", "version__form")
    }
    assert signed == {
        # 130 days before Tuesday 24 November is Friday 17 July.
        ("Grace", demo.BODY, 1): datetime(2026, 7, 17, 10, 15, tzinfo=LONDON),
        ("Oliver", demo.FACE, 1): datetime(2026, 9, 15, 10, 15, tzinfo=LONDON),
        # Three and two days before fall on the weekend: the Friday before.
        ("Amelia", demo.FACE, 2): datetime(2026, 11, 20, 12, 0, tzinfo=LONDON),
        ("Theo", demo.FACE, 2): datetime(2026, 11, 23, 12, 45, tzinfo=LONDON),
    }
    face = ConsentForm.objects.get(title=demo.FACE)
    published = {v.number: v.published_at for v in face.versions.all()}
    assert published[2] == datetime(2026, 11, 20, 9, 0, tzinfo=LONDON)
    assert published[1] < signed[("Oliver", demo.FACE, 1)] < published[2]

"""The demo consent data: three forms by exact title, and two demo patients who
stand where the user guide says (one valid, one needing re-consent)."""

from __future__ import annotations

import pytest

from clinic.models import User
from consent import demo
from consent.models import ConsentForm, SignedConsent
from consent.selectors import ConsentStatus, consent_state
from patients import demo as patients_demo
from patients.models import Patient

pytestmark = pytest.mark.django_db


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
    assert SignedConsent.objects.count() == 2

"""Objects the URL walk needs: one for each sample id in tests.test_urlwalk.SAMPLE_KWARGS
that this part of the app takes in its routes, created with exactly that uuid."""

from __future__ import annotations

from django.utils import timezone

from patients.models import Patient
from tests.consent.helpers import signed_consent_for
from tests.factories import ConsentFormFactory, ConsentFormVersionFactory


def create_samples(kwargs: dict[str, str]) -> None:
    """Create the sample objects (the sample patient already exists)."""
    form = ConsentFormFactory(uuid=kwargs["form"])
    version = ConsentFormVersionFactory(
        uuid=kwargs["version"], form=form, published_at=timezone.now()
    )
    patient = Patient.objects.get(uuid=kwargs["patient"])
    signed_consent_for(patient=patient, version=version, uuid=kwargs["signed"])

"""Objects the URL walk needs: one for each sample id in tests.test_urlwalk.SAMPLE_KWARGS
that this part of the app takes in its routes, created with exactly that uuid."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone


def create_samples(kwargs: dict[str, str]) -> None:
    """An unread allergy test of the sample patient, given an hour ago."""
    from patients.models import Patient
    from tests.factories import IngredientFactory, UserFactory
    from treatments.models import ALLERGY_READING_DELAY, AllergyTest

    given_at = timezone.now() - timedelta(hours=1)
    test = AllergyTest.objects.create(
        uuid=kwargs["test"],
        patient=Patient.objects.get(uuid=kwargs["patient"]),
        site="Inner left forearm",
        given_at=given_at,
        entered_at=given_at,
        read_due_at=given_at + ALLERGY_READING_DELAY,
        given_by=UserFactory(username="sample-allergy-tester"),
    )
    test.ingredients.set([IngredientFactory(name="Sample tested ingredient")])

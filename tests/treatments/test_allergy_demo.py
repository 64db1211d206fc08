"""Demo allergy tests: seeded once, and only when the catalogue has ingredients."""

from __future__ import annotations

import pytest
from django.utils import timezone

from clinic.models import User
from patients import demo as patients_demo
from tests.factories import IngredientFactory
from treatments.demo import allergy as demo_allergy
from treatments.models import AllergyResult, AllergyTest
from treatments.selectors.allergy import allergy_tasks

pytestmark = pytest.mark.django_db


def test_nothing_is_seeded_while_the_catalogue_is_empty(
    practitioner: User, receptionist: User
) -> None:
    patients_demo.seed(practitioner=practitioner, reception=receptionist)
    assert demo_allergy.seed(practitioner=practitioner, reception=receptionist) == 0
    assert not AllergyTest.objects.exists()


def test_the_demo_has_a_negative_reading_from_last_week_and_one_due_later_today(
    practitioner: User, receptionist: User
) -> None:
    patients_demo.seed(practitioner=practitioner, reception=receptionist)
    IngredientFactory(name="Hyaluronic acid")
    IngredientFactory(name="Vitamin C")
    assert demo_allergy.seed(practitioner=practitioner, reception=receptionist) == 2
    assert demo_allergy.seed(practitioner=practitioner, reception=receptionist) == 0
    read = AllergyTest.objects.get(patient__email="amelia.hart@demo.clinic.invalid")
    assert read.result == AllergyResult.NEGATIVE
    assert read.read_at is not None
    assert 6 <= (timezone.now() - read.read_at).days <= 7
    assert {i.name for i in read.ingredients.all()} == {"Hyaluronic acid", "Vitamin C"}
    waiting = AllergyTest.objects.get(patient__email="theo.fairbairn@demo.clinic.invalid")
    assert waiting.read_at is None
    assert allergy_tasks(now=timezone.now()).upcoming == [waiting]

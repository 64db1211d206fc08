"""Demo allergy tests: seeded once, each on its day, and only when the
catalogue has the protocols they test for."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from clinic.models import User
from patients import demo as patients_demo
from treatments.demo import allergy as demo_allergy
from treatments.demo import catalogue as demo_catalogue
from treatments.models import AllergyResult, AllergyTest, Protocol
from treatments.selectors.allergy import allergy_tasks

pytestmark = pytest.mark.django_db

# The demo is seeded on a Tuesday morning in London, whatever the wall clock says.
LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=LONDON)


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


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
    demo_catalogue.seed(practitioner=practitioner, reception=receptionist)
    assert demo_allergy.seed(practitioner=practitioner, reception=receptionist) == 4
    assert demo_allergy.seed(practitioner=practitioner, reception=receptionist) == 0
    read = AllergyTest.objects.get(patient__email="amelia.hart@demo.clinic.invalid")
    assert read.result == AllergyResult.NEGATIVE
    # Given on Monday of last week, read the next morning.
    assert read.given_at == read.entered_at == datetime(2026, 11, 16, 10, 30, tzinfo=LONDON)
    assert read.read_at == datetime(2026, 11, 17, 10, 45, tzinfo=LONDON)
    revitalising = Protocol.objects.get(name="Revitalising")
    assert set(read.ingredients.all()) == {
        i for line in revitalising.cocktail.all() for i in line.product.ingredients.all()
    }
    waiting = AllergyTest.objects.get(patient__email="theo.fairbairn@demo.clinic.invalid")
    assert waiting.read_at is None
    assert waiting.given_at == NOW - timedelta(hours=21)
    assert waiting.read_due_at == NOW + timedelta(hours=3)
    tasks = allergy_tasks(now=NOW)
    assert tasks.upcoming == [waiting]
    assert tasks.due == []
    # Every reading was taken once it was due, never before.
    for test in AllergyTest.objects.filter(read_at__isnull=False):
        assert test.read_at is not None
        assert test.read_at >= test.read_due_at

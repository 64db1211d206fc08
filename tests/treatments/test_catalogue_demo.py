"""The demo catalogue: realistic, complete, and safe to seed twice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import timezone

from clinic import demo_clock
from clinic.models import User
from consent.models import ConsentForm
from consent.services import consent_form_create
from treatments.demo import catalogue as demo_catalogue
from treatments.models import (
    AftercareSheet,
    Batch,
    BatchStatus,
    Ingredient,
    IngredientCategory,
    Product,
    Protocol,
)
from treatments.selectors.catalogue import batches_usable

pytestmark = pytest.mark.django_db
# The demo is seeded on a Tuesday morning in London, whatever the wall clock says.
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("Europe/London"))


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


def test_demo_catalogue_is_realistic_and_seeding_twice_adds_nothing(
    practitioner: User, receptionist: User
) -> None:
    first = demo_catalogue.seed(practitioner=practitioner, reception=receptionist)
    counts = (Ingredient.objects.count(), Product.objects.count(), Batch.objects.count())
    assert first > 40
    assert demo_catalogue.seed(practitioner=practitioner, reception=receptionist) == 0
    assert (Ingredient.objects.count(), Product.objects.count(), Batch.objects.count()) == counts

    assert Ingredient.objects.count() >= 15
    categories = set(Ingredient.objects.values_list("category", flat=True))
    assert categories >= {
        IngredientCategory.VITAMIN,
        IngredientCategory.MINERAL,
        IngredientCategory.AMINO_ACID,
        IngredientCategory.HYALURONIC_ACID,
        IngredientCategory.ENZYME,
        IngredientCategory.PLANT_EXTRACT,
        IngredientCategory.NUCLEOTIDE,
        IngredientCategory.COENZYME,
        IngredientCategory.ANTIOXIDANT,
        IngredientCategory.MEDICINE,
        IngredientCategory.PRP,
    }
    assert Product.objects.count() >= 8
    for product in Product.objects.all():
        assert 1 <= product.batches.count() <= 3
        assert product.ingredients.exists()

    today = timezone.localdate()
    expired = Batch.objects.filter(expiry_date__lt=today)
    recalled = Batch.objects.filter(status=BatchStatus.RECALLED)
    assert expired.count() == 1
    assert recalled.count() == 1
    assert recalled.get().recall_reason
    usable = set(batches_usable(on=today))
    assert expired.get() not in usable
    assert recalled.get() not in usable
    assert len(usable) == Batch.objects.count() - 2

    assert AftercareSheet.objects.count() == 3
    face = AftercareSheet.objects.get(title=demo_catalogue.FACE_SHEET)
    assert any("12 hours" in line for line in face.avoid_lines)
    assert any("48 hours" in line for line in face.avoid_lines)

    protocols = Protocol.objects.all()
    assert {p.name for p in protocols} >= {
        "Revitalising",
        "Lifting and photo-ageing",
        "Cellulite",
        "Localised fat",
        "Hair restoration",
        "Under-eye",
        "Hands",
    }
    for protocol in protocols:
        assert 4 <= protocol.default_sessions <= 10
        assert protocol.maintenance_months in (6, 12)
        assert protocol.cocktail.exists()
    assert Protocol.objects.get(name="Hair restoration").consent_form.title == (
        "Mesotherapy of the scalp"
    )
    assert Protocol.objects.get(name="Cellulite").consent_form.title == "Mesotherapy of the body"


def test_demo_uses_the_consent_forms_already_written(
    practitioner: User, receptionist: User
) -> None:
    form = consent_form_create(
        title="Mesotherapy of the face, neck and hands", created_by=receptionist
    )
    demo_catalogue.seed(practitioner=practitioner, reception=receptionist)
    assert Protocol.objects.get(name="Under-eye").consent_form == form
    assert ConsentForm.objects.count() == 3


def test_each_lot_is_recorded_on_the_day_it_arrived_the_expired_one_before_it_expired(
    practitioner: User, receptionist: User
) -> None:
    demo_catalogue.seed(practitioner=practitioner, reception=receptionist)
    expired = Batch.objects.get(lot_number="NVP-DC0399")
    # Received 14 months ago, 427 days before Tuesday 24 November, when it
    # still had a year to run.
    assert expired.received_on == date(2025, 9, 23)
    assert timezone.localdate(expired.created_at) == expired.received_on
    assert expired.expiry_date < NOW.date()
    for batch in Batch.objects.all():
        assert timezone.localdate(batch.created_at) == batch.received_on
        assert batch.received_on <= NOW.date()
    recalled = Batch.objects.get(status=BatchStatus.RECALLED)
    assert recalled.recalled_at == datetime(2026, 11, 20, 11, 30, tzinfo=ZoneInfo("Europe/London"))


def test_without_a_clock_that_moves_the_expired_lot_is_left_out(
    practitioner: User, receptionist: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `make run` installs no time-machine: a lot expired today cannot be recorded today.
    monkeypatch.setattr(demo_clock, "TIME_MACHINE_INSTALLED", False)
    demo_catalogue.seed(practitioner=practitioner, reception=receptionist)
    assert not Batch.objects.filter(lot_number="NVP-DC0399").exists()
    assert not Batch.objects.filter(expiry_date__lt=NOW.date()).exists()
    assert Batch.objects.filter(status=BatchStatus.RECALLED).count() == 1

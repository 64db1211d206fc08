"""The demo catalogue: realistic, complete, and safe to seed twice."""

from __future__ import annotations

import pytest
from django.utils import timezone

from clinic.models import User
from consent.models import ConsentForm
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
    form = ConsentForm.objects.create(
        title="Mesotherapy of the face, neck and hands", created_by=receptionist
    )
    demo_catalogue.seed(practitioner=practitioner, reception=receptionist)
    assert Protocol.objects.get(name="Under-eye").consent_form == form
    assert ConsentForm.objects.count() == 3

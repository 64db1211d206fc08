"""Demo allergy tests for `manage.py seed_demo` (idempotent: one set per demo patient)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from clinic.models import User
from patients.models import Patient
from treatments.models import AllergyResult, AllergyTest, Ingredient, Protocol
from treatments.services.allergy import allergy_test_give, allergy_test_read

# Preferred ingredients by name; any ingredient in use is taken when these are absent.
PREFERRED = ("Hyaluronic acid", "Vitamin C", "Organic silicon")


# Amelia's course follows this protocol: she is tested for all its cocktail,
# so the demo has a patient who is ready to treat.
READY_PROTOCOL = "Revitalising"


def _ingredients() -> list[Ingredient]:
    chosen = list(Ingredient.objects.filter(name__in=PREFERRED, active=True).order_by("name"))
    if not chosen:
        chosen = list(Ingredient.objects.filter(active=True).order_by("name")[:2])
    return chosen


def _ready_protocol_ingredients() -> list[Ingredient]:
    protocol = Protocol.objects.filter(name=READY_PROTOCOL).first()
    if protocol is None:
        return []
    products = [line.product_id for line in protocol.cocktail.all()]
    return list(Ingredient.objects.filter(products__in=products).distinct().order_by("name"))


def seed(*, practitioner: User, reception: User) -> int:
    ingredients = _ingredients()
    if not ingredients:
        return 0
    now = timezone.now()
    added = 0
    read_last_week = Patient.objects.filter(email="amelia.hart@demo.clinic.invalid").first()
    if (
        read_last_week is not None
        and not AllergyTest.objects.filter(patient=read_last_week).exists()
    ):
        given_at = now - timedelta(days=8)
        test = allergy_test_give(
            patient=read_last_week,
            given_by=practitioner,
            ingredients=_ready_protocol_ingredients() or ingredients,
            products=[],
            site="Inner left forearm",
            given_at=given_at,
            now=given_at,
        )
        allergy_test_read(
            test=test,
            read_by=practitioner,
            result=AllergyResult.NEGATIVE,
            now=now - timedelta(days=7),
        )
        added += 1
    waiting = Patient.objects.filter(email="theo.fairbairn@demo.clinic.invalid").first()
    if waiting is not None and not AllergyTest.objects.filter(patient=waiting).exists():
        # Given and entered three hours ago, so the reading is due later today.
        given_at = now - timedelta(hours=3)
        allergy_test_give(
            patient=waiting,
            given_by=practitioner,
            ingredients=ingredients,
            products=[],
            site="Behind the right ear",
            given_at=given_at,
            now=given_at,
        )
        added += 1
    return added

"""Demo allergy tests for `manage.py seed_demo` (idempotent: one set per demo
patient).

Each test is given at the patient's visit and read negative the next working
day, through the allergy services with the clock at those moments
(clinic.demo_clock): Grace and Oliver before their courses, Amelia last week
before hers. Theo's was given yesterday, 21 hours ago: his reading is due
later today.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from clinic.demo_clock import clinic_time, clock_at, next_working_day, working_day
from clinic.models import User
from patients.models import Patient
from treatments.models import AllergyResult, AllergyTest, Ingredient, Protocol
from treatments.services.allergy import allergy_test_give, allergy_test_read

# (patient's email, the protocol whose cocktail is tested, working days ago
# it was given at 10:30, site); each read negative at 10:45 the next working day.
READ: tuple[tuple[str, str, int, str], ...] = (
    ("grace.okafor@demo.clinic.invalid", "Cellulite", 130, "Inner left forearm"),
    ("oliver.bennett@demo.clinic.invalid", "Revitalising", 70, "Behind the left ear"),
    # Amelia's course follows this protocol: tested for all its cocktail, she
    # is ready to treat.
    ("amelia.hart@demo.clinic.invalid", "Revitalising", 8, "Inner left forearm"),
)
# Given 21 hours ago and not read yet: the reading is due in three hours.
WAITING = ("theo.fairbairn@demo.clinic.invalid", "Hands", "Behind the right ear")
WAITING_HOURS_AGO = 21


def protocol_ingredients(name: str) -> list[Ingredient]:
    """Every ingredient of the named protocol's cocktail ([] without it)."""
    protocol = Protocol.objects.filter(name=name).first()
    if protocol is None:
        return []
    products = [line.product_id for line in protocol.cocktail.all()]
    return list(Ingredient.objects.filter(products__in=products).distinct().order_by("name"))


def _untested(email: str) -> Patient | None:
    patient = Patient.objects.filter(email=email).first()
    if patient is None or AllergyTest.objects.filter(patient=patient).exists():
        return None
    return patient


def seed(*, practitioner: User, reception: User) -> int:
    """Give (and read) the demo patients' allergy tests not yet given; return
    how many tests were added."""
    added = 0
    for email, protocol, days_ago, site in READ:
        patient = _untested(email)
        ingredients = protocol_ingredients(protocol)
        if patient is None or not ingredients:
            continue
        given_on = working_day(days_ago)
        with clock_at(clinic_time(given_on, 10, 30)) as given_at:
            test = allergy_test_give(
                patient=patient,
                given_by=practitioner,
                ingredients=ingredients,
                products=[],
                site=site,
                given_at=given_at,
                now=given_at,
            )
        with clock_at(clinic_time(next_working_day(given_on), 10, 45)) as read_at:
            allergy_test_read(
                test=test, read_by=practitioner, result=AllergyResult.NEGATIVE, now=read_at
            )
        added += 1
    email, protocol, site = WAITING
    patient = _untested(email)
    ingredients = protocol_ingredients(protocol)
    if patient is not None and ingredients:
        with clock_at(timezone.now() - timedelta(hours=WAITING_HOURS_AGO)) as given_at:
            allergy_test_give(
                patient=patient,
                given_by=practitioner,
                ingredients=ingredients,
                products=[],
                site=site,
                given_at=given_at,
                now=given_at,
            )
        added += 1
    return added

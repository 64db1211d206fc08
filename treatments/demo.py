"""Demo data of the treatments app for `manage.py seed_demo` (idempotent)."""

from __future__ import annotations

from clinic.models import User


def seed(*, practitioner: User, reception: User) -> int:
    from treatments import demo_allergy, demo_catalogue

    added = demo_catalogue.seed(practitioner=practitioner, reception=reception)
    return added + demo_allergy.seed(practitioner=practitioner, reception=reception)

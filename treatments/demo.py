"""Demo data of the treatments app for `manage.py seed_demo` (idempotent)."""

from __future__ import annotations

from clinic.models import User


def seed(*, practitioner: User, reception: User) -> int:
    from treatments import demo_allergy, demo_booking, demo_catalogue, demo_session

    added = 0
    for part in (demo_catalogue, demo_allergy, demo_booking, demo_session):
        added += part.seed(practitioner=practitioner, reception=reception)
    return added

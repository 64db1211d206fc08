"""Demo data of the treatments app for `manage.py seed_demo` (idempotent)."""

from __future__ import annotations

from clinic.models import User


def seed(*, practitioner: User, reception: User) -> int:
    from treatments.demo import allergy, booking, catalogue, followup, session

    added = 0
    for part in (catalogue, allergy, booking, session, followup):
        added += part.seed(practitioner=practitioner, reception=reception)
    return added

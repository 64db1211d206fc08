"""Demo data (filled in with its feature)."""

from __future__ import annotations

from clinic.models import User


def seed(*, practitioner: User, reception: User) -> int:
    return 0

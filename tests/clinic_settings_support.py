"""Tests change the clinic's settings as a manager does: a new version
through the service (clinic/clinic_settings_services.py)."""

from __future__ import annotations

from typing import Any

from clinic.clinic_settings_services import clinic_settings_change
from clinic.models import ClinicSettings
from clinic.roles import Role
from tests.factories import UserFactory


def settings_saved(**changes: Any) -> ClinicSettings:
    """Save `changes` (setting name to stored value) as a new version, by a
    manager made for it, over whatever version is newest."""
    newest = ClinicSettings.objects.order_by("-id").first()
    manager = UserFactory(roles=(Role.MANAGER,))
    return clinic_settings_change(
        changed_by=manager,
        changes=changes,
        expected_version=newest.pk if newest is not None else None,
    )

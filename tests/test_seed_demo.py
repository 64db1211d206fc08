"""`manage.py seed_demo`: demo staff, idempotent, refused on a real installation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.test import override_settings

from clinic.models import User
from clinic.roles import Role

pytestmark = pytest.mark.django_db
# The demo is seeded on a Tuesday morning in London, whatever the wall clock says.
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("Europe/London"))


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


@override_settings(DEBUG=True, DEMO_PASSWORD="")
def test_seed_creates_the_three_demo_staff_once() -> None:
    first = seed()
    second = seed()
    assert "4 staff user(s) created" in first
    assert "0 staff user(s) created, 4 already there" in second
    assert User.objects.count() == 4
    from patients.models import MedicalHistory, Patient

    assert Patient.objects.count() == 6
    # Grace has two (the second since she started an anticoagulant); Isla none yet.
    assert MedicalHistory.objects.count() == 6
    roles = {u.username: {r.value for r in u.roles} for u in User.objects.all()}
    assert roles == {
        "reception": {Role.RECEPTIONIST.value},
        "practitioner": {Role.PRACTITIONER.value},
        "practitioner2": {Role.PRACTITIONER.value},
        "manager": {Role.MANAGER.value},
    }
    # The printed password is the one that works.
    assert "demo-clinic-2026" in first
    assert User.objects.get(username="reception").check_password("demo-clinic-2026")
    # time-machine is installed here: the demo's earlier weeks are written.
    assert "without the sessions of earlier weeks" not in first


@override_settings(DEBUG=True, DEMO_PASSWORD="another demo passphrase")
def test_seed_uses_demo_password_from_the_environment() -> None:
    assert "another demo passphrase" in seed()
    assert User.objects.get(username="manager").check_password("another demo passphrase")


@override_settings(DEBUG=False)
def test_seed_refuses_with_debug_off_unless_forced() -> None:
    with pytest.raises(CommandError, match="Refusing"):
        seed()
    assert User.objects.count() == 0
    seed("--force")
    assert User.objects.count() == 4

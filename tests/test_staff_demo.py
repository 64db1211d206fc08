"""The demo run needs no superuser: `seed_demo` makes a manager, whose
sign-in the README gives, and that manager keeps the staff from the staff
page (two-factor asked once set up, even in the demo's settings)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from io import StringIO
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.conf import settings
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import reverse

from clinic.management.commands.seed_demo import DEFAULT_DEMO_PASSWORD
from clinic.models import User
from clinic.roles import Role

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("Europe/London"))
README = Path(settings.BASE_DIR) / "README.md"


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


def readme_logins() -> dict[str, tuple[str, str]]:
    """The demo logins the README's table gives: username -> (password, role)."""
    rows = re.findall(r"^\| `([\w.]+)` \| `([^`]+)` \| (\w+) \|$", README.read_text(), re.M)
    return {username: (password, role) for username, password, role in rows}


@override_settings(DEBUG=True, DEMO_PASSWORD="", REQUIRE_STAFF_2FA=False)
def test_the_demo_makes_a_manager_and_no_superuser_and_the_manager_keeps_the_staff() -> None:
    call_command("seed_demo", stdout=StringIO())
    assert not User.objects.filter(is_superuser=True).exists()
    assert not User.objects.filter(is_staff=True).exists()
    logins = readme_logins()
    assert logins["manager"] == (DEFAULT_DEMO_PASSWORD, "Manager")
    manager = User.objects.get(username="manager")
    assert manager.roles == {Role.MANAGER}

    client = Client()
    response = client.post(
        reverse("login"), {"username": "manager", "password": logins["manager"][0]}
    )
    assert response.status_code == 302
    page = client.get(reverse("staff_list"))
    assert page.status_code == 200
    listed = {row.user.username for row in page.context["rows"]}
    assert {"reception", "practitioner", "practitioner2", "manager"} <= listed
    reception = User.objects.get(username="reception")
    answer = client.post(
        reverse("staff_member", kwargs={"member": reception.uuid}),
        {"action": "give_role", "role": "practitioner"},
    )
    assert answer.status_code == 302
    assert User.objects.get(pk=reception.pk).roles == {Role.RECEPTIONIST, Role.PRACTITIONER}

"""The hourly limit of sign-in emails per client counts an IPv6 client by its
/64: one host holds every address of it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from django.core import mail

from clinic.models import User
from tests.conftest import deliver_sign_in_mail
from tests.test_sign_in_mail import RESET, _ask

pytestmark = pytest.mark.django_db

MONDAY = datetime(2026, 3, 2, 10, 5, tzinfo=UTC)


def test_a_host_rotating_through_its_64_meets_the_per_client_limit(
    practitioner: User, settings: Any
) -> None:
    settings.SIGN_IN_MAIL_LIMIT_PER_ADDRESS = 3
    with time_machine.travel(MONDAY, tick=False):
        for n in range(3):
            _ask(RESET, f"guess{n}@example.org", ip=f"2001:db8:1:2::{n + 1:x}")
        _ask(RESET, practitioner.email, ip="2001:db8:1:2:ffff::9")
        deliver_sign_in_mail()
        assert mail.outbox == []
        # The next /64 is someone else.
        _ask(RESET, practitioner.email, ip="2001:db8:1:3::1")
        deliver_sign_in_mail()
    assert len(mail.outbox) == 1

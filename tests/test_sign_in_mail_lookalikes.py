"""The hourly limit per address typed counts look-alike spellings of one
address as that address: the lookup that finds the account and the count
compare addresses the same way (clinic.addresses.email_key)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.urls import reverse

from clinic.models import User
from tests.conftest import deliver_sign_in_mail
from tests.factories import PatientFactory
from treatments.services.portal import portal_invite, portal_login_request

pytestmark = pytest.mark.django_db

# A Monday morning, a few minutes into the hour: one hourly window.
MONDAY = datetime(2026, 3, 2, 10, 5, tzinfo=UTC)
OLIVER = "oliver.bennett@demo.clinic.invalid"
SOPHIE = "sophie.stone@example.org"
DOTLESS_I = "\u0131"  # dotless i: PostgreSQL's UPPER() makes it I
LONG_S = "\u017f"  # long s: UPPER() makes it S, casefold() s


def _spelt(address: str, letter: str, look_alike: str, *positions: int) -> str:
    """`address` with the `letter`s at `positions` (0: the first) as `look_alike`."""
    parts = address.split(letter)
    out = parts[0]
    for n, part in enumerate(parts[1:]):
        out += (look_alike if n in positions else letter) + part
    return out


@pytest.fixture(autouse=True)
def frozen() -> Any:
    with time_machine.travel(MONDAY, tick=False) as traveller:
        yield traveller


def _portal_patient(practitioner: User, settings: Any, email: str) -> None:
    settings.REQUIRE_STAFF_2FA = False
    portal_invite(patient=PatientFactory(email=email), invited_by=practitioner)
    mail.outbox.clear()


def _ask_from_many_clients(addresses: list[str]) -> None:
    for n, email in enumerate(addresses, start=1):
        # Each from another client: only the limit per email applies.
        Client().post(
            reverse("treatments:portal_request"), {"email": email}, REMOTE_ADDR=f"192.0.2.{n}"
        )
    deliver_sign_in_mail()


def test_dotless_i_spellings_get_no_link_and_no_extra_mail(
    practitioner: User, settings: Any
) -> None:
    _portal_patient(practitioner, settings, OLIVER)
    dotless = [_spelt(OLIVER, "i", DOTLESS_I, n) for n in range(5)]
    _ask_from_many_clients([OLIVER] * 5 + dotless)
    assert len(mail.outbox) == 5
    assert {tuple(message.to) for message in mail.outbox} == {(OLIVER,)}


def test_the_sixth_request_in_an_hour_in_long_s_spellings_sends_nothing(
    practitioner: User, settings: Any
) -> None:
    _portal_patient(practitioner, settings, SOPHIE)
    spellings = [
        SOPHIE,
        _spelt(SOPHIE, "s", LONG_S, 0),
        _spelt(SOPHIE, "s", LONG_S, 1),
        _spelt(SOPHIE, "s", LONG_S, 0, 1),
        SOPHIE.upper(),
        _spelt(SOPHIE.upper(), "S", LONG_S, 0),
    ]
    _ask_from_many_clients(spellings)
    assert len(mail.outbox) == 5
    assert {tuple(message.to) for message in mail.outbox} == {(SOPHIE,)}


def test_a_long_s_spelling_finds_the_account_as_the_count_does(
    practitioner: User, settings: Any
) -> None:
    _portal_patient(practitioner, settings, SOPHIE)
    portal_login_request(email=_spelt(SOPHIE, "s", LONG_S, 0, 1))
    assert [message.to for message in mail.outbox] == [[SOPHIE]]

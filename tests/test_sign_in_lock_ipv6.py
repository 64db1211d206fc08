"""The lock of one account counts an IPv6 client by its /64: a host that holds
a whole /64 gets the same five tries at a password as an IPv4 client, while
the audit trail keeps each exact address."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.test import Client, RequestFactory, override_settings

from clinic.models import AuditAction, AuditEvent, User
from clinic.proxies import address_key, lockout_ip
from tests.factories import PASSWORD
from tests.test_edge import PROXY, behind_the_proxy, login_via_proxy


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("198.51.100.9", "198.51.100.9"),
        ("2001:db8:1:2::7", "2001:db8:1:2::"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::"),
        ("::ffff:198.51.100.9", "198.51.100.9"),
        (None, None),
    ],
)
def test_attempts_are_counted_by_the_ipv4_address_or_the_ipv6_64(
    address: str | None, key: str | None
) -> None:
    assert address_key(address) == key


def test_axes_sees_the_client_behind_the_proxy_by_its_64() -> None:
    request = RequestFactory().get(
        "/", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="2001:db8:1:2::abcd"
    )
    with override_settings(TRUSTED_PROXIES=[PROXY]):
        assert lockout_ip(request) == "2001:db8:1:2::"


@pytest.mark.django_db
@behind_the_proxy
def test_five_wrong_passwords_from_five_addresses_of_one_64_lock_the_account_there(
    practitioner: User,
) -> None:
    statuses = [
        login_via_proxy(
            Client(), "practitioner", "wrong password", f"2001:db8:1:2::{n + 1:x}"
        ).status_code
        for n in range(5)
    ]
    assert statuses == [200, 200, 200, 200, 429]
    # Another address of that /64 is refused even the right password...
    refused = login_via_proxy(Client(), "practitioner", PASSWORD, "2001:db8:1:2:ffff::9")
    assert refused.status_code == 429
    # ...another /64 signs in.
    assert login_via_proxy(Client(), "practitioner", PASSWORD, "2001:db8:1:3::1").status_code == 302
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"2001:db8:1:2::"}
    # The audit trail names each exact address the guesses came from.
    failed = AuditEvent.objects.filter(action=AuditAction.LOGIN_FAILED).values_list("ip", flat=True)
    assert {f"2001:db8:1:2::{n + 1:x}" for n in range(5)} <= set(failed)

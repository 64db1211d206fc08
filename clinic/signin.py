"""The sign-in lockout: by account and address together, with a ceiling per address.

django-axes locks the pair (account, client address) after LOGIN_FAILURE_LIMIT
wrong passwords (AXES_LOCKOUT_PARAMETERS): a stranger guessing one account
locks only themselves out of it, never the colleagues who share the clinic's
address. This handler adds a much higher ceiling per address
(LOGIN_ADDRESS_FAILURE_LIMIT failures within the cool-off, any account; for
IPv6, per /64), so one address trying many accounts is stopped too. The
clinic's own connection (CLINIC_NETWORKS) has no such ceiling: anyone on its
guest Wi-Fi shares that address with the staff. Axes has a single failure
limit, hence a handler (the library's documented extension point,
AXES_HANDLER) for the second one.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import F, Lookup, Sum, Value
from django.http import HttpRequest

from clinic.proxies import IPNetwork

# One IPv6 host holds a whole /64 and can rotate through it: the ceiling
# counts the network, not the address.
IPV6_CEILING_PREFIX = 64


class InNetwork(Lookup):
    """`inet <<= network`: the address lies within the network (PostgreSQL)."""

    lookup_name = "in_network"

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} <<= {rhs}::inet", [*lhs_params, *rhs_params]


def ceiling_network(address: str) -> IPNetwork | None:
    """The network the per-address ceiling counts for a client `address`:
    the address itself (IPv4), or its /64 (IPv6). None if it is no address."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return None
    prefix = IPV6_CEILING_PREFIX if parsed.version == 6 else 32
    return ipaddress.ip_network(f"{parsed}/{prefix}", strict=False)


def clinic_networks() -> tuple[IPNetwork, ...]:
    """CLINIC_NETWORKS (the clinic's own connection: its NAT address, its
    networks) as networks. Raises ValueError for an entry that is neither."""
    return tuple(
        ipaddress.ip_network(entry.strip(), strict=False)
        for entry in getattr(settings, "CLINIC_NETWORKS", ()) or ()
        if entry.strip()
    )


def is_clinic_address(address: str | None) -> bool:
    """Whether `address` (textual) is on one of CLINIC_NETWORKS."""
    try:
        parsed = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(parsed in network for network in clinic_networks())


def address_failures(request: HttpRequest) -> int:
    """Wrong passwords from this request's client address (for IPv6, its /64)
    within the cool-off, whatever the account."""
    network = ceiling_network(getattr(request, "axes_ip_address", None) or "")
    if network is None:
        return 0
    attempts = AccessAttempt.objects.filter(
        InNetwork(F("ip_address"), Value(network.with_prefixlen))
    )
    if settings.AXES_COOLOFF_TIME is not None:
        attempts = attempts.filter(attempt_time__gte=get_cool_off_threshold(request))
    return attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0


def address_over_ceiling(request: HttpRequest) -> bool:
    """Whether this client address (for IPv6, its /64) has reached
    LOGIN_ADDRESS_FAILURE_LIMIT. Never for the clinic's own connection
    (CLINIC_NETWORKS): a stranger on its guest Wi-Fi must not pause every
    colleague's sign-in; the lock per account and address still holds there."""
    address = getattr(request, "axes_ip_address", None)
    if is_clinic_address(address):
        return False
    return address_failures(request) >= settings.LOGIN_ADDRESS_FAILURE_LIMIT


def _locks_at_failure() -> bool:
    # Set by axes when it loads (axes/conf.py); True unless switched off.
    return bool(getattr(settings, "AXES_LOCK_OUT_AT_FAILURE", True))


class SignInLockHandler(AxesDatabaseHandler):
    """Axes' database handler with the per-address ceiling added."""

    def is_locked(self, request: HttpRequest, credentials: dict[str, Any] | None = None) -> bool:
        if super().is_locked(request, credentials):
            return True
        if _locks_at_failure() and address_over_ceiling(request):
            request.clinic_locked_by_address = True  # type: ignore[attr-defined]
            return True
        return False

    def user_login_failed(
        self,
        sender: Any,
        credentials: dict[str, Any],
        request: HttpRequest | None = None,
        **kwargs: Any,
    ) -> None:
        super().user_login_failed(sender, credentials, request, **kwargs)
        if request is None or getattr(request, "axes_locked_out", False):
            return
        if _locks_at_failure() and address_over_ceiling(request):
            # The failure just recorded reached the ceiling: answer with the lockout page.
            request.clinic_locked_by_address = True  # type: ignore[attr-defined]
            request.axes_locked_out = True  # type: ignore[attr-defined]
            request.axes_credentials = credentials  # type: ignore[attr-defined]

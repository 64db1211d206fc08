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

A lock ends on its own after the cool-off (LOGIN_LOCKOUT_MINUTES from the
last wrong password counted); the lockout page says when. A manager can lift
one sooner (`sign_in_locks` lists them; clinic.services lifts them, through
axes' own reset), and a completed password reset lifts the account's.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import F, Lookup, Sum, Value
from django.http import HttpRequest
from django.utils import timezone

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


def _cool_off() -> timedelta:
    cool_off: timedelta = settings.AXES_COOLOFF_TIME
    return cool_off


def lock_lifts_at(
    attempts: Iterable[tuple[datetime, int]], *, limit: int, cool_off: timedelta
) -> datetime | None:
    """When a lock made of `attempts` ends on its own, or None if they hold no lock.

    `attempts` are (time of the last failure, failures) of the rows counted
    (each row stops counting `cool_off` after its time); the lock holds while
    the failures still counted reach `limit`."""
    ordered = sorted(attempts)
    counted = sum(failures for _, failures in ordered)
    if counted < limit:
        return None
    for at, failures in ordered:
        counted -= failures
        if counted < limit:
            return at + cool_off
    return None  # pragma: no cover: the loop always ends below the limit


def _network_rows(network: IPNetwork, since: datetime) -> list[tuple[datetime, int]]:
    rows = AccessAttempt.objects.filter(
        InNetwork(F("ip_address"), Value(network.with_prefixlen)), attempt_time__gte=since
    ).values_list("attempt_time", "failures_since_start")
    return list(rows)


@dataclass(frozen=True)
class AccountLock:
    """An account locked from one client address, and when that lock ends."""

    username: str
    address: str
    failures: int
    ends_at: datetime


@dataclass(frozen=True)
class AddressPause:
    """A client address (for IPv6, its /64) from which signing in is paused."""

    network: str
    failures: int
    accounts: int
    ends_at: datetime


@dataclass(frozen=True)
class SignInLocks:
    """The locks holding now: accounts (by account and address) and addresses."""

    accounts: list[AccountLock]
    addresses: list[AddressPause]

    @property
    def by_account(self) -> list[tuple[str, list[AccountLock]]]:
        """The account locks grouped by account name, latest ending first."""
        grouped: dict[str, list[AccountLock]] = {}
        for lock in self.accounts:
            grouped.setdefault(lock.username, []).append(lock)
        return list(grouped.items())


def sign_in_locks(*, now: datetime | None = None) -> SignInLocks:
    """The sign-in locks holding at `now` (UTC; the clock by default), soonest
    ending last: each account locked from an address (LOGIN_FAILURE_LIMIT
    wrong passwords within LOGIN_LOCKOUT_MINUTES, AXES_LOCKOUT_PARAMETERS) and
    each address over LOGIN_ADDRESS_FAILURE_LIMIT (never one of
    CLINIC_NETWORKS). One query, whatever the number of attempts."""
    now = now or timezone.now()
    cool_off = _cool_off()
    rows = AccessAttempt.objects.filter(attempt_time__gte=now - cool_off).values_list(
        "username", "ip_address", "attempt_time", "failures_since_start"
    )
    by_pair: dict[tuple[str, str], list[tuple[datetime, int]]] = defaultdict(list)
    by_network: dict[IPNetwork, list[tuple[datetime, int]]] = defaultdict(list)
    accounts_of: dict[IPNetwork, set[str]] = defaultdict(set)
    for username, address, at, failures in rows:
        by_pair[(username or "", address or "")].append((at, failures))
        network = ceiling_network(address or "")
        if network is not None and not is_clinic_address(address):
            by_network[network].append((at, failures))
            accounts_of[network].add(username or "")
    accounts = []
    for (username, address), attempts in by_pair.items():
        ends = lock_lifts_at(attempts, limit=settings.AXES_FAILURE_LIMIT, cool_off=cool_off)
        if ends is not None and ends > now:
            accounts.append(AccountLock(username, address, sum(n for _, n in attempts), ends))
    addresses = []
    for network, attempts in by_network.items():
        ends = lock_lifts_at(
            attempts, limit=settings.LOGIN_ADDRESS_FAILURE_LIMIT, cool_off=cool_off
        )
        if ends is not None and ends > now:
            label = str(network.network_address) if network.prefixlen in (32, 128) else str(network)
            addresses.append(
                AddressPause(label, sum(n for _, n in attempts), len(accounts_of[network]), ends)
            )
    accounts.sort(key=lambda lock: (lock.ends_at, lock.username), reverse=True)
    addresses.sort(key=lambda pause: (pause.ends_at, pause.network), reverse=True)
    return SignInLocks(accounts, addresses)


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
        if request is None:
            return
        if (
            not getattr(request, "axes_locked_out", False)
            and _locks_at_failure()
            and address_over_ceiling(request)
        ):
            # The failure just recorded reached the ceiling: answer with the lockout page.
            request.clinic_locked_by_address = True  # type: ignore[attr-defined]
            request.axes_locked_out = True  # type: ignore[attr-defined]
            request.axes_credentials = credentials  # type: ignore[attr-defined]
        if getattr(request, "axes_locked_out", False):
            # For the lockout page: when signing in works again (clinic time there).
            request.clinic_lock_ends_at = self.lock_ends_at(request, credentials)  # type: ignore[attr-defined]

    def lock_ends_at(
        self, request: HttpRequest, credentials: dict[str, Any] | None = None
    ) -> datetime | None:
        """When the locks holding this request's sign-in end on their own: the
        account's from this address and, past the ceiling, the address's."""
        cool_off = _cool_off()
        ends = [
            lock_lifts_at(
                attempts.values_list("attempt_time", "failures_since_start"),
                limit=settings.AXES_FAILURE_LIMIT,
                cool_off=cool_off,
            )
            for attempts in self.get_user_attempts(request, credentials)
        ]
        address = getattr(request, "axes_ip_address", None) or ""
        network = ceiling_network(address)
        if network is not None and not is_clinic_address(address):
            ends.append(
                lock_lifts_at(
                    _network_rows(network, get_cool_off_threshold(request)),
                    limit=settings.LOGIN_ADDRESS_FAILURE_LIMIT,
                    cool_off=cool_off,
                )
            )
        return max((end for end in ends if end is not None), default=None)

"""Where trust in forwarded headers starts: the client's address and scheme.

The reverse proxy in front of the clinic says who the client is
(X-Forwarded-For) and whether it spoke HTTPS (X-Forwarded-Proto). Anyone can
send those headers, so they count only when the direct peer (REMOTE_ADDR) is
one of TRUSTED_PROXIES. This module is the one source of the client's
address: for the audit trail, the sign-in lockout (django-axes calls
`client_ip` through AXES_CLIENT_IP_CALLABLE) and every throttle.

Kept free of model imports: logging and settings checks may use it early.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Headers a client could use to pass itself off as someone else, or as HTTPS.
FORWARDED_HEADERS = (
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_SSL",
    "HTTP_X_FORWARDED_PROTOCOL",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_FORWARDED",
)


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry)


def trusted_networks() -> tuple[IPNetwork, ...]:
    """TRUSTED_PROXIES (addresses or networks, e.g. "172.30.0.1" or
    "10.0.0.0/8") as networks. Raises ValueError for an entry that is neither."""
    return _networks(tuple(getattr(settings, "TRUSTED_PROXIES", ()) or ()))


# Headers by which a proxy (or a client pretending to be one) says "HTTPS".
SCHEME_HEADERS = ("HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_SSL", "HTTP_X_FORWARDED_PROTOCOL")


def _parse(value: str) -> IPAddress | None:
    try:
        parsed = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    # An IPv4 client seen through an IPv6 socket is the IPv4 client.
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped
    return parsed


def _parse_hop(hop: str) -> IPAddress | None:
    """One X-Forwarded-For entry as an address: "192.0.2.7", "192.0.2.7:4711",
    "2001:db8::7" or "[2001:db8::7]:4711" (some proxies add the client's port).
    None for anything else."""
    hop = hop.strip()
    if hop.startswith("["):
        address, bracket, port = hop[1:].partition("]")
        if not bracket or (port and not (port[:1] == ":" and port[1:].isdigit())):
            return None
        return _parse(address)
    if hop.count(":") == 1:
        address, _colon, port = hop.partition(":")
        return _parse(address) if port.isdigit() else None
    return _parse(hop)


def is_trusted_proxy(address: str | None) -> bool:
    """Whether `address` (a textual IP address) is one of TRUSTED_PROXIES."""
    parsed = _parse(address or "")
    if parsed is None:
        return False
    return any(parsed in network for network in trusted_networks())


def peer_is_trusted_proxy(request: HttpRequest) -> bool:
    """Whether the direct peer of this request is a trusted reverse proxy."""
    return is_trusted_proxy(request.META.get("REMOTE_ADDR"))


def client_ip(request: HttpRequest) -> str | None:
    """The client's IP address, as text; None when the server gave none.

    REMOTE_ADDR, unless the direct peer is a trusted proxy: then the address
    that proxy put at the end of X-Forwarded-For, skipping further trusted
    proxies from the right (a chain of them). A hop may carry a port
    ("192.0.2.7:4711", "[2001:db8::7]:4711"); a hop that is not an IP address
    (a broken chain) stops the walk at the last trusted hop. Never the
    left-most entry: the client writes that one itself.
    """
    peer = request.META.get("REMOTE_ADDR") or None
    if not peer_is_trusted_proxy(request):
        return peer
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    nearest = peer
    for hop in reversed(hops):
        parsed = _parse_hop(hop)
        if parsed is None:
            return nearest
        nearest = str(parsed)
        if not is_trusted_proxy(nearest):
            return nearest
    return nearest


# One IPv6 host is given a whole /64 and can rotate through it: what counts
# guesses counts an IPv6 client by its /64.
IPV6_HOST_PREFIX = 64


def address_key(address: str | None) -> str | None:
    """The address under which a client's attempts are counted: an IPv4
    address as it is, an IPv6 address as the first address of its /64
    ("2001:db8:1:2::7" -> "2001:db8:1:2::"). None for no address; text that
    is no address is returned as it is."""
    if not address:
        return None
    parsed = _parse(address)
    if parsed is None or parsed.version == 4:
        return str(parsed) if parsed is not None else address
    network = ipaddress.ip_network(f"{parsed}/{IPV6_HOST_PREFIX}", strict=False)
    return str(network.network_address)


def lockout_ip(request: HttpRequest) -> str | None:
    """The client address django-axes locks accounts by
    (AXES_CLIENT_IP_CALLABLE): `client_ip`, IPv6 counted by its /64, so that
    a host cannot try an account's password once from each address it holds.
    The audit trail keeps the exact address (`client_ip`)."""
    return address_key(client_ip(request))


def forwarded_scheme(request: HttpRequest) -> str | None:
    """The scheme a trusted proxy reports in X-Forwarded-Proto ("https" or
    "http"); None when the peer is not trusted or the header is absent or unknown."""
    if not peer_is_trusted_proxy(request):
        return None
    value = request.META.get("HTTP_X_FORWARDED_PROTO", "")
    # Where several are listed, the last was written by the nearest proxy:
    # the one we trust; earlier ones may come from the client.
    last = value.split(",")[-1].strip().lower()
    return last if last in {"http", "https"} else None

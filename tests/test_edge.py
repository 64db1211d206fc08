"""The edge of the application: who the client is behind the reverse proxy,
the sign-in lockout by account and address, and request bodies too large."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.http import HttpRequest
from django.test import Client, RequestFactory, override_settings
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice
from gunicorn.http.body import Body, ChunkedReader
from gunicorn.http.unreader import IterUnreader

from clinic.models import AuditAction, AuditEvent, User
from clinic.proxies import client_ip
from tests.conftest import totp_code
from tests.factories import PASSWORD, PatientFactory

LOGIN = "/accounts/login/"
PROXY = "10.0.0.1"
CLINIC_NAT = "203.0.113.5"
MB = 1024 * 1024

behind_the_proxy = override_settings(TRUSTED_PROXIES=[PROXY])


def login_via_proxy(client: Client, username: str, password: str, client_address: str):
    """A sign-in as the reverse proxy forwards it: the peer is the proxy, the
    client's address is the last entry of X-Forwarded-For."""
    return client.post(
        LOGIN,
        {"username": username, "password": password},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=f"198.18.0.99, {client_address}",
    )


# --- The client's address ----------------------------------------------------------


def _request(remote: str, forwarded: str | None = None) -> HttpRequest:
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


@pytest.mark.parametrize(
    ("proxies", "remote", "forwarded", "expected"),
    [
        # No proxy trusted: the header is the client's own claim.
        ([], PROXY, "192.0.2.7", PROXY),
        # The proxy appends the client; what the client wrote before is ignored.
        ([PROXY], PROXY, "6.6.6.6, 192.0.2.7", "192.0.2.7"),
        # A peer that is not the proxy cannot claim another address.
        ([PROXY], "192.0.2.50", "192.0.2.7", "192.0.2.50"),
        # Two proxies in a row (a load balancer, then nginx), given as a network.
        (["10.0.0.0/24"], PROXY, "192.0.2.7, 10.0.0.2", "192.0.2.7"),
        # A broken chain stops at the last trusted hop.
        ([PROXY], PROXY, "192.0.2.7, not-an-address", PROXY),
        # No header from the proxy: the proxy itself.
        ([PROXY], PROXY, None, PROXY),
        (["2001:db8::/64"], "2001:db8::1", "2001:db8:1::7", "2001:db8:1::7"),
        # Proxies that add the client's port: the address, not the proxy's.
        ([PROXY], PROXY, "6.6.6.6, 198.51.100.77:4444", "198.51.100.77"),
        ([PROXY], PROXY, "[2001:db8:1::7]:4444", "2001:db8:1::7"),
        ([PROXY], PROXY, "[2001:db8:1::7]", "2001:db8:1::7"),
        # An IPv4 client written as an IPv6 address is the IPv4 client.
        ([PROXY], PROXY, "::ffff:198.51.100.77", "198.51.100.77"),
        # A port that is not a number is no address.
        ([PROXY], PROXY, "198.51.100.77:http", PROXY),
    ],
)
def test_the_client_address_comes_from_the_trusted_proxy_only(
    proxies: list[str], remote: str, forwarded: str | None, expected: str
) -> None:
    with override_settings(TRUSTED_PROXIES=proxies):
        assert client_ip(_request(remote, forwarded)) == expected


@pytest.mark.django_db
@behind_the_proxy
def test_the_audit_trail_records_the_client_behind_the_proxy(practitioner: User) -> None:
    login_via_proxy(Client(), "practitioner", "wrong password", CLINIC_NAT)
    event = AuditEvent.objects.get(action=AuditAction.LOGIN_FAILED)
    assert event.ip == CLINIC_NAT


# --- Sign-in lockout ---------------------------------------------------------------


@pytest.mark.django_db
@behind_the_proxy
def test_a_stranger_guessing_one_account_does_not_lock_out_the_colleagues(
    practitioner: User, receptionist: User
) -> None:
    """Sixteen wrong passwords for one account, from sixteen addresses, one of
    them the clinic's own: the colleague at the clinic still signs in."""
    addresses = [f"198.51.100.{n}" for n in range(1, 16)] + [CLINIC_NAT]
    for address in addresses:
        response = login_via_proxy(Client(), "practitioner", "wrong password", address)
        assert response.status_code == 200
    assert AccessAttempt.objects.filter(username="practitioner").count() == 16
    client = Client()
    response = login_via_proxy(client, "reception", PASSWORD, CLINIC_NAT)
    assert response.status_code == 302
    device = TOTPDevice.objects.get(user=receptionist)
    response = client.post(
        reverse("two_factor"),
        {"otp_token": totp_code(device)},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=CLINIC_NAT,
    )
    assert response.status_code == 302
    home = client.get(reverse("home"), REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=CLINIC_NAT)
    assert home.status_code == 200


@pytest.mark.django_db
@behind_the_proxy
def test_five_wrong_passwords_lock_the_account_from_that_address_only(
    practitioner: User,
) -> None:
    guesser = Client()
    statuses = [
        login_via_proxy(guesser, "practitioner", "wrong password", "198.51.100.9").status_code
        for _ in range(5)
    ]
    assert statuses == [200, 200, 200, 200, 429]
    # From that address even the right password is refused...
    assert login_via_proxy(guesser, "practitioner", PASSWORD, "198.51.100.9").status_code == 429
    # ...while the practitioner at the clinic signs in.
    assert login_via_proxy(Client(), "practitioner", PASSWORD, CLINIC_NAT).status_code == 302


@pytest.mark.django_db
@behind_the_proxy
@override_settings(LOGIN_ADDRESS_FAILURE_LIMIT=8)
def test_one_address_trying_many_accounts_meets_the_address_ceiling(
    practitioner: User,
) -> None:
    guesser = Client()
    statuses = [
        login_via_proxy(guesser, f"user{n}", "wrong password", "198.51.100.9").status_code
        for n in range(8)
    ]
    assert statuses == [200] * 7 + [429]
    refused = login_via_proxy(guesser, "practitioner", PASSWORD, "198.51.100.9")
    assert refused.status_code == 429
    assert "from your connection" in refused.content.decode()
    assert login_via_proxy(Client(), "practitioner", PASSWORD, CLINIC_NAT).status_code == 302


@pytest.mark.django_db
@behind_the_proxy
@override_settings(LOGIN_ADDRESS_FAILURE_LIMIT=8, CLINIC_NETWORKS=["203.0.113.0/29"])
def test_a_stranger_on_the_clinics_own_network_does_not_pause_the_staff(
    practitioner: User, receptionist: User
) -> None:
    """A guest on the clinic's Wi-Fi (behind its NAT) tries many accounts: the
    per-address ceiling does not apply there, the per-account lock does."""
    stranger = Client()
    statuses = [
        login_via_proxy(stranger, f"user{n}", "wrong password", CLINIC_NAT).status_code
        for n in range(12)
    ]
    assert statuses == [200] * 12
    assert login_via_proxy(Client(), "practitioner", PASSWORD, CLINIC_NAT).status_code == 302
    # The lock of one account from that address still holds.
    statuses = [
        login_via_proxy(stranger, "reception", "wrong password", CLINIC_NAT).status_code
        for _ in range(5)
    ]
    assert statuses == [200, 200, 200, 200, 429]


@pytest.mark.django_db
@behind_the_proxy
@override_settings(LOGIN_ADDRESS_FAILURE_LIMIT=8)
def test_the_address_ceiling_counts_an_ipv6_host_by_its_64(practitioner: User) -> None:
    """One host rotating through the addresses of its /64 is one address."""
    guesser = Client()
    statuses = [
        login_via_proxy(
            guesser, f"user{n}", "wrong password", f"2001:db8:1:2::{n + 1:x}"
        ).status_code
        for n in range(8)
    ]
    assert statuses == [200] * 7 + [429]
    refused = login_via_proxy(Client(), "practitioner", PASSWORD, "2001:db8:1:2:ffff::9")
    assert refused.status_code == 429
    # The next /64 is someone else.
    assert login_via_proxy(Client(), "practitioner", PASSWORD, "2001:db8:1:3::1").status_code == 302


@pytest.mark.django_db
@behind_the_proxy
def test_a_forged_forwarded_for_from_an_untrusted_peer_is_ignored(practitioner: User) -> None:
    client = Client()
    statuses = []
    for n in range(5):
        response = client.post(
            LOGIN,
            {"username": "practitioner", "password": "wrong password"},
            REMOTE_ADDR="192.0.2.50",
            HTTP_X_FORWARDED_FOR=f"198.51.100.{n}",
        )
        statuses.append(response.status_code)
    assert statuses == [200, 200, 200, 200, 429]
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"192.0.2.50"}
    assert set(
        AuditEvent.objects.filter(action=AuditAction.LOGIN_FAILED).values_list("ip", flat=True)
    ) == {"192.0.2.50"}


# --- The scheme the client used -------------------------------------------------------


@pytest.mark.django_db
@behind_the_proxy
@override_settings(SECURE_SSL_REDIRECT=True)
def test_https_as_reported_by_the_trusted_proxy_only() -> None:
    client = Client()
    through_proxy = client.get(LOGIN, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_PROTO="https")
    assert through_proxy.status_code == 200
    plain_through_proxy = client.get(LOGIN, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_PROTO="http")
    assert plain_through_proxy.status_code == 301
    forged = client.get(LOGIN, REMOTE_ADDR="192.0.2.50", HTTP_X_FORWARDED_PROTO="https")
    assert forged.status_code == 301
    assert forged["Location"].startswith("https://")


@pytest.mark.django_db
@behind_the_proxy
@pytest.mark.parametrize(
    "claim",
    [
        {"HTTP_X_FORWARDED_PROTO": "https"},
        {"HTTP_X_FORWARDED_SSL": "on"},
        {"HTTP_X_FORWARDED_PROTOCOL": "ssl"},
    ],
)
def test_a_scheme_the_server_took_from_an_untrusted_peer_is_put_back(
    claim: dict[str, str],
) -> None:
    """A server that believed the header (gunicorn's own default trusts
    127.0.0.1) hands over https; from a peer that is not the proxy the request
    is plain http again, so the CSRF check does not demand an https Referer."""
    client = Client(enforce_csrf_checks=True)
    client.get(LOGIN, REMOTE_ADDR="127.0.0.1")
    token = client.cookies[settings.CSRF_COOKIE_NAME].value
    response = client.post(
        LOGIN,
        {"csrfmiddlewaretoken": token, "username": "nobody", "password": "wrong password"},
        REMOTE_ADDR="127.0.0.1",
        **{"wsgi.url_scheme": "https", **claim},
    )
    assert response.status_code == 200
    assert response.wsgi_request.scheme == "http"
    assert not any(header in response.wsgi_request.META for header in claim)


# gunicorn's own settings (no forwarded scheme believed): tests/test_gunicorn_conf.py.


# --- Request bodies --------------------------------------------------------------------


class GeneratedBody(io.RawIOBase):
    """A multipart body of `size` bytes made as it is read (a file of zeros),
    counting what was read: a huge upload without holding it in memory."""

    BOUNDARY = "edge-boundary"

    def __init__(self, size: int) -> None:
        self.head = (
            f"--{self.BOUNDARY}\r\n"
            'Content-Disposition: form-data; name="upload"; filename="big.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        self.tail = f"\r\n--{self.BOUNDARY}--\r\n".encode()
        self.size = size
        self.position = 0

    def _slice(self, start: int, end: int) -> bytes:
        zeros_start, zeros_end = len(self.head), self.size - len(self.tail)
        parts = []
        if start < zeros_start:
            parts.append(self.head[start : min(end, zeros_start)])
        if min(end, zeros_end) > max(start, zeros_start):
            parts.append(bytes(min(end, zeros_end) - max(start, zeros_start)))
        if end > zeros_end:
            parts.append(self.tail[max(0, start - zeros_end) : end - zeros_end])
        return b"".join(parts)

    def read(self, size: int | None = -1) -> bytes:
        end = self.size if size is None or size < 0 else min(self.size, self.position + size)
        chunk = self._slice(self.position, end)
        self.position = end
        return chunk


def _post_body(client: Client, path: str, body: GeneratedBody, **extra: Any):
    # The body and its headers are given as the server would pass them.
    return client.generic(
        "POST",
        path,
        CONTENT_TYPE=f"multipart/form-data; boundary={GeneratedBody.BOUNDARY}",
        **{"wsgi.input": body, **extra},
    )


@pytest.mark.django_db
def test_a_200_mb_post_to_the_sign_in_page_is_refused_unread(settings: Any, tmp_path: Path) -> None:
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    body = GeneratedBody(200 * MB)
    response = _post_body(Client(), LOGIN, body, CONTENT_LENGTH=str(body.size))
    assert response.status_code == 413
    assert "Too much was sent at once" in response.content.decode()
    assert body.position == 0
    assert list(tmp_path.iterdir()) == []


@pytest.mark.django_db
def test_a_chunked_body_over_the_limit_is_refused(settings: Any, tmp_path: Path) -> None:
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    body = GeneratedBody(200 * MB)
    response = _post_body(
        Client(), LOGIN, body, CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked"
    )
    assert response.status_code == 413
    # Read no further than the limit.
    assert body.position <= settings.REQUEST_BODY_MAX_BYTES + 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.django_db
def test_a_chunked_sign_in_within_the_limit_is_read_as_usual(practitioner: User) -> None:
    form = urlencode({"username": "practitioner", "password": PASSWORD}).encode()
    response = Client().generic(
        "POST",
        LOGIN,
        CONTENT_TYPE="application/x-www-form-urlencoded",
        HTTP_TRANSFER_ENCODING="chunked",
        **{"wsgi.input": io.BytesIO(form)},
    )
    assert response.status_code == 302


@pytest.mark.django_db
def test_a_photo_upload_keeps_its_own_larger_limit(practitioner: User, settings: Any) -> None:
    from tests.conftest import sign_in

    settings.REQUIRE_STAFF_2FA = False
    patient = PatientFactory()
    client = sign_in(Client(), practitioner)
    path = reverse("patients:photos", kwargs={"patient": patient.uuid})
    # Over the general limit but within the upload limit: the photo page
    # itself answers, with its own sentence and the form kept.
    body = GeneratedBody(17 * MB)
    response = _post_body(client, path, body, CONTENT_LENGTH=str(body.size))
    assert response.status_code == 413
    assert "The photo is larger than 15 MB" in response.content.decode()
    # Over the upload limit: refused before the page is reached, unread.
    body = GeneratedBody(settings.UPLOAD_BODY_MAX_BYTES + 1)
    response = _post_body(client, path, body, CONTENT_LENGTH=str(body.size))
    assert response.status_code == 413
    page = response.content.decode()
    assert "Too much was sent at once" in page
    assert "The photo is larger than 15 MB" in page
    assert body.position == 0


def _gunicorn_stream(*pieces: bytes, then: BaseException | None = None) -> Body:
    """The body stream gunicorn hands over for a chunked request whose raw
    bytes are `pieces`. After them the client sends nothing more: the stream
    ends, or, with `then`, raises it (a read that would wait for the client)."""

    def arrive() -> Iterator[bytes]:
        yield from pieces
        if then is not None:
            raise then

    return Body(ChunkedReader(SimpleNamespace(), IterUnreader(arrive())))


def _post_chunked(stream: Body):
    return Client().generic(
        "POST",
        LOGIN,
        CONTENT_TYPE="application/x-www-form-urlencoded",
        CONTENT_LENGTH="",
        HTTP_TRANSFER_ENCODING="chunked",
        **{"wsgi.input": stream},
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"-5\r\nabcde\r\n0\r\n\r\n", id="negative chunk size"),
        pytest.param(b"5\r\nab", id="body cut short"),
        pytest.param(b"5\r\nabcdeXX0\r\n\r\n", id="chunk without its terminator"),
        pytest.param(b"zz\r\nabcde\r\n0\r\n\r\n", id="chunk size not hexadecimal"),
    ],
)
def test_a_malformed_chunked_body_is_a_clear_400_logged_without_traceback(
    raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="clinic.edge"):
        response = _post_chunked(_gunicorn_stream(raw))
    assert response.status_code == 400
    assert "could not be read" in response.content.decode()
    [record] = [r for r in caplog.records if r.name == "clinic.edge"]
    assert record.levelno == logging.WARNING
    assert record.exc_info is None


@pytest.mark.django_db
def test_an_absurd_chunk_size_is_refused_without_waiting_for_the_bytes() -> None:
    # The size line declares more than the limit; the client then goes quiet.
    # Waiting for the rest would hold the worker until its timeout.
    stream = _gunicorn_stream(
        b"FFFFFFFFFFFFFFFFFFFF\r\n" + b"a" * 1000,
        then=TimeoutError("waited for bytes the client never sent"),
    )
    response = _post_chunked(stream)
    assert response.status_code == 413
    assert "Too much was sent at once" in response.content.decode()


@pytest.mark.django_db
def test_a_well_formed_gunicorn_chunked_sign_in_is_read_as_usual(practitioner: User) -> None:
    form = urlencode({"username": "practitioner", "password": PASSWORD}).encode()
    half = len(form) // 2
    stream = _gunicorn_stream(
        b"%x\r\n%s\r\n" % (half, form[:half]),
        b"%x\r\n%s\r\n0\r\n\r\n" % (len(form) - half, form[half:]),
    )
    assert _post_chunked(stream).status_code == 302


@pytest.mark.django_db
def test_a_length_that_is_not_a_number_is_a_clear_400() -> None:
    response = Client().generic(
        "POST", LOGIN, b"x=1", content_type="text/plain", CONTENT_LENGTH="lots"
    )
    assert response.status_code == 400
    assert "not a number" in response.content.decode()


def _route_names(patterns: list[Any], namespace: str = "") -> set[str]:
    from django.urls import URLPattern, URLResolver

    names: set[str] = set()
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            names |= _route_names(pattern.url_patterns, inner)
        elif isinstance(pattern, URLPattern) and pattern.name:
            names.add(namespace + pattern.name)
    return names


def test_every_upload_route_named_in_the_settings_exists(settings: Any) -> None:
    from django.urls import get_resolver

    assert _route_names(get_resolver().url_patterns) >= settings.UPLOAD_ROUTES

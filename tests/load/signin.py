"""What a simulated member of staff needs to sign in through the real pages:
the form's CSRF token and the code its authenticator would show. Plain
Python (no Locust, no Django), so the tests check it against the real pages."""

from __future__ import annotations

import hashlib
import hmac
import re
import struct
import time

CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
SIGN_IN_PATHS = ("/accounts/login/", "/accounts/two-factor/")


def csrf_token(html: str) -> str:
    """The CSRF token of the form in `html`; ValueError when there is none."""
    found = CSRF.search(html)
    if not found:
        raise ValueError("no CSRF token in the page")
    return found.group(1)


def totp(key_hex: str, *, at: float | None = None, step: int = 30, digits: int = 6) -> str:
    """The code an authenticator shows for the key at `at` (seconds since the
    epoch; now by default): RFC 6238, HMAC-SHA1, as django-otp's TOTP devices
    check it."""
    counter = int((time.time() if at is None else at) // step)
    mac = hmac.new(bytes.fromhex(key_hex), struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    number = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(number % 10**digits).zfill(digits)

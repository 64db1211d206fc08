"""Sending text messages: one small interface, three backends.

`send(*, to, body, idempotency_key) -> message_id`. A backend raises
TransientSMSError when trying again later may work (timeouts, the provider
busy or down) and PermanentSMSError when it never will (an invalid number, a
refused request). The idempotency key is the reminder's uuid: sending the same
reminder twice (a worker killed after the provider accepted it, before the
database committed) must reach the patient once.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)


class SMSError(Exception):
    """A text message was not accepted. `status`: the provider's HTTP status
    code when it answered one. The text is the backend's own words, never
    the provider's answer (which may echo the message, name or number)."""

    def __init__(self, message: str = "", *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TransientSMSError(SMSError):
    """Not sent this time; trying again later may work."""


class PermanentSMSError(SMSError):
    """Never going to be sent as it stands (an invalid number, say)."""


class SMSBackend(Protocol):
    def send(self, *, to: str, body: str, idempotency_key: str) -> str: ...


def get_backend(path: str | None = None) -> SMSBackend:
    """A new backend of the class at dotted `path` (SMS_BACKEND by default).
    Raises ImportError for a path that names no class, and what the class
    raises at construction (HttpBackend: PermanentSMSError for a URL that is
    not https:// or a timeout that is not positive)."""
    backend: SMSBackend = import_string(path or settings.SMS_BACKEND)()
    return backend


class ConsoleBackend:
    """Development: logs that a message went, never its text or number."""

    def send(self, *, to: str, body: str, idempotency_key: str) -> str:
        logger.info("SMS %s (%d characters)", idempotency_key, len(body))
        return f"console-{idempotency_key}"


class FileBackend:
    """Development and tests: one JSON file per message under SMS_FILE_PATH,
    named by the idempotency key, so sending the same key again writes no
    second file."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory or settings.SMS_FILE_PATH)

    def send(self, *, to: str, body: str, idempotency_key: str) -> str:
        if not idempotency_key or "/" in idempotency_key or idempotency_key.startswith("."):
            raise PermanentSMSError("invalid idempotency key")
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.directory / f"{idempotency_key}.json"
        payload = json.dumps({"to": to, "body": body, "key": idempotency_key}).encode()
        try:
            # O_EXCL: the first send of a key creates the file, a repeat finds it.
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return f"file-{idempotency_key}"
        try:
            os.write(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)
        return f"file-{idempotency_key}"


class HttpBackend:
    """One generic provider: POST JSON over HTTPS with a bearer token.

    Request: {"to", "from", "body"} with an `Idempotency-Key` header. Answer:
    2xx with {"id": "..."}. 429 and 5xx and timeouts are transient; other 4xx
    are permanent, with the status code alone: the provider's own answer is
    never read into an error (it may echo the message, a name, the number). `url`,
    `token`, `sender` and `timeout` (seconds, for the connection and each
    read) default to SMS_PROVIDER_URL, SMS_PROVIDER_TOKEN, SMS_SENDER and
    SMS_TIMEOUT_SECONDS. The certificate is checked against the system's
    trust store. Raises PermanentSMSError at construction for a URL that is
    not https:// or a timeout that is not positive.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        sender: str | None = None,
        timeout: float | None = None,
    ) -> None:
        self.url = url or settings.SMS_PROVIDER_URL
        self.token = token if token is not None else settings.SMS_PROVIDER_TOKEN
        self.sender = sender or settings.SMS_SENDER
        self.timeout = timeout if timeout is not None else settings.SMS_TIMEOUT_SECONDS
        if not self.url.startswith("https://"):
            # A token and patients' numbers never travel in clear, not even to this machine.
            raise PermanentSMSError("SMS_PROVIDER_URL must be an https:// address")
        if not self.timeout or self.timeout <= 0:
            raise PermanentSMSError("SMS_TIMEOUT_SECONDS must be a positive number of seconds")

    def send(self, *, to: str, body: str, idempotency_key: str) -> str:
        """POST one message to `to` (E.164) under `idempotency_key`; returns the
        provider's id. Raises TransientSMSError for 429, 5xx, a timeout (each
        wait at most `timeout` seconds), a refused or dropped connection, an
        unverifiable certificate or a broken answer; PermanentSMSError for
        any other 4xx. Each error carries the HTTP status (`status`) and the
        backend's own words only: never the number, never the provider's text."""
        data = json.dumps({"to": to, "from": self.sender, "body": body}).encode()
        request = urllib.request.Request(  # noqa: S310 (https only, checked in __init__)
            self.url,
            data=data,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                "Authorization": f"Bearer {self.token}",
                "Idempotency-Key": idempotency_key,
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                raw = response.read(65536)
        except urllib.error.HTTPError as error:
            code = error.code
            error.close()  # its body is the provider's words: not read, not kept
            if code == 429 or code >= 500:
                raise TransientSMSError(f"provider answered {code}", status=code) from None
            raise PermanentSMSError(f"provider refused ({code})", status=code) from None
        except TimeoutError as error:
            raise TransientSMSError("provider did not answer in time") from error
        except urllib.error.URLError as error:
            if isinstance(error.reason, TimeoutError):
                raise TransientSMSError("provider did not answer in time") from error
            raise TransientSMSError("provider unreachable") from error
        except (ConnectionError, OSError) as error:
            raise TransientSMSError("connection to the provider failed") from error
        except http.client.HTTPException as error:
            # A malformed or cut-short answer (BadStatusLine, IncompleteRead).
            raise TransientSMSError(
                f"broken answer from the provider ({type(error).__name__})"
            ) from error
        try:
            message_id = str(json.loads(raw or b"{}").get("id") or "")
        except (ValueError, AttributeError):
            message_id = ""
        if not message_id:
            # Accepted without an id: still sent; fall back to our key.
            message_id = f"http-{idempotency_key}"
        return message_id[:200]

"""The edge of the application: what a request may claim and how much it may send.

`ForwardedHeadersMiddleware` comes first in MIDDLEWARE: X-Forwarded-* headers
count only from a trusted proxy (clinic/proxies.py). `RequestBodyLimitMiddleware`
comes before anything that reads a body: a body over the limit is refused
with 413 before a byte of it is read, so it is never spooled to disk.
"""

from __future__ import annotations

import io
import logging
import ssl
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.handlers.wsgi import LimitedStream
from django.http import HttpRequest, HttpResponse
from django.template import loader
from django.urls import Resolver404, resolve
from django.utils.translation import gettext as _
from gunicorn.http.body import ChunkedReader

from clinic import clinic_settings
from clinic.context import current_request_id
from clinic.errorpages import error_page_context, referring_page
from clinic.proxies import (
    FORWARDED_HEADERS,
    SCHEME_HEADERS,
    forwarded_scheme,
    peer_is_trusted_proxy,
)

logger = logging.getLogger(__name__)

Handler = Callable[[HttpRequest], HttpResponse]

# Read a chunked body in pieces of this size while counting it.
_CHUNK = 64 * 1024


class ForwardedHeadersMiddleware:
    """From a trusted proxy, X-Forwarded-Proto sets the request's scheme (HTTPS
    redirects, secure cookies and CSRF origin checks then see what the client
    used). From anyone else the forwarded headers are removed, so nothing
    later in the request can be fooled by them, and a scheme the server may
    have taken from them is put back to the connection's own.

    This middleware is the only judge: gunicorn runs with
    --forwarded-allow-ips "" (Procfile, docker-compose.yml), believing no one."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if peer_is_trusted_proxy(request):
            scheme = forwarded_scheme(request)
            if scheme is not None:
                request.META["wsgi.url_scheme"] = scheme
        else:
            if any(header in request.META for header in SCHEME_HEADERS):
                request.META["wsgi.url_scheme"] = _connection_scheme(request)
            for header in FORWARDED_HEADERS:
                request.META.pop(header, None)
        return self.get_response(request)


def _connection_scheme(request: HttpRequest) -> str:
    # "https" only when the server itself holds the TLS connection.
    return "https" if isinstance(request.META.get("gunicorn.socket"), ssl.SSLSocket) else "http"


def is_upload_route(request: HttpRequest) -> bool:
    """Whether this address is one of UPLOAD_ROUTES (the pages that take a photo)."""
    try:
        match = resolve(request.path_info, getattr(request, "urlconf", None))
    except Resolver404:
        return False
    return match.view_name in settings.UPLOAD_ROUTES


def body_limit_for(request: HttpRequest) -> int:
    """The most bytes this request's body may hold: UPLOAD_BODY_MAX_BYTES for
    the routes named in UPLOAD_ROUTES (photo uploads), REQUEST_BODY_MAX_BYTES
    for every other address."""
    if is_upload_route(request):
        return int(settings.UPLOAD_BODY_MAX_BYTES)
    return int(settings.REQUEST_BODY_MAX_BYTES)


def _too_large(request: HttpRequest, limit: int) -> HttpResponse:
    # Rendered without the request: no session or user is loaded yet. Where
    # it leads follows from the address alone (a patient's page or staff's),
    # and "Go back" is the page the form was on, if it is on this site.
    body = loader.get_template("413.html").render(
        {
            "clinic_name": clinic_settings.current_or_defaults().clinic_name,
            "request_id": current_request_id(),
            "limit_megabytes": max(1, limit // (1024 * 1024)),
            "photo": is_upload_route(request),
            "back_url": referring_page(request),
            **error_page_context(request, user_known=False),
        }
    )
    return HttpResponse(body, status=413)


def _bad_body() -> HttpResponse:
    return HttpResponse(
        _("The request's content could not be read: it was malformed or cut short. Send it again."),
        status=400,
        content_type="text/plain; charset=utf-8",
    )


class ChunkTooLargeError(Exception):
    """A chunk of a chunked body declared more bytes than the body may hold."""


def _refuse_chunks_over(stream: object, limit: int) -> None:
    """Make gunicorn's chunked reader refuse a chunk declared over `limit` bytes
    as soon as its size line is read, instead of waiting for bytes that will
    never come (a size of FFFFFFFF... holds a worker until its timeout).

    Other servers' streams are left as they are: the byte count still applies."""
    reader = getattr(stream, "reader", None)
    if not isinstance(reader, ChunkedReader):
        return
    parse_chunk_size = reader.parse_chunk_size

    def bounded(unreader: Any, data: bytes | None = None) -> tuple[int, bytes | None]:
        size, rest = parse_chunk_size(unreader, data=data)
        if size > limit:
            raise ChunkTooLargeError(size)
        return size, rest

    # The reader looks the method up on each chunk, so the bound applies to all.
    reader.parse_chunk_size = bounded


def _bad_length() -> HttpResponse:
    return HttpResponse(
        _("The request declared a length that is not a number. Go back and send it again."),
        status=400,
        content_type="text/plain; charset=utf-8",
    )


class RequestBodyLimitMiddleware:
    """Refuse a request body over its limit before reading it (413).

    With a Content-Length, the declared length decides. A chunked body (no
    Content-Length) is read up to the limit: over it, 413; within it, the body
    is handed on with its length, as if it had been declared."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        declared = request.META.get("CONTENT_LENGTH") or ""
        chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
        if declared.strip() in {"", "0"} and not chunked:
            return self.get_response(request)
        limit = body_limit_for(request)
        if declared.strip():
            try:
                length = int(declared)
            except ValueError:
                return _bad_length()
            if length < 0:
                return _bad_length()
            if length > limit:
                logger.info("Request body of %s bytes refused (limit %s)", length, limit)
                return _too_large(request, limit)
            return self.get_response(request)
        try:
            body = self._read_chunked(request, limit)
        except ChunkTooLargeError:
            body = None
        except Exception as error:  # whatever the server's parser raises
            # A malformed or cut-short chunked body (a negative size, a missing
            # terminator, the client gone): the client's fault, not a crash.
            logger.warning("Unreadable chunked request body refused (%s)", type(error).__name__)
            return _bad_body()
        if body is None:
            logger.info("Chunked request body over %s bytes refused", limit)
            return _too_large(request, limit)
        request._stream = LimitedStream(io.BytesIO(body), len(body))  # type: ignore[assignment]
        request.META["CONTENT_LENGTH"] = str(len(body))
        return self.get_response(request)

    @staticmethod
    def _read_chunked(request: HttpRequest, limit: int) -> bytes | None:
        """The whole body if it holds at most `limit` bytes, else None (having
        read no more than limit + 1 bytes).

        Raises ChunkTooLargeError when a chunk declares more than `limit` bytes, and
        whatever the server's stream raises for a malformed body."""
        stream = request.META["wsgi.input"]
        _refuse_chunks_over(stream, limit)
        parts: list[bytes] = []
        size = 0
        while size <= limit:
            piece = stream.read(min(_CHUNK, limit + 1 - size))
            if not piece:
                return b"".join(parts)
            parts.append(piece)
            size += len(piece)
        return None

"""HTML to PDF with WeasyPrint, reading nothing but the bundled static files.

Documents are rendered from Django templates that hold patient text, so the
renderer must never follow a reference to the file system or the network: the
URL fetcher answers `data:` URIs and files found by the static-files finders,
and refuses everything else (file:///etc/passwd, http://..., ../ tricks).
"""

from __future__ import annotations

import mimetypes
import os
import posixpath
import tempfile
from typing import Any
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import staticfiles_storage
from django.core.files.storage import Storage
from django.template.loader import render_to_string
from weasyprint import HTML
from weasyprint.urls import URLFetcher, URLFetcherResponse

# Templates write `{% static %}` paths ("/static/css/pdf.css"); relative to this
# base they become URLs the fetcher recognises as bundled files.
STATIC_BASE = "https://static.invalid/"
_STATIC_PREFIX = STATIC_BASE.rstrip("/") + settings.STATIC_URL


class RefusedURLError(ValueError):
    """A document referred to something other than a bundled static file."""


def _static_path(url: str) -> str:
    """The static file's relative path, or RefusedURLError."""
    if not url.startswith(_STATIC_PREFIX):
        raise RefusedURLError("only bundled static files may be fetched")
    relative = unquote(urlsplit(url).path)[len(settings.STATIC_URL) :]
    normalised = posixpath.normpath(relative)
    if not relative or normalised.startswith(("..", "/")) or normalised != relative:
        raise RefusedURLError("not a plain static file path")
    return normalised


def _collected(relative: str) -> str | None:
    """A collected file by its stored name: `{% static %}` gives hashed names
    (css/pdf.0a1b2c.css) with the manifest storage of production, which the
    finders do not know."""
    if staticfiles_storage.exists(relative):
        return str(staticfiles_storage.path(relative))
    return None


class StaticOnlyFetcher(URLFetcher):
    """Fetch `data:` URIs and bundled static files; refuse anything else."""

    def fetch(self, url: str, headers: Any = None) -> URLFetcherResponse:
        if url.startswith("data:"):
            return super().fetch(url, headers)
        relative = _static_path(url)
        found = finders.find(relative) or _collected(relative)
        if not found or isinstance(found, list):
            raise RefusedURLError("no such static file")
        content_type = mimetypes.guess_type(relative)[0] or "application/octet-stream"
        with open(found, "rb") as handle:
            body = handle.read()
        return URLFetcherResponse(url, body, {"Content-Type": content_type})


def html_to_pdf(html: str) -> bytes:
    """Render an HTML document to PDF bytes with the static-only fetcher."""
    document = HTML(string=html, base_url=STATIC_BASE, url_fetcher=StaticOnlyFetcher())
    pdf = document.write_pdf()
    assert pdf is not None
    return pdf


def render_pdf(template_name: str, context: dict[str, Any]) -> bytes:
    """Render a Django template (autoescaped, as every template) to PDF bytes."""
    return html_to_pdf(render_to_string(template_name, context))


def store_replacing(storage: Storage, name: str, data: bytes) -> None:
    """Write `data` at exactly `name` in the storage, replacing any previous
    file in one step: a download never sees half a file or none, and a
    regenerated document never leaves a second copy beside the first."""
    path = storage.path(name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o640)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise

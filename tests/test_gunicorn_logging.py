"""The access log never holds a link token."""

from __future__ import annotations

import secrets

from clinic.gunicorn_logging import redact


def test_link_tokens_are_redacted_and_uuids_kept() -> None:
    token = secrets.token_urlsafe(32)
    patient = "3f1c2a9e-8b7d-4c6e-9f00-1234567890ab"
    assert redact(f"/treatments/d/{token}/") == "/treatments/d/[token]/"
    assert redact(f"/treatments/portal/sign-in/{token}/") == "/treatments/portal/sign-in/[token]/"
    assert redact(f"GET /treatments/d/{token}/ HTTP/1.1") == "GET /treatments/d/[token]/ HTTP/1.1"
    assert redact(f"/patients/{patient}/") == f"/patients/{patient}/"

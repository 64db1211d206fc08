"""Gunicorn's access log without secrets: emailed document links and portal
sign-in links carry their token in the path, so any long opaque path segment
is replaced before the line is written (the tokens are 43 characters; uuids,
with their hyphens, are kept)."""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

# One pattern for the access log and the application's own log lines.
from clinic.logfilters import TOKEN_SEGMENT, redact

__all__ = ["TOKEN_SEGMENT", "RedactingLogger", "redact"]


class RedactingLogger(Logger):
    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("U", "r"):
            if isinstance(atoms.get(key), str):
                atoms[key] = redact(atoms[key])
        return atoms

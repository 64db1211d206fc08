"""Gunicorn's access log without secrets: emailed document links and portal
sign-in links carry their token in the path, so any long opaque path segment
is replaced before the line is written (the tokens are 43 characters; uuids,
with their hyphens, are kept)."""

from __future__ import annotations

import re
from typing import Any

from gunicorn.glogging import Logger

# A url-safe token of 32 random bytes or more; a uuid has hyphens 8-4-4-4-12.
TOKEN_SEGMENT = re.compile(r"(?<=/)(?![0-9a-f]{8}-[0-9a-f]{4}-)[A-Za-z0-9_-]{40,}(?=/|$|\?|\s)")


def redact(path: str) -> str:
    return TOKEN_SEGMENT.sub("[token]", path)


class RedactingLogger(Logger):
    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("U", "r"):
            if isinstance(atoms.get(key), str):
                atoms[key] = redact(atoms[key])
        return atoms

"""Log filters: every line carries the request id, never a raw control
character, and never a link token."""

import logging
import re

from clinic.context import current_request_id

# A url-safe token of 32 random bytes or more in a path (emailed document
# links, portal sign-in links); a uuid, with its hyphens 8-4-4-4-12, is kept.
TOKEN_SEGMENT = re.compile(r"(?<=/)(?![0-9a-f]{8}-[0-9a-f]{4}-)[A-Za-z0-9_-]{40,}(?=/|$|\?|\s)")


def redact(text: str) -> str:
    """`text` with every token-like path segment replaced by "[token]"."""
    return TOKEN_SEGMENT.sub("[token]", text)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id()
        return True


class RedactSecretPaths(logging.Filter):
    """A line quoting a path (Django's refusal of a CSRF check names it, say)
    has any link token in it replaced before it is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True

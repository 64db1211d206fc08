"""One audit event per patient search a person makes, not one per keystroke.

The search boxes search as they are typed (htmx, 250 ms after the last key):
"s", "sm", "smi", "smith" are four requests but one search. Recording each
filled the audit trail with events that say nothing more than the first
(issue 14: every search keystroke wrote one). A search is recorded when it
starts; the requests that continue it write nothing.

What the trail answers is unchanged: who searched the register, when, from
where (one `view` event of `patients.patient_search`, never what was typed,
as before), and whom they then looked at (opening a result is its own `view`
event naming the patient, `clinic.audit.audit_read`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from django.utils import timezone
from redis.exceptions import RedisError

from clinic.audit import audit_log
from clinic.models import AuditAction

logger = logging.getLogger(__name__)

SEARCH_OBJECT_TYPE = "patients.patient_search"
# How long after one request of a search the next still continues it: a
# pause to read the results, then a few more letters.
SEARCH_CONTINUES_SECONDS = 120
# However it goes on, a search is recorded again after this long: the trail
# says when someone was searching, not only when they began.
SEARCH_LONGEST_SECONDS = 600
_KEY_PREFIX = "patients:search-audit"


def _normal(query: str) -> str:
    return " ".join(query.casefold().split())


def _digest(text: str) -> str:
    secret = settings.SECRET_KEY.encode()
    return hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()[:16]


def _beginnings(text: str) -> list[str]:
    """Keyed digests of every beginning of `text`, the whole of it last."""
    return [_digest(text[:end]) for end in range(1, len(text) + 1)]


def patient_search_audit(*, request: HttpRequest, query: str) -> bool:
    """Record in the audit trail that the user of `request` searched the
    register for `query`, once per search; returns whether an event was written.

    A query continues the search of the same person in the same signed-in
    session when it extends the longest query of that search or is a
    beginning of it (case and spacing aside: typing on, or deleting back),
    comes at most SEARCH_CONTINUES_SECONDS (120 s) after the previous request
    and less than SEARCH_LONGEST_SECONDS (600 s) after the search's first
    (clinic clock): nothing is written. Any other query (another name, even
    one reached by deleting back to a shared first letter; the same one after
    the pause; a search kept going past ten minutes) is a new search and
    writes one `view` event of `patients.patient_search`, without the words
    typed. The search's longest query is kept in the cache (Redis) only as
    keyed digests of its beginnings, for the 120 s; with the cache out of
    reach, or no session, every query is recorded (logged): the trail errs on
    the side of one event too many. Source: issue 14, "keep the search audit
    to one event per search, not per keystroke".
    """
    beginnings = _beginnings(_normal(query))
    now = timezone.now().timestamp()
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    key = f"{_KEY_PREFIX}:{request.user.pk}:{_digest(session_key or '')}"
    previous: Any = None
    if session_key:
        try:
            previous = cache.get(key)
        except RedisError:
            logger.warning("Search audit marker unavailable; this search is recorded")
    longest: list[str] = (previous.get("beginnings") or []) if isinstance(previous, dict) else []
    continues = bool(
        beginnings
        and longest
        and 0 <= now - previous.get("at", 0) <= SEARCH_CONTINUES_SECONDS
        and 0 <= now - previous.get("started", 0) < SEARCH_LONGEST_SECONDS
        # A beginning of the longest query (deleting back), or extending it.
        and (beginnings[-1] in longest or longest[-1] in beginnings)
    )
    if not continues:
        audit_log(actor=request.user, action=AuditAction.VIEW, object_type=SEARCH_OBJECT_TYPE)
    if session_key:
        marker = {
            "at": now,
            "started": previous["started"] if continues else now,
            "beginnings": longest if continues and len(longest) > len(beginnings) else beginnings,
        }
        try:
            # Set after the event: a search whose event failed is not "continued".
            cache.set(key, marker, timeout=SEARCH_CONTINUES_SECONDS + 60)
        except RedisError:
            logger.warning("Search audit marker unavailable; the next query is recorded")
    return not continues

"""Counting requests per key in Redis (Django's cache), in fixed windows.

For public pages that send something (a password reset, a portal sign-in
link): the page asks `throttle_hit` and, past the limit, quietly does less.
Keys are hashed with the secret key, so no email address is written to Redis.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from redis.exceptions import RedisError

from clinic.addresses import email_key

logger = logging.getLogger(__name__)

KEY_PREFIX = "throttle"


def _digest(value: str) -> str:
    secret = settings.SECRET_KEY.encode()
    # The lookups' own comparison: look-alikes they find as one are counted as one.
    return hmac.new(secret, email_key(value).encode(), hashlib.sha256).hexdigest()[:32]


def throttle_hit(*, scope: str, key: str, limit: int, window: timedelta) -> bool:
    """Count one request for `key` (an email address, a client address) in
    `scope`; True while the count within the current window (of `window`,
    aligned to the epoch) is at most `limit`, False past it.

    Keys are compared as `clinic.addresses.email_key` compares them (NFKC,
    casefolded, without surrounding spaces). With Redis out of
    reach the request is allowed (logged): a throttle never turns a page into
    an error.
    """
    seconds = max(1, int(window.total_seconds()))
    bucket = int(timezone.now().timestamp()) // seconds
    cache_key = f"{KEY_PREFIX}:{scope}:{_digest(key)}:{bucket}"
    try:
        # Kept a little past its window, then Redis forgets it.
        cache.add(cache_key, 0, timeout=seconds + 60)
        count = cache.incr(cache_key)
    except (RedisError, ValueError):
        # ValueError: the key expired between add and incr; count this one alone.
        logger.warning("Request counter unavailable for %s; request allowed", scope)
        return True
    return int(count) <= limit

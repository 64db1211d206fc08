"""The calendar's grid, computed once per version of the clinical facts and
kept in the cache (Redis) for display.

Ready-to-treat over a week of 800 bookings and the grid's cards cost far more
than the rest of the page, and they change only when a fact changes. So the
rows of a grid, once rendered, are kept with:

- the clinical facts' version (`facts_version`, clinic migration 0012): a
  random token the database replaces as it commits any change to a table the
  week reads (bookings, patients, histories, consents, allergy tests and
  readings, protocols, cocktails, rooms, hours, closures, practitioners...),
  from the ORM or raw SQL alike. The page reads it before any fact and
  again once the rows are computed, and keeps them only if it is unchanged:
  rows kept with a token hold exactly the facts of that token, and rows
  kept with another token than the one just read are never shown;
- under a key of what else the rows depend on: the view, its first day, the
  practitioner and room filters, the viewer's roles (what they may do and
  see), the language, and the release (`_release`: the code, templates and
  settings that compute and word the rows, so a changed rule is never shown
  from an entry the old code made). One entry per key: rows computed for a
  newer version replace the old ones, so a busy day's changes do not pile
  up in Redis;
- and no moment: ready-to-treat judges each booking at its own start, on the
  facts recorded by now; an entry is dropped at the first moment a fact
  stamped later than its computation would start to count
  (`treatments.selectors.readiness.week_readiness`), which only a clock set
  back can leave.

Nothing is cached or read from the cache inside a transaction that has
written (its changes are counted only when it commits), nor without the
version row. With Redis out of reach the grid is computed as without a
cache: never an error, never an old grid. A miss costs what the page cost
before the cache, plus the version read twice, one query for how long the
flags hold, and writing about 0.8 MB to Redis for a week of 800 bookings.

The cache is for display only. The rules stay in `treatments.gates`, the
one place they are written; an entry is their answer for one version of the
facts. Booking, completing a session or recording a cocktail never read it:
the services judge every write through the gates on the facts of that
moment.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any
from uuid import UUID

import django
from django.conf import settings
from django.core.cache import cache as redis_cache
from django.db import connection
from django.utils import translation
from django.utils.safestring import SafeString
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

KEY_PREFIX = "calendar-grid"
# An entry outlives its version only until then: a busy clinic's changes
# leave entries no key reaches any more, and Redis also carries the queue.
ENTRY_SECONDS = 3600
_FORMAT = 1  # the entry's layout, in the key

# Set by `facts_version_private` only (the benchmark).
_PRIVATE = "private-"
_private_token: ContextVar[str | None] = ContextVar("calendar_private_token", default=None)


def facts_version() -> str | None:
    """The clinical facts' version (a token), read before the facts: None
    when this transaction has already written (its own changes are counted
    when it commits, and an entry must not show them early or miss them) or
    when the version row is missing; then nothing is cached. One query."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT token::text FROM clinic_factsversion"
            " WHERE id = 1 AND txid_current_if_assigned() IS NULL"
        )
        row = cursor.fetchone()
    # A private block (the benchmark) still reads the row, as a page does.
    private = _private_token.get()
    if private is not None:
        return private
    return row[0] if row else None


@contextlib.contextmanager
def facts_version_private() -> Iterator[str]:
    """Within the block, inside a transaction the caller rolls back (the
    benchmark, whose rows are never committed), the transaction's own rows
    count as the facts: entries are made and read under a random token of
    the block's own, which nothing outside the block ever asks for (kept
    apart from the clinic's entries). Never for pages: a transaction that
    writes and then reads would serve its entries."""
    token = _PRIVATE + secrets.token_hex(16)
    reset = _private_token.set(token)
    try:
        yield token
    finally:
        _private_token.reset(reset)


@cache
def _code_digest() -> str:
    """A digest of the project's code, templates and translations: what
    computes and words the grid. Read once per process."""
    digest = hashlib.sha256()
    base = Path(settings.BASE_DIR)
    for folder in ("clinic", "patients", "consent", "treatments", "templates", "locale"):
        root = base / folder
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if path.suffix in {".py", ".html", ".mo"} and path.is_file():
                digest.update(str(path.relative_to(base)).encode())
                digest.update(path.read_bytes())
    digest.update(django.get_version().encode())
    return digest.hexdigest()


def _release() -> str:
    """The code's digest with the deployment settings the rules and the grid
    read. The clinic's own settings (validity windows, opening hours) are
    facts: saving them changes the facts' version (clinic migration 0015)."""
    values = [_code_digest()]
    for name in (
        "TIME_ZONE",
        "CLINIC_TIME_ZONE",
        "LANGUAGE_CODE",
        "SESSION_COMPLETE_EARLY_MINUTES",
    ):
        values.append(f"{name}={getattr(settings, name, None)!r}")
    return "|".join(values)


@dataclass(frozen=True)
class GridKey:
    """Everything a grid's rows depend on: the facts' version, and the rest."""

    version: str
    view: str  # "day" or "week"
    first_day: date  # local
    practitioner: UUID | None
    room: UUID | None
    roles: tuple[str, ...]  # the viewer's, sorted

    def cache_key(self) -> str:
        """Where the rows of this view are kept, whatever the version: one
        entry per view, filters, roles and language, replaced when computed
        for a newer version (so a busy day's changes do not pile up entries
        in Redis; an entry of another version is not used)."""
        parts = (
            _FORMAT,
            # A private block's entries never take the place of the clinic's.
            self.version.startswith(_PRIVATE),
            self.view,
            self.first_day.isoformat(),
            str(self.practitioner or "-"),
            str(self.room or "-"),
            ",".join(self.roles),
            translation.get_language() or "",
            _release(),
        )
        return f"{KEY_PREFIX}:" + hashlib.sha256(repr(parts).encode()).hexdigest()


def grid_key(
    *,
    version: str,
    view: str,
    first_day: date,
    practitioner: UUID | None,
    room: UUID | None,
    roles: Iterable[str],
) -> GridKey:
    """The key of a grid's rows for this version of the facts, view, first
    local day, filters (uuids) and the viewer's roles (role names)."""
    return GridKey(version, view, first_day, practitioner, room, tuple(sorted(roles)))


def grid_get(key: GridKey, *, at: datetime) -> SafeString | None:
    """The rows kept for `key` (HTML, as rendered), if computed for the same
    version of the facts and still good at `at` (aware, now). None when there
    is none, it is another version's, it stopped holding, or Redis cannot be
    reached (logged)."""
    try:
        entry: Any = redis_cache.get(key.cache_key())
    except RedisError:
        logger.warning("Calendar cache unavailable; the grid is computed")
        return None
    if not (isinstance(entry, tuple) and len(entry) == 4 and entry[0] == _FORMAT):
        return None
    _format, version, holds_until, rows = entry
    if version != key.version or not isinstance(rows, SafeString):
        return None
    if holds_until is not None and at.timestamp() >= holds_until:
        return None
    return rows


def grid_put(key: GridKey, rows: SafeString, *, at: datetime, holds_until: datetime | None) -> None:
    """Keep `rows` (the HTML `render_to_string` gave, kept as it is) for
    `key` until `holds_until` (aware; None: until the version changes), at
    most ENTRY_SECONDS. A week of 800 cards is about 0.8 MB. Redis out of
    reach: nothing kept (logged)."""
    seconds = ENTRY_SECONDS
    if holds_until is not None:
        left = (holds_until - at).total_seconds()
        if left <= 0:
            return
        seconds = max(1, min(seconds, int(left)))
    entry = (
        _FORMAT,
        key.version,
        holds_until.timestamp() if holds_until is not None else None,
        rows,
    )
    try:
        redis_cache.set(key.cache_key(), entry, timeout=seconds)
    except RedisError:
        logger.warning("Calendar cache unavailable; the grid is not kept")

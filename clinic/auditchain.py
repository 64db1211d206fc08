"""The hash chain over the audit trail: sealing events, and checking the chain.

Each audit event, once committed, gets one link (`AuditSeal`):

    event_hash = SHA-256(canonical content of the event)
    chain_hash = HMAC-SHA-256(AUDIT_CHAIN_KEY, previous chain_hash + event_hash)

The first link follows `GENESIS`. A sealer (beat, every minute) makes the
links, one sealer at a time (a transaction-level advisory lock), so writing
the trail in a request never waits for the chain. The key is not in the
database: whoever can write the tables (the owner role, a superuser) cannot
make links that verify. After each sealing the head of the chain (its last
link's number and hash) is written to `AUDIT_CHAIN_HEAD_FILE`, outside the
database, and logged, so links removed from the end are found too.

`audit_chain_verify` walks every link in order of its number and names the
first one that no longer matches: a link numbered out of line, an event
changed or deleted, a link for an event that does not exist, a link removed,
forged or made without the key, the chain ending before the recorded head, or
an event left unsealed (slipped in with a date in the past, or its link
deleted).

The application role cannot change or delete events or links
(clinic/dbroles.py), and a trigger lets it add only the next link, for an
event that exists and has none (clinic migration 0009); the chain is there
for what a database owner or superuser might do.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from clinic.models import AuditEvent, AuditSeal

logger = logging.getLogger(__name__)

GENESIS = "0" * 64
# An event still unsealed this long after it was written is a fault: sealing
# runs every minute, and no request transaction lasts an hour.
SEAL_GRACE = timedelta(hours=1)
# Advisory lock key: "audit" in ASCII, so one sealer runs at a time.
_SEALER_LOCK = 0x6175646974
_CONTENT_VERSION = 1


def event_content(event: AuditEvent) -> bytes:
    """The canonical bytes of one event, as hashed: every column, fixed order.

    Times are UTC ISO 8601 with microseconds, as stored. A change to the
    columns of `AuditEvent` needs a new content version here.
    """
    at = event.at.astimezone(UTC).isoformat(timespec="microseconds")
    document = {
        "v": _CONTENT_VERSION,
        "id": event.pk,
        "at": at,
        "actor_id": event.actor_id,
        "actor_label": event.actor_label,
        "roles": event.roles,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "patient_ref": str(event.patient_ref) if event.patient_ref else None,
        "changed_fields": list(event.changed_fields or []),
        "ip": event.ip,
        "request_id": event.request_id,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(event: AuditEvent) -> str:
    """SHA-256 (hex) of the event's canonical content."""
    return hashlib.sha256(event_content(event)).hexdigest()


def link_hash(previous_chain_hash: str, this_event_hash: str) -> str:
    """HMAC-SHA-256 (hex), keyed with `AUDIT_CHAIN_KEY`, of the previous link's
    chain hash followed by this event's hash."""
    message = f"{previous_chain_hash}{this_event_hash}".encode()
    return hmac.new(_chain_key(), message, hashlib.sha256).hexdigest()


def _chain_key() -> bytes:
    return str(settings.AUDIT_CHAIN_KEY).encode()


def _head_file() -> str | None:
    path = getattr(settings, "AUDIT_CHAIN_HEAD_FILE", None)
    return str(path) if path else None


def chain_head_recorded() -> tuple[int, str] | None:
    """(link number, chain hash) last written outside the database, if any."""
    path = _head_file()
    if path is None or not os.path.exists(path):
        return None
    with open(path, encoding="ascii") as recorded:
        seq_text, _, chain_hash = recorded.read().strip().partition(" ")
    return int(seq_text), chain_hash


def _chain_head_record(seq: int, chain_hash: str) -> None:
    path = _head_file()
    if path is None:
        return
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    # Written whole or not at all: a crash never leaves half a head.
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".audit-head-")
    with os.fdopen(handle, "w", encoding="ascii") as out:
        out.write(f"{seq} {chain_hash}\n")
    os.replace(temporary, path)


def audit_seal(*, batch: int = 5000) -> int:
    """Seal the committed events that have no link yet, oldest first.

    At most `batch` events per call; returns how many were sealed. Only events
    written from `SEAL_GRACE` before the last sealed event (or before now,
    whichever is earlier) are looked at, so a call costs the same with ten
    years of trail. The new head is written
    to `AUDIT_CHAIN_HEAD_FILE` once the links are committed.
    """
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_SEALER_LOCK])
        # The head is the highest link. A trigger (clinic migration 0009)
        # refuses any link but the last one plus one, for an event that exists
        # and has none, so the links run 1, 2, 3... without a gap and the
        # highest is the last made. Only the owner, disabling the trigger, can
        # put a link out of line; sealing then goes on from the highest (the
        # only number the trigger accepts next) and `audit_chain_verify` names
        # the link out of line.
        last = AuditSeal.objects.order_by("-seq").first()
        previous = last.chain_hash if last else GENESIS
        next_seq = last.seq + 1 if last else 1
        now = timezone.now()
        pending = AuditEvent.objects.filter(seal__isnull=True).order_by("id")
        last_at = (
            AuditEvent.objects.filter(pk=last.event_id).values_list("at", flat=True).first()
            if last is not None
            else None
        )
        if last_at is not None:
            # Events commit in about the order they are written: look back the
            # grace from the last event sealed, or from now if that one claims
            # a later date (a row dated in the future must not stop sealing).
            pending = pending.filter(at__gte=min(last_at, now) - SEAL_GRACE)
        events = list(pending[:batch])
        links = []
        for number, event in enumerate(events, start=next_seq):
            this_hash = event_hash(event)
            previous = link_hash(previous, this_hash)
            # Numbered here, not by the table's sequence: a sealing rolled back
            # would leave a gap in the sequence, and the trigger no next link.
            links.append(
                AuditSeal(
                    seq=number,
                    event=event,
                    event_hash=this_hash,
                    chain_hash=previous,
                    sealed_at=now,
                )
            )
        AuditSeal.objects.bulk_create(links)
    if links:
        _chain_head_record(links[-1].seq, links[-1].chain_hash)
        logger.info(
            "Audit trail sealed: %d events, chain head %s at link %s",
            len(links),
            links[-1].chain_hash,
            links[-1].seq,
        )
    return len(links)


@dataclass(frozen=True)
class ChainFault:
    """The first place the chain no longer holds."""

    seq: int | None
    event_id: int | None
    problem: str

    def __str__(self) -> str:
        where = f"link {self.seq}" if self.seq is not None else "unsealed"
        if self.event_id is None:
            return f"{where}: {self.problem}"
        return f"{where}, audit event {self.event_id}: {self.problem}"


@dataclass(frozen=True)
class ChainReport:
    """What `audit_chain_verify` found: links checked, the head, the first fault."""

    links: int
    head: str
    fault: ChainFault | None


def _links(chunk: int) -> Iterator[tuple[AuditSeal, AuditEvent | None]]:
    """Every link in order of its number, whatever the number (zero or negative
    too), each with its event (None when there is none), `chunk` at a time."""
    after: int | None = None
    while True:
        links = AuditSeal.objects.order_by("seq")
        if after is not None:
            links = links.filter(seq__gt=after)
        page = list(links[:chunk])
        if not page:
            return
        events = AuditEvent.objects.in_bulk([seal.event_id for seal in page])
        for seal in page:
            yield seal, events.get(seal.event_id)
        after = page[-1].seq


def audit_chain_verify(*, now: datetime | None = None, chunk: int = 2000) -> ChainReport:
    """Walk the chain from the first link and return the first fault, if any.

    Every link is walked, whatever its number. A fault is: a link numbered out
    of line (the links must run 1, 2, 3... without a gap: a link removed, or
    one made outside the sealing), an event changed since it was sealed, a link
    whose event does not exist, a link whose chain hash does not follow from
    the one before (a link removed, inserted or altered), or an event older
    than `SEAL_GRACE` with no link.
    `now` (UTC) is when "older" is measured from; the clock by default.
    """
    now = now or timezone.now()
    previous = GENESIS
    count = 0
    last_seq = 0
    for seal, event in _links(chunk):
        count += 1
        if seal.seq != last_seq + 1:
            return ChainReport(
                count,
                previous,
                ChainFault(
                    seal.seq,
                    seal.event_id,
                    f"the links are numbered out of line: link {last_seq + 1} was due here "
                    "(a link was removed, or this one made outside the sealing)",
                ),
            )
        if link_hash(previous, seal.event_hash) != seal.chain_hash:
            return ChainReport(
                count,
                previous,
                ChainFault(
                    seal.seq,
                    seal.event_id,
                    "the link does not follow from the one before (a link was removed, "
                    "inserted or altered)",
                ),
            )
        if event is None:
            return ChainReport(
                count,
                previous,
                ChainFault(
                    seal.seq,
                    seal.event_id,
                    "the event does not exist (it was deleted, or never written)",
                ),
            )
        if event.at > seal.sealed_at + SEAL_GRACE:
            return ChainReport(
                count,
                previous,
                ChainFault(
                    seal.seq,
                    seal.event_id,
                    f"dated {event.at:%Y-%m-%d %H:%M:%S} UTC, after it was sealed "
                    f"({seal.sealed_at:%Y-%m-%d %H:%M:%S} UTC)",
                ),
            )
        if event_hash(event) != seal.event_hash:
            return ChainReport(
                count,
                previous,
                ChainFault(seal.seq, seal.event_id, "the event was changed after it was sealed"),
            )
        previous = seal.chain_hash
        last_seq = seal.seq
    recorded = chain_head_recorded()
    if recorded is not None:
        recorded_seq, recorded_hash = recorded
        held = AuditSeal.objects.filter(seq=recorded_seq).values_list("chain_hash", flat=True)
        if list(held) != [recorded_hash]:
            return ChainReport(
                count,
                previous,
                ChainFault(
                    recorded_seq,
                    None,
                    "the chain no longer holds this link, recorded outside the database "
                    f"(the chain now ends at link {last_seq}): links or events were removed "
                    "from the end, or the chain was made again",
                ),
            )
    unsealed = (
        AuditEvent.objects.filter(seal__isnull=True, at__lt=now - SEAL_GRACE).order_by("id").first()
    )
    if unsealed is not None:
        return ChainReport(
            count,
            previous,
            ChainFault(
                None,
                unsealed.pk,
                f"written at {unsealed.at:%Y-%m-%d %H:%M:%S} UTC and never sealed (slipped in "
                "later, or its link was deleted)",
            ),
        )
    return ChainReport(count, previous, None)

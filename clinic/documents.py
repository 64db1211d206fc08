"""The PDFs the clinic makes in the background: one pipeline for every kind.

A signed consent's PDF (consent) and a session's aftercare sheet
(treatments) are rows of models built on `GeneratedDocument`, and every
change of their state goes through the functions below, so both kinds queue,
retry, give up and come back the same way, and staff see the same words.

The states of a document (`DocumentStatus`):

- queued: owed. A render task was sent, or will be sent again by the sweep
  (`document_requeue_due`, every minute) at `next_attempt_at`: the moment a
  render started or queued should have reported, or the end of the wait
  after a render that failed.
- ready: the file is at the document's one path (replaced in one step, never
  a second copy) and `sha256` is the checksum of its bytes.
- failed: MAX_ATTEMPTS renders were started and none succeeded. Staff read
  DOCUMENT_FAILED and, with a role that may, press DOCUMENT_RETRY
  (`document_retry`), which queues it afresh.

`attempts` counts renders started, counted under the row's lock before the
renderer runs: a render that raises and a render whose worker died both
count, so neither kind of failure can keep a document "being prepared" for
ever. A renderer's error is recorded by its type only, in the row and in the
log (`error`): its message or traceback could quote the patient's text.

`generation` counts the times a document was queued afresh (its source
corrected, staff's retry, the record anonymised). A render remembers the
generation it claimed, and its outcome is recorded only if the row is still
in it: a render that was under way when the document was queued afresh
read the old source (the patient's name, say), so its PDF is discarded and
never written, and the render of the new generation makes the file.

This module knows no feature app: each kind passes its model, its renderer
and the function that sends its render task.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, ClassVar, TypeVar

from django.db import models, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

logger = logging.getLogger(__name__)


class DocumentStatus(models.TextChoices):
    QUEUED = "queued", _("being prepared")
    READY = "ready", _("ready")
    FAILED = "failed", _("failed")


# What staff read about a document that could not be made, and the button
# that tries again: the same words for every kind of document.
DOCUMENT_FAILED = _("PDF could not be made")
DOCUMENT_RETRY = _("Try again")

# Renders started before a document is given up as failed.
MAX_ATTEMPTS = 5
# A render queued or started this long ago that has not reported was lost
# (broker down, worker killed): the sweep queues it again.
REQUEUE_AFTER = timedelta(minutes=2)
# The wait after a render that raised, by how many have been started: a
# passing fault (a full disk, a font cache being rebuilt) gets time to clear.
RETRY_DELAYS = (
    timedelta(minutes=1),
    timedelta(minutes=2),
    timedelta(minutes=4),
    timedelta(minutes=8),
)
# `error` of a document whose renders never reported back.
INTERRUPTED = "interrupted"
SWEEP_BATCH = 100

# The fields the pipeline writes: read back after a change, leaving what the
# row was read with (its patient, say) in place.
PIPELINE_FIELDS = (
    "status",
    "file",
    "sha256",
    "attempts",
    "error",
    "queued_at",
    "next_attempt_at",
    "generated_at",
    "generation",
)

Renderer = Callable[[Any], bytes]
Enqueue = Callable[[int], bool]


def sha256_hex(data: str | bytes) -> str:
    """The SHA-256 of `data` (text as UTF-8), in hex."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def next_attempt_default() -> datetime:
    """A new document's next attempt: REQUEUE_AFTER from now."""
    return timezone.now() + REQUEUE_AFTER


def document_file_name(instance: GeneratedDocument, filename: str) -> str:
    """`upload_to` of every document: the one path its kind gives it."""
    return instance.file_name()


class GeneratedDocument(models.Model):
    """A PDF made in the background for one record (abstract). A kind gives
    its own `file_name()` (one fixed path per row) and `document_label` (how
    the log names it, with the row's key: never patient data)."""

    status = models.CharField(
        max_length=10, choices=DocumentStatus.choices, default=DocumentStatus.QUEUED
    )
    file = models.FileField(upload_to=document_file_name, blank=True, editable=False)
    sha256 = models.CharField(max_length=64, blank=True, editable=False)
    attempts = models.PositiveIntegerField(default=0, editable=False)
    # The type of the last renderer error (or INTERRUPTED), never its message.
    error = models.CharField(max_length=200, blank=True, editable=False)
    queued_at = models.DateTimeField(default=timezone.now, editable=False)
    # While queued: when the sweep sends the render task again if nothing
    # reported by then. Empty once ready or failed.
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, default=next_attempt_default, editable=False
    )
    generated_at = models.DateTimeField(null=True, blank=True, editable=False)
    # One more each time the document is queued afresh (`document_retry`,
    # `document_requeue_afresh`): what a render claimed, so that one still
    # under way from before is not recorded (see the module's docstring).
    generation = models.PositiveIntegerField(default=0, editable=False)

    document_label: ClassVar[str] = "document"

    class Meta:
        abstract = True
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="%(app_label)s_%(class)s_due")
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="ready") | (~Q(file="") & ~Q(sha256="")),
                name="%(app_label)s_%(class)s_ready_has_file",
            ),
            # A queued document always has a moment the sweep looks at it again.
            models.CheckConstraint(
                condition=~Q(status="queued") | Q(next_attempt_at__isnull=False),
                name="%(app_label)s_%(class)s_queued_has_next",
            ),
        ]

    def file_name(self) -> str:
        raise NotImplementedError

    @property
    def is_retrying(self) -> bool:
        """Queued again after a render that failed (staff see it is being retried)."""
        return self.status == DocumentStatus.QUEUED and bool(self.error)


D = TypeVar("D", bound=GeneratedDocument)


def document_queue(*, row: D, enqueue: Enqueue) -> D:
    """Save a new document row as queued and send its render task once the
    caller's transaction commits. Call inside the transaction that makes what
    the document is of. The broker being down never fails the caller: the
    row waits for the sweep (`document_requeue_due`).

    `row`: an unsaved document with its own fields set. `enqueue(pk)` sends
    the kind's render task and answers whether it could."""
    now = timezone.now()
    row.status = DocumentStatus.QUEUED
    row.queued_at = now
    row.next_attempt_at = now + REQUEUE_AFTER
    row.attempts = 0
    row.error = ""
    row.generation = 0
    row.full_clean()
    row.save(force_insert=True)
    pk = row.pk
    transaction.on_commit(lambda: enqueue(pk))
    return row


def _claim(model: type[D], pk: int, related: tuple[str, ...]) -> D:
    """Count a render as started, under the row's lock. The row is locked
    alone, then read with what it points at: a join locked and re-checked
    after a wait drops a row that changed meanwhile (moved to another record
    by a merge), and locking the patient with it would hold up every booking
    of theirs. Raises `model.DoesNotExist`."""
    with transaction.atomic():
        model._default_manager.select_for_update().filter(pk=pk).values_list("pk", flat=True).get()
        row = model._default_manager.select_related(*related).get(pk=pk)
        row.attempts += 1
        changes: dict[str, Any] = {"attempts": row.attempts}
        if row.status == DocumentStatus.QUEUED:
            # This render has REQUEUE_AFTER to report before the sweep tries again.
            row.next_attempt_at = changes["next_attempt_at"] = timezone.now() + REQUEUE_AFTER
        model._default_manager.filter(pk=pk).update(**changes)
    return row


def document_render(
    *, model: type[D], pk: int, renderer: Renderer, related: tuple[str, ...] = ()
) -> D:
    """Render one document and record the outcome: ready with its checksum,
    or the failure (`document_render_failed`). Safe to run twice, and twice at
    once: the file is replaced in one step at its one path.

    `model`: the kind's model; `pk`: the row's key; `renderer(row)` returns
    the PDF's bytes (the row is read with `related`). Returns the row as
    recorded. Raises `model.DoesNotExist` for a row that is gone; never the
    renderer's error."""
    row = _claim(model, pk, related)
    try:
        pdf = renderer(row)
    except Exception as exc:
        return document_render_failed(row=row, exc=exc)
    return document_render_succeeded(row=row, pdf=pdf)


def _stale(row: GeneratedDocument, current: int, outcome: str) -> bool:
    """Whether the document was queued afresh since `row`'s render claimed
    it (`current` is the generation under the lock); logged if so."""
    if current == row.generation:
        return False
    logger.info(
        "%s %s: a render of generation %s %s after the document was queued afresh "
        "(generation %s), so its outcome is discarded",
        type(row).document_label,
        row.pk,
        row.generation,
        outcome,
        current,
    )
    return True


def document_render_succeeded(*, row: D, pdf: bytes) -> D:
    """Write the PDF at the row's one path (only if its bytes changed) and mark
    it ready with their SHA-256. Under the row's lock: two renders of one
    document never interleave their writes. A render of a generation the
    document has left (queued afresh since it was claimed) writes nothing and
    changes nothing: its PDF was made from the old source."""
    from clinic.pdf import store_replacing

    model = type(row)
    digest = sha256_hex(pdf)
    name = row.file_name()
    storage = row.file.storage
    with transaction.atomic():
        locked = model._default_manager.select_for_update().get(pk=row.pk)
        if _stale(row, locked.generation, "finished"):
            row.refresh_from_db(fields=PIPELINE_FIELDS)
            return row
        if locked.sha256 != digest or locked.file.name != name or not storage.exists(name):
            store_replacing(storage, name, pdf)
        model._default_manager.filter(pk=row.pk).update(
            status=DocumentStatus.READY,
            file=name,
            sha256=digest,
            error="",
            next_attempt_at=None,
            generated_at=timezone.now(),
        )
    row.refresh_from_db(fields=PIPELINE_FIELDS)
    return row


def document_render_failed(*, row: D, exc: BaseException) -> D:
    """Record a render that raised: queued again after the next of
    RETRY_DELAYS, or failed once MAX_ATTEMPTS renders were started. Recorded
    only for the last render claimed: a document no longer queued (made
    ready by another render meanwhile), queued afresh since, or claimed
    again by a later render (which reports for itself) is left as it is.
    Logged with the document's key and the error's type only,
    never its message or traceback, which could quote the patient."""
    model = type(row)
    kind = type(exc).__name__[:200]
    now = timezone.now()
    if row.attempts >= MAX_ATTEMPTS:
        changes: dict[str, Any] = {"status": DocumentStatus.FAILED, "next_attempt_at": None}
    else:
        wait = RETRY_DELAYS[min(row.attempts, len(RETRY_DELAYS)) - 1]
        changes = {"next_attempt_at": now + wait}
    recorded = model._default_manager.filter(
        pk=row.pk, status=DocumentStatus.QUEUED, generation=row.generation, attempts=row.attempts
    ).update(error=kind, **changes)
    if not recorded:
        current = model._default_manager.filter(pk=row.pk).values_list("generation", flat=True)
        _stale(row, next(iter(current), row.generation + 1), f"failed ({kind})")
    logger.warning(
        "%s %s could not be made (%s), attempt %s of %s",
        model.document_label,
        row.pk,
        kind,
        row.attempts,
        MAX_ATTEMPTS,
    )
    row.refresh_from_db(fields=PIPELINE_FIELDS)
    return row


def document_requeue_due(*, model: type[D], enqueue: Enqueue, limit: int = SWEEP_BATCH) -> int:
    """The sweep (every minute): send again the render task of each queued
    document whose `next_attempt_at` has come, claiming it first (the next
    attempt moves REQUEUE_AFTER on), so two sweeps at once send it once. A
    document that has had MAX_ATTEMPTS renders started without a result is
    given up as failed (INTERRUPTED). Returns how many tasks were sent."""
    now = timezone.now()
    due = model._default_manager.filter(status=DocumentStatus.QUEUED, next_attempt_at__lte=now)
    given_up = list(due.filter(attempts__gte=MAX_ATTEMPTS).values_list("pk", flat=True)[:limit])
    for pk in given_up:
        done = model._default_manager.filter(
            pk=pk, status=DocumentStatus.QUEUED, attempts__gte=MAX_ATTEMPTS
        ).update(status=DocumentStatus.FAILED, next_attempt_at=None, error=INTERRUPTED)
        if done:
            logger.warning(
                "%s %s was given up after %s attempts", model.document_label, pk, MAX_ATTEMPTS
            )
    sent = 0
    for pk in due.filter(attempts__lt=MAX_ATTEMPTS).values_list("pk", flat=True)[:limit]:
        claimed = model._default_manager.filter(
            pk=pk, status=DocumentStatus.QUEUED, next_attempt_at__lte=now
        ).update(next_attempt_at=timezone.now() + REQUEUE_AFTER)
        if claimed:
            sent += enqueue(pk)
    return sent


def document_retry(*, model: type[D], pk: int, enqueue: Enqueue) -> D:
    """Queue a document afresh (staff's DOCUMENT_RETRY, or a remake after its
    source was corrected): attempts start again from zero, and the render
    task is sent after commit. A file already made stays downloadable until
    the new one replaces it. Returns the row as queued; raises
    `model.DoesNotExist`."""
    now = timezone.now()
    with transaction.atomic():
        row = model._default_manager.select_for_update().get(pk=pk)
        model._default_manager.filter(pk=pk).update(
            status=DocumentStatus.QUEUED,
            queued_at=now,
            next_attempt_at=now + REQUEUE_AFTER,
            attempts=0,
            error="",
            generation=F("generation") + 1,
        )
        row.refresh_from_db(fields=PIPELINE_FIELDS)
        transaction.on_commit(lambda: enqueue(pk))
    return row


def document_requeue_afresh(*, model: type[D], pk: int) -> None:
    """Queue a document afresh with nothing downloadable meanwhile (its file
    names what must go, as when the record is anonymised): the row is
    emptied and a new generation begins, so a render under way from before
    is discarded. The caller deletes the old file and sends the render task
    after its transaction commits."""
    now = timezone.now()
    model._default_manager.filter(pk=pk).update(
        status=DocumentStatus.QUEUED,
        file="",
        sha256="",
        attempts=0,
        error="",
        queued_at=now,
        next_attempt_at=now + REQUEUE_AFTER,
        generated_at=None,
        generation=F("generation") + 1,
    )

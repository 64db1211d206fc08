"""Two people, one record: stale edits are refused, repeated submissions saved once.

One mechanism for every form of the application (design.md: "Every editable
record carries a version: a stale edit is refused with what changed, never
applied over someone else's").

Stale edits. Every editable model has an integer `version` (1 when created).
A form that edits a record carries, in a hidden field, the version it was
opened with; the service locks the row (`select_for_update`), calls
`version_check` with that number and raises `StaleEditError` when the row has
moved on. Each save that changes the row calls `version_bump` and writes its
audit event with the returned marker ("version=4") among the changed fields,
so the refusal can say which fields changed, to what, by whom and when: the
field names come from the audit trail, the values from the row as it is now
(the audit trail never holds values). The refusal carries the record as it
is now and its version, so the form shown again can be saved again, on
purpose, over it (clinic.forms.VersionedFormMixin). Texts are compared with
`differs`: line endings, trailing spaces and decomposed letters are no change.

Repeated submissions. A create form carries a one-time UUID (`submission_token`)
that the service stores in a unique column of the row it creates, or lists as
a marker ("submission=<token>") on the audit event it writes with the row. The
service first calls `submission_check`, which takes a transaction-level
advisory lock on the token and raises `AlreadySubmittedError` (with what was
made) when the token was already used: the second of two identical posts waits
for the first to commit, then answers with what the first made.

Services raise these two refusals and never know about HTTP; views answer a
stale edit with 409 (the form shown again with what the user typed and a
notice), a version that is missing or one the record never had with 400, and
an already saved submission with a redirect to what was saved.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

import phonenumbers
from django.conf import settings
from django.core.exceptions import FieldDoesNotExist
from django.db import connection, models
from django.utils import timezone
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from clinic import dates
from clinic.models import AuditAction, AuditEvent
from clinic.names import nfc
from clinic.refusals import RefusalKind, RefusedError

M = TypeVar("M", bound=models.Model)

VERSION_MARK = "version="
# Audit actions that only record a reading: never a change of the row.
_NOT_CHANGES = (
    AuditAction.VIEW,
    AuditAction.DOWNLOAD,
    AuditAction.DENIED,
)
# How far back the audit trail is read to explain a refusal (events of one record).
_EVENTS_READ = 200


@dataclass(frozen=True)
class StaleChange:
    """One field someone else changed: its name, its label as the form shows
    it, its value as now saved (as text), and who changed it last and when."""

    field: str
    label: str
    value: str
    by: str
    at: datetime | None


@dataclass(frozen=True)
class OtherEdit:
    """One save made by someone else since the form was opened."""

    by: str
    at: datetime | None
    labels: list[str] = field(default_factory=list)


class StaleEditError(RefusedError):
    """An edit refused because the record changed since the form was opened,
    or because the form's version is not one the record ever had.

    `code` is "stale_edit" (someone saved first: answer 409 and show
    `changes` and `edits`) or "bad_version" (a forged or mangled version:
    answer 400). `message` is a plain sentence; `field` the form field it
    concerns ("version"); `changes` the fields changed since, with their
    current values; `edits` the saves made since, newest first. `current` is
    the record as it is now (None when the refusal is not about one row) and
    `version` its version now: the form shown again carries it, so that a
    second, deliberate save goes through (None: the form cannot be sent again
    as it is).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "stale_edit",
        changes: Sequence[StaleChange] = (),
        edits: Sequence[OtherEdit] = (),
        current: models.Model | None = None,
        version: Any = None,
    ) -> None:
        super().__init__(
            message,
            field="version",
            code=code,
            kind=RefusalKind.CONFLICT if code == "stale_edit" else RefusalKind.INVALID,
        )
        self.changes = list(changes)
        self.edits = list(edits)
        self.current = current
        self.version = version

    @property
    def is_stale(self) -> bool:
        return self.code == "stale_edit"


def bad_version_error() -> StaleEditError:
    """The refusal for a version the record never had (forged, or another record's)."""
    return StaleEditError(
        _(
            "This form does not match the record it edits. Reload the page and make "
            "your change again."
        ),
        code="bad_version",
    )


class AlreadySubmittedError(RefusedError):
    """This very form was already sent and saved: `obj` is the row it created.
    A double-clicked submit, or a request resent by the browser."""

    code = "already_submitted"
    kind = RefusalKind.CONFLICT
    MESSAGE = gettext_lazy("This was already saved: the form was sent twice, and saved once.")

    def __init__(self, obj: models.Model) -> None:
        super().__init__(self.MESSAGE)
        self.obj = obj


# --- What counts as a change -----------------------------------------------------------


def text_block(value: str) -> str:
    """A multi-line text as it is stored and compared: line endings as "\n"
    (browsers send "\r\n"), no spaces or tabs at the end of a line, no blank
    lines at the start or the end. Every multi-line form field passes what is
    typed through this (`clinic.forms.TextBlocksMixin`)."""
    lines = value.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip("\n")


def differs(old: Any, new: Any) -> bool:
    """Whether `new` is a change from a field's value `old`: texts are compared
    as `text_block`s in Unicode NFC, so a text sent back with other line
    endings, trailing spaces or decomposed letters is not a change (nor named
    as one in the audit trail)."""
    if isinstance(old, str) and isinstance(new, str):
        return nfc(text_block(old)) != nfc(text_block(new))
    return bool(old != new)


# --- Versions --------------------------------------------------------------------------


def version_mark(version: int) -> str:
    """The audit marker of the save that made `version` ("version=4")."""
    return f"{VERSION_MARK}{version}"


def version_bump(obj: models.Model) -> str:
    """Advance the version of a locked row about to be saved, and return the
    marker to list among the audit event's changed fields. Call it once per
    save that changes the row, and audit that save with the marker."""
    obj.version += 1  # type: ignore[attr-defined]
    return version_mark(obj.version)  # type: ignore[attr-defined]


def field_text(obj: models.Model, name: str) -> tuple[str, str]:
    """The label and the current value of field `name` of `obj`, as a person
    reads them: choices by their label, yes/no, dates and times in the
    clinic's zone (dd/mm/yyyy HH:MM), phone numbers in national form (in
    international form when from another country), many-to-many as a list.
    ("name", "") for a name that is not a field."""
    try:
        model_field = obj._meta.get_field(name)
    except FieldDoesNotExist:
        return name, ""
    if not isinstance(model_field, models.Field):  # a reverse relation: not shown
        return name, ""
    label = capfirst(str(getattr(model_field, "verbose_name", name)))
    if model_field.many_to_many:
        related = getattr(obj, name).all()
        return label, ", ".join(sorted(str(item) for item in related))
    value = getattr(obj, name)
    choices = dict(model_field.flatchoices) if getattr(model_field, "choices", None) else {}
    base = getattr(model_field, "base_field", None)
    if isinstance(value, list | tuple) and base is not None and base.choices:
        names = dict(base.flatchoices)
        return label, ", ".join(str(names.get(item, item)) for item in value)
    return label, value_text(value, choices)


def value_text(value: Any, choices: dict[Any, Any] | None = None) -> str:
    """A value as a person reads it: `choices` (value -> label) by their
    label, yes/no, dates dd/mm/yyyy, date-times in the clinic's zone
    (dd/mm/yyyy HH:MM), phone numbers in national form (international when
    from another country), lists joined by commas; "" for nothing."""
    if isinstance(value, list | tuple):
        return ", ".join(value_text(item, choices) for item in value)
    if value in (None, ""):
        return ""
    if choices and isinstance(value, Hashable) and value in choices:
        return str(choices[value])
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    if isinstance(value, datetime):
        return dates.input_datetime(value)
    if isinstance(value, date):
        return dates.input_date(value)
    if hasattr(value, "as_international"):
        # As reception types them: national form for the clinic's own country.
        region = getattr(settings, "PHONENUMBER_DEFAULT_REGION", None)
        if region and value.country_code == phonenumbers.country_code_for_region(region):
            return str(value.as_national)
        return str(value.as_international)
    return str(value)


def _who(event: AuditEvent) -> str:
    actor = event.actor
    if actor is not None:
        return str(actor.get_full_name() or actor.get_username())
    return event.actor_label or _("someone")


def _moment(at: datetime | None) -> str:
    if at is None:
        return ""
    return _("%(time)s on %(day)s") % {"time": dates.clock(at), "day": dates.day(at)}


def audit_last_edit(*, object_type: str, object_id: str) -> OtherEdit | None:
    """The newest change recorded for an object that has no version of its own
    (a practitioner's week of working hours): who and when, or None."""
    event = (
        AuditEvent.objects.filter(object_type=object_type, object_id=object_id)
        .exclude(action__in=_NOT_CHANGES)
        .select_related("actor")
        .order_by("-at", "-id")
        .first()
    )
    return OtherEdit(by=_who(event), at=event.at) if event is not None else None


def stale_message(edits: Sequence[OtherEdit], *, what: str) -> str:
    """The sentence of a stale-edit refusal: who saved `what` last and when.
    What to do next is the notice's to say (templates/includes/stale_edit.html):
    one instruction, never two."""
    if not edits:
        return _(
            "Someone else saved this %(what)s after you opened it. Nothing of yours is saved yet."
        ) % {"what": what}
    newest = edits[0]
    return _(
        "%(who)s saved this %(what)s at %(when)s, after you opened it. Nothing of yours "
        "is saved yet."
    ) % {"who": newest.by, "what": what, "when": _moment(newest.at)}


def stale_edit_error(
    obj: models.Model,
    *,
    since: int,
    describe: Callable[[str], tuple[str, str]] | None = None,
    object_id: str = "",
) -> StaleEditError:
    """The refusal for an edit of `obj` opened at version `since`: the fields
    changed by every save after it, read from the audit trail (their names)
    and from `obj` (their values now). `describe(name)` gives a field's label
    and value where `field_text` cannot (a cocktail, say); `object_id` is the
    id the audit events carry when it is not the object's uuid or key."""
    object_id = object_id or str(getattr(obj, "uuid", None) or obj.pk)
    events = (
        AuditEvent.objects.filter(object_type=obj._meta.label_lower, object_id=object_id)
        .exclude(action__in=_NOT_CHANGES)
        .select_related("actor")
        .order_by("-at", "-id")[:_EVENTS_READ]
    )
    describe = describe or (lambda name: field_text(obj, name))
    edits: list[OtherEdit] = []
    latest: dict[str, tuple[str, datetime | None]] = {}
    labels: dict[str, str] = {}
    for event in events:
        marks = [f for f in event.changed_fields if str(f).startswith(VERSION_MARK)]
        try:
            made = max(int(str(m)[len(VERSION_MARK) :]) for m in marks) if marks else 0
        except ValueError:
            made = 0
        if made <= since:
            continue
        names = [str(f) for f in event.changed_fields if _is_field_name(f)]
        for name in names:
            if name not in labels:
                labels[name] = describe(name)[0]
            latest.setdefault(name, (_who(event), event.at))
        edits.append(OtherEdit(by=_who(event), at=event.at, labels=[labels[n] for n in names]))
    changes = []
    # In the order the form shows them (the model's), not the trail's (alphabetical).
    order = {f.name: i for i, f in enumerate(obj._meta.get_fields())}
    for name, (by, at) in sorted(latest.items(), key=lambda item: order.get(item[0], len(order))):
        label, value = describe(name)
        changes.append(StaleChange(field=name, label=label, value=value, by=by, at=at))
    return StaleEditError(
        stale_message(edits, what=str(obj._meta.verbose_name)),
        changes=changes,
        edits=edits,
        current=obj,
        version=getattr(obj, "version", None),
    )


def _is_field_name(value: object) -> bool:
    # Markers ("version=4", "merged_from=...", "moved:bookings=2") are not fields.
    return isinstance(value, str) and value.isidentifier()


def version_check(
    current: models.Model,
    *,
    expected: int | None,
    describe: Callable[[str], tuple[str, str]] | None = None,
) -> None:
    """Refuse an edit of `current` (a row locked by the caller) unless it is
    still at version `expected`, the version the form was opened with.

    `expected` None means the change does not come from a form (a merge, the
    demo data): nothing is checked. Raises `StaleEditError` with code
    "stale_edit" when the row has moved on (what changed, by whom and when:
    `stale_edit_error`), and code "bad_version" when `expected` is below 1 or
    beyond the row's version (a forged form). `describe`: see
    `stale_edit_error`."""
    if expected is None:
        return
    actual: int = current.version  # type: ignore[attr-defined]
    if expected == actual:
        return
    if expected < 1 or expected > actual:
        raise bad_version_error()
    raise stale_edit_error(current, since=expected, describe=describe)


def rows_version(groups: Iterable[Iterable[object]]) -> str:
    """A version for a set of rows that has no row of its own (a practitioner's
    working hours): one short hash per group, joined by dots, so a mismatch
    also tells which group changed. Each group is a sequence of values."""
    parts = []
    for group in groups:
        text = "\x1f".join(repr(value) for value in group)
        parts.append(hashlib.sha256(text.encode()).hexdigest()[:10])
    return ".".join(parts)


# --- One-time submission tokens ----------------------------------------------------------


def _token_lock_key(model: type[models.Model], token: uuid.UUID) -> int:
    # A signed 64-bit key for pg_advisory_xact_lock, namespaced to this use.
    text = f"clinic.submission\x1f{model._meta.label_lower}\x1f{token}"
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


SUBMISSION_MARK = "submission="
# How long after a form was saved its token is still looked for in the audit
# trail: far longer than a browser keeps a page to send again.
SUBMISSION_WINDOW = timedelta(days=7)


def submission_marks(token: uuid.UUID | None) -> list[str]:
    """The marker ("submission=<token>") that a service lists among the
    changed fields of the audit event of what a form created, for a row with
    no `submission_token` column of its own; [] without a token."""
    return [f"{SUBMISSION_MARK}{token}"] if token is not None else []


def _has_token_column(model: type[models.Model]) -> bool:
    try:
        model._meta.get_field("submission_token")
    except FieldDoesNotExist:
        return False
    return True


def submission_check(
    model: type[M],
    token: uuid.UUID | None,
    *,
    by: Any = None,
    find: Callable[[AuditEvent], models.Model | None] | None = None,
) -> None:
    """Claim a create form's one-time `token` for this transaction: take a
    PostgreSQL transaction-level advisory lock on it (a second request with the
    same token waits here until the first commits or rolls back), then raise
    `AlreadySubmittedError` with what the first request made. Call it first in
    the service's transaction, before any other check. A None token (a client
    that sent none) checks nothing.

    A row of `model` with a unique `submission_token` column stores the token
    there (unless `find` is given: the column holds another form's token).
    Any other change is found by the marker `submission_marks(token)` on the
    audit event of `model` it wrote (in the same transaction), among the
    events of `by` (the user who sent the form) of the last
    SUBMISSION_WINDOW; `find(event)` returns what the view should lead to
    (default: the row of `model` the event names, by uuid or key)."""
    if token is None:
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_token_lock_key(model, token)])
    existing = submission_find(model, token, by=by, find=find)
    if existing is not None:
        raise AlreadySubmittedError(existing)


def submission_find(
    model: type[M],
    token: uuid.UUID | None,
    *,
    by: Any = None,
    find: Callable[[AuditEvent], models.Model | None] | None = None,
) -> models.Model | None:
    """What a create form sent with `token` already made (see
    `submission_check`, whose arguments these are), or None. Takes no lock:
    a view asks it before validating a form sent again, whose first sending
    would now fail a check of its own (a name already used)."""
    if token is None:
        return None
    if find is None and _has_token_column(model):
        return model._default_manager.filter(submission_token=token).first()
    return _submitted_by_audit(model, token, by=by, find=find)


def _submitted_by_audit(
    model: type[models.Model],
    token: uuid.UUID,
    *,
    by: Any,
    find: Callable[[AuditEvent], models.Model | None] | None,
) -> models.Model | None:
    events = AuditEvent.objects.filter(
        object_type=model._meta.label_lower,
        at__gte=timezone.now() - SUBMISSION_WINDOW,
        changed_fields__contains=submission_marks(token),
    )
    if by is not None and getattr(by, "pk", None) is not None:
        events = events.filter(actor_id=by.pk)
    event = events.order_by("-at", "-id").first()
    if event is None:
        return None
    if find is not None:
        return find(event)
    manager = model._default_manager
    try:
        model._meta.get_field("uuid")
    except FieldDoesNotExist:
        return manager.filter(pk=event.object_id).first()
    try:
        return manager.filter(uuid=uuid.UUID(event.object_id)).first()
    except ValueError:
        return None

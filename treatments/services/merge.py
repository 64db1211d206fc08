"""Merging a second record of the same person (the duplicate) into the record
that stays (the survivor).

Clinics arriving from paper or from another system hold two records of one
person, and a second record hides her allergy readings, consent and history
from the practitioner and from the safety gates. After the merge every row
that pointed at the duplicate points at the survivor; the duplicate keeps its
row, marked `merged_into`, hidden from search and lists, and its pages
redirect (patients.middleware).

Signed records (medical histories, signed consents, read allergy tests) are
never changed by anything else: their triggers let the merge move their
patient link, and only that, while `clinic.patient_merge` is set in this
transaction (patients migration 0009, `patients_merge_relink`). Rows without
a patient of their own (session records and all that hangs from them,
withdrawals, consent PDFs, portal sign-in links) follow their parent,
untouched.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import F, ForeignObjectRel
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from clinic.audit import audit_log
from clinic.concurrency import version_bump
from clinic.models import AuditAction, User
from patients.models import Patient
from patients.services import patient_update
from treatments.models import Booking, PatientAllergy
from treatments.selectors.merge import (
    RECORD_KINDS,
    MergeProblem,
    merge_holdings,
    merge_problems,
)

# The transaction-local setting the triggers read (patients migration 0009).
MERGE_SETTING = "clinic.patient_merge"
MERGE_FIELDS = ("merged_into", "merged_at", "merged_by")
NOT_MERGE_FIELDS = [f.name for f in Patient._meta.fields if f.name not in MERGE_FIELDS]
TAKEN_WORDS = {"email": gettext_lazy("email"), "phone": gettext_lazy("mobile number")}
# PostgreSQL's code for a deadlock it broke by cancelling this transaction.
DEADLOCK_DETECTED = "40P01"

# The relations to Patient the merge moves, as (model label, field); every
# relation to Patient must be here or the merge refuses to run at all.
MOVED_RELATIONS = frozenset(
    (kind.model._meta.label, kind.path) for kind in RECORD_KINDS if kind.direct
)


class PatientMergeRefusedError(Exception):
    """A merge refused: a plain message for the practitioner (every problem's
    sentence), the form field it concerns (None: the whole merge), a code
    (`same_record`, `already_merged`, `survivor_merged`, `bookings_overlap`,
    `two_portal_accounts`, `contact_invalid`, `busy`) and the problems themselves."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        field: str | None = None,
        problems: list[MergeProblem] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field
        self.problems = problems or [MergeProblem(code, message)]

    @classmethod
    def from_problems(cls, problems: list[MergeProblem]) -> PatientMergeRefusedError:
        return cls(" ".join(p.sentence for p in problems), code=problems[0].code, problems=problems)


@dataclass(frozen=True)
class MergeResult:
    """What a merge did: `moved` and `kept` count rows by RECORD_KINDS key
    (kept: allergies the survivor already lists, left on the merged record);
    `taken` names the contact details taken from the duplicate."""

    merge_id: uuid.UUID
    duplicate: Patient
    survivor: Patient
    moved: dict[str, int]
    kept: dict[str, int]
    taken: list[str]


def relations_not_handled() -> list[str]:
    """Relations to Patient the merge does not move, as "app.Model.field":
    a model added with a foreign key to Patient must be added to
    RECORD_KINDS, or the merge would leave its rows on the merged record."""
    found = {
        (rel.field.model._meta.label, rel.field.name)
        for rel in Patient._meta.get_fields(include_hidden=True)
        if isinstance(rel, ForeignObjectRel)
    }
    return sorted(f"{label}.{name}" for label, name in found - MOVED_RELATIONS)


def _set_merge(value: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config(%s, %s, true)", [MERGE_SETTING, value])


def _lock_pair(duplicate: Patient, survivor: Patient) -> tuple[Patient, Patient]:
    """Lock both rows, lowest id first (two merges of overlapping pairs
    queue instead of deadlocking), and read them again as they now are.

    FOR NO KEY UPDATE: a booking or a test written for either patient at this
    moment still only needs FOR KEY SHARE on the row, so it neither waits for
    the merge nor makes it wait while it holds its own locks. Then the
    bookings of both, in id order, so that a move or a completion of one of
    them finishes before the merge starts, or starts after it."""
    rows = {
        p.pk: p
        for p in Patient.objects.select_for_update(no_key=True, of=("self",))
        .select_related("merged_into")
        .filter(pk__in=[duplicate.pk, survivor.pk])
        .order_by("pk")
    }
    list(
        Booking.objects.select_for_update(of=("self",))
        .filter(patient_id__in=list(rows))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    return rows[duplicate.pk], rows[survivor.pk]


def _relink(
    duplicate: Patient, survivor: Patient, *, merge_id: uuid.UUID, now: object
) -> tuple[dict[str, int], int]:
    """Point every row of the duplicate at the survivor, with the triggers'
    merge setting on for exactly that long; (rows moved by kind, allergies kept)."""
    moved: dict[str, int] = {}
    kept = 0
    _set_merge(str(merge_id))
    # Allergy tests before allergies: a reading in progress holds its test,
    # and the allergy it finds is written before the tests can be moved.
    for kind in RECORD_KINDS:
        if not kind.direct:
            continue
        rows = kind.model._default_manager.filter(**{kind.path: duplicate})
        if kind.model is PatientAllergy:
            # A record lists each ingredient once and an allergy is never deleted.
            listed = PatientAllergy.objects.filter(patient=survivor).values("ingredient")
            kept = rows.filter(ingredient__in=listed).count()
            rows = rows.exclude(ingredient__in=listed)
        changes: dict[str, Any] = {kind.path: survivor}
        # Plain columns only: a signed consent's `version` is the form version it signed.
        fields = {f.name for f in kind.model._meta.concrete_fields if not f.is_relation}
        if "updated_at" in fields:
            changes["updated_at"] = now
        if "version" in fields:
            # A form opened on the row before the merge is now stale (clinic.concurrency).
            changes["version"] = F("version") + 1
        moved[kind.key] = rows.update(**changes)
    _set_merge("")
    return moved, kept


@transaction.atomic
def _merge(
    *, duplicate: Patient, survivor: Patient, merged_by: User, take_email: bool, take_phone: bool
) -> MergeResult:
    unhandled = relations_not_handled()
    if unhandled:
        raise ImproperlyConfigured(
            "The patient merge does not move rows of: "
            + ", ".join(unhandled)
            + ". Add them to treatments.selectors.merge.RECORD_KINDS."
        )
    if duplicate.pk == survivor.pk:
        raise PatientMergeRefusedError.from_problems(
            merge_problems(duplicate=duplicate, survivor=survivor)
        )
    duplicate, survivor = _lock_pair(duplicate, survivor)
    problems = merge_problems(duplicate=duplicate, survivor=survivor)
    if problems:
        raise PatientMergeRefusedError.from_problems(problems)

    counts = merge_holdings(patients=[duplicate])[duplicate.pk]
    merge_id = uuid.uuid4()
    now = timezone.now()
    version_before = duplicate.version
    try:
        with transaction.atomic():
            # Marked first: the triggers let rows move only from a merged record.
            duplicate.merged_into = survivor
            duplicate.merged_at = now
            duplicate.merged_by = merged_by
            mark = version_bump(duplicate)
            # Only the merge's own fields: details typed long ago are not judged here.
            duplicate.full_clean(exclude=NOT_MERGE_FIELDS, validate_unique=False)
            duplicate.save(update_fields=[*MERGE_FIELDS, "version", "updated_at"])
            moved, kept = _relink(duplicate, survivor, merge_id=merge_id, now=now)
    except IntegrityError as error:
        # A booking made for the survivor since the check: the exclusion
        # constraint refused to hold both. Say which, as the check would have.
        duplicate.merged_into = duplicate.merged_at = duplicate.merged_by = None
        duplicate.version = version_before
        problems = merge_problems(duplicate=duplicate, survivor=survivor)
        if not problems:
            raise
        raise PatientMergeRefusedError.from_problems(problems) from error

    # What hangs from the moved rows came along with them.
    for kind in RECORD_KINDS:
        if not kind.direct:
            moved[kind.key] = counts[kind.key]

    taken: dict[str, Any] = {}
    if take_email and duplicate.email and duplicate.email != survivor.email:
        taken["email"] = duplicate.email
    if take_phone and duplicate.phone and duplicate.phone != survivor.phone:
        taken["phone"] = duplicate.phone
    if taken:
        try:
            survivor = patient_update(patient=survivor, updated_by=merged_by, **taken)
        except ValidationError as error:
            # A detail typed long ago on the duplicate that the register no
            # longer accepts (a mistyped number, say): the whole merge waits.
            raise PatientMergeRefusedError(
                _(
                    "The %(what)s of the record merged away cannot be taken: %(why)s "
                    "Untick it, or correct it on that record first."
                )
                % {
                    "what": " / ".join(str(TAKEN_WORDS[name]) for name in taken),
                    "why": " ".join(error.messages),
                },
                code="contact_invalid",
                field="take_" + next(iter(taken)),
            ) from error

    audit_log(
        actor=merged_by,
        action=AuditAction.UPDATE,
        obj=survivor,
        patient_ref=survivor.uuid,
        changed_fields=[
            f"merged_from={duplicate.uuid}",
            f"merge={merge_id}",
            *(f"moved:{key}={n}" for key, n in moved.items() if n),
            *([f"kept_on_merged:allergies={kept}"] if kept else []),
            *(f"taken:{name}" for name in taken),
        ],
    )
    audit_log(
        actor=merged_by,
        action=AuditAction.UPDATE,
        obj=duplicate,
        patient_ref=duplicate.uuid,
        changed_fields=[
            "merged_into",
            "merged_at",
            "merged_by",
            mark,
            f"merged_into={survivor.uuid}",
            f"merge={merge_id}",
        ],
    )
    return MergeResult(
        merge_id=merge_id,
        duplicate=duplicate,
        survivor=survivor,
        moved=moved,
        kept={"allergies": kept} if kept else {},
        taken=sorted(taken),
    )


def patient_merge(
    *,
    duplicate: Patient,
    survivor: Patient,
    merged_by: User,
    take_email: bool = False,
    take_phone: bool = False,
) -> MergeResult:
    """Merge `duplicate` into `survivor`: every row of the duplicate's record
    moves to the survivor's, in one transaction, audited.

    `merged_by` is the practitioner merging. The survivor's details stay;
    `take_email` / `take_phone` replace its email / mobile with the
    duplicate's (when the duplicate has one and it differs), through
    `patients.services.patient_update`.

    Both patient rows are locked first, lowest id first, then their bookings;
    the problems of `treatments.selectors.merge.merge_problems` are checked
    again under the locks. Signed records move through the database's one
    audited path (the `clinic.patient_merge` setting, patients migration
    0009), their contents untouched. A duplicate's allergy to an ingredient
    the survivor already lists stays on the merged record (a record lists an
    ingredient once; an allergy is never deleted). The duplicate is marked
    merged into the survivor (at, by). Two audit events: on the survivor,
    naming the duplicate, the merge and the rows moved per kind; on the
    duplicate, naming the survivor.

    Raises `PatientMergeRefusedError` (nothing changed) for the same record
    twice, a record already merged (either one), overlapping bookings (the
    database's exclusion constraint on a patient's bookings), two portal
    accounts, a contact detail to take that the register refuses (code
    `contact_invalid`), or a deadlock with another change of these records
    (code `busy`: try again); `ImproperlyConfigured` when a relation to
    Patient is not in RECORD_KINDS.
    """
    try:
        return _merge(
            duplicate=duplicate,
            survivor=survivor,
            merged_by=merged_by,
            take_email=take_email,
            take_phone=take_phone,
        )
    except OperationalError as error:
        if getattr(error.__cause__, "sqlstate", None) != DEADLOCK_DETECTED:
            raise
        raise PatientMergeRefusedError(
            _("These records were being changed at the same moment. Try the merge again."),
            code="busy",
        ) from error

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

Rows written for the duplicate while the merge runs are not left behind: the
merge holds the duplicate's row FOR UPDATE, and every row written for a
patient reads its patient FOR KEY SHARE first (a trigger on every link to
Patient, consent migration 0006; `patients.locking` in the services), so it
waits for the merge and then goes to the survivor.
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

from clinic import dates
from clinic.audit import audit_log
from clinic.concurrency import StaleChange, StaleEditError, version_bump, version_check
from clinic.models import AuditAction, User
from clinic.refusals import RefusalKind, RefusedError
from patients.contact_changes import contact_changes_record, email_set_by_non_clinical_role
from patients.models import ContactChange, ContactField, Patient
from patients.services import patient_update
from treatments.models import (
    Booking,
    ErasureRequest,
    ErasureStatus,
    PatientAllergy,
    PortalAccount,
)
from treatments.selectors.merge import (
    RECORD_KINDS,
    MergeProblem,
    merge_holdings,
    merge_problems,
)
from treatments.services.data_rights import erasure_apply_at_once
from treatments.services.portal import portal_account_close

# The transaction-local setting the triggers read (patients migration 0009).
MERGE_SETTING = "clinic.patient_merge"
MERGE_FIELDS = ("merged_into", "merged_at", "merged_by")
NOT_MERGE_FIELDS = [f.name for f in Patient._meta.fields if f.name not in MERGE_FIELDS]
TAKEN_WORDS = {"email": gettext_lazy("email"), "phone": gettext_lazy("mobile number")}
# Problems that say a record is already merged: they come before a stale version.
MERGED_PROBLEMS = frozenset({"already_merged", "survivor_merged"})
# PostgreSQL's code for a deadlock it broke by cancelling this transaction.
DEADLOCK_DETECTED = "40P01"

# The relations to Patient the merge moves, as (model label, field); every
# relation to Patient must be here or the merge refuses to run at all.
MOVED_RELATIONS = frozenset(
    (kind.model._meta.label, kind.path) for kind in RECORD_KINDS if kind.direct
)


# Refusals about what was asked rather than the records' state.
BAD_INPUT = frozenset({"same_record", "contact_invalid"})


class PatientMergeRefusedError(RefusedError):
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
        super().__init__(
            message,
            code=code,
            field=field,
            kind=RefusalKind.INVALID if code in BAD_INPUT else RefusalKind.CONFLICT,
        )
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

    The duplicate FOR UPDATE: a row written for it at this moment reads it
    FOR KEY SHARE first (patients.locking, and the trigger of consent
    migration 0006), so it waits for the merge and then goes to the survivor,
    instead of being written to the duplicate after its rows have moved. The
    survivor FOR NO KEY UPDATE: its bookings and tests go on meanwhile. Each
    row alone, then read with what it points at (a join locked and re-checked
    drops a row that changed meanwhile). Then the bookings of both, in id
    order, so that a move or a completion of one of them finishes before the
    merge starts, or starts after it."""
    for pk in sorted({duplicate.pk, survivor.pk}):
        query = Patient.objects.filter(pk=pk)
        if pk == duplicate.pk:
            list(query.select_for_update().values_list("pk", flat=True))
        else:
            list(query.select_for_update(no_key=True).values_list("pk", flat=True))
    rows = {
        p.pk: p
        for p in Patient.objects.select_related("merged_into").filter(
            pk__in=[duplicate.pk, survivor.pk]
        )
    }
    list(
        Booking.objects.select_for_update(of=("self",))
        .filter(patient_id__in=list(rows))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    return rows[duplicate.pk], rows[survivor.pk]


def _stale_check(
    duplicate: Patient,
    survivor: Patient,
    *,
    duplicate_version: int | None,
    survivor_version: int | None,
) -> None:
    """Refuse the merge if either record changed since the comparison was
    opened at these versions: one refusal naming, for each record, the
    details changed, their values now, who and when."""
    refusals: list[tuple[Patient, StaleEditError]] = []
    for record, expected in ((duplicate, duplicate_version), (survivor, survivor_version)):
        try:
            version_check(record, expected=expected)
        except StaleEditError as stale:
            if not stale.is_stale:
                raise
            refusals.append((record, stale))
    if not refusals:
        return
    changes: list[StaleChange] = []
    for record, refused in refusals:
        which = _("record merged away") if record.pk == duplicate.pk else _("record that stays")
        changes += [
            StaleChange(
                field=change.field,
                label=f"{change.label} ({which}: {record.full_name})",
                value=change.value,
                by=change.by,
                at=change.at,
            )
            for change in refused.changes
        ]
    edits = sorted(
        (edit for _record, refused in refusals for edit in refused.edits),
        key=lambda edit: edit.at or timezone.now(),
        reverse=True,
    )
    newest = edits[0] if edits else None
    names = " / ".join(record.full_name for record, _refused in refusals)
    if newest is not None and newest.at is not None:
        message = _(
            "%(who)s changed %(names)s's record at %(when)s, after you opened this "
            "comparison. Nothing was merged: compare the records again as they are now, "
            "then merge."
        ) % {
            "who": newest.by,
            "names": names,
            "when": dates.day_time(newest.at),
        }
    else:
        message = _(
            "%(names)s's record changed after you opened this comparison. Nothing was "
            "merged: compare the records again as they are now, then merge."
        ) % {"names": names}
    raise StaleEditError(message, changes=changes, edits=edits)


def _relink(
    duplicate: Patient, survivor: Patient, *, merge_id: uuid.UUID, now: object
) -> tuple[dict[str, int], int]:
    """Point every row of the duplicate at the survivor, with the triggers'
    merge setting on for exactly that long; (rows moved by kind, allergies kept)."""
    moved: dict[str, int] = {}
    kept = 0
    _set_merge(str(merge_id))
    for kind in RECORD_KINDS:
        if not kind.direct:
            continue
        rows = kind.model._default_manager.filter(**{kind.path: duplicate})
        if kind.model is PatientAllergy:
            # A record lists each ingredient once and an allergy is never deleted:
            # the survivor's own row carries these in its notes (_shared_allergies_note).
            listed = PatientAllergy.objects.filter(patient=survivor).values("ingredient")
            kept = rows.filter(ingredient__in=listed).count()
            rows = rows.exclude(ingredient__in=listed)
        changes: dict[str, Any] = {kind.path: survivor}
        fields = {f.name for f in kind.model._meta.concrete_fields if not f.is_relation}
        if "updated_at" in fields:
            changes["updated_at"] = now
        if kind.model is Patient:
            # A record merged into the duplicate before: its edit form opened
            # before is now stale (clinic.concurrency). A booking keeps its
            # version: the merge changes nothing its move form shows, so a move
            # opened before still applies, on the record that stays.
            changes["version"] = F("version") + 1
        moved[kind.key] = rows.update(**changes)
    _set_merge("")
    return moved, kept


def _shared_allergies_note(
    duplicate: Patient, survivor: Patient, *, merged_by: User, merge_id: uuid.UUID
) -> int:
    """The duplicate's allergies to an ingredient the survivor already lists
    stay on the merged record (one row per ingredient on a record; an allergy
    is never deleted). Their facts go into the notes of the survivor's row
    for that ingredient, so that the record that stays shows them: when and
    by whom it was recorded there, the test that found it, and its notes.
    Returns how many rows of the survivor were added to."""
    shared = list(
        PatientAllergy.objects.filter(
            patient=duplicate,
            ingredient__in=PatientAllergy.objects.filter(patient=survivor).values("ingredient"),
        )
        .select_related("recorded_by", "source_test")
        .order_by("ingredient_id", "id")
    )
    if not shared:
        return 0
    theirs = {
        allergy.ingredient_id: allergy
        for allergy in PatientAllergy.objects.select_for_update(of=("self",)).filter(
            patient=survivor, ingredient_id__in={a.ingredient_id for a in shared}
        )
    }
    for allergy in shared:
        own = theirs[allergy.ingredient_id]
        recorded_by = allergy.recorded_by
        facts = _(
            "Also recorded on %(name)s's merged record (born %(born)s) on %(day)s by %(who)s."
        ) % {
            "name": duplicate.full_name,
            "born": dates.birth_date(duplicate.date_of_birth),
            "day": dates.day(allergy.recorded_at),
            "who": recorded_by.get_full_name() or recorded_by.get_username(),
        }
        if allergy.source_test is not None:
            facts += " " + _("Found by the allergy test given on %(day)s.") % {
                "day": dates.day(allergy.source_test.given_at)
            }
        if allergy.notes.strip():
            facts += " " + _("Notes there: %(notes)s") % {"notes": allergy.notes.strip()}
        own.notes = "\n\n".join(part for part in (own.notes.strip(), facts) if part)
    for own in theirs.values():
        PatientAllergy.objects.filter(pk=own.pk).update(notes=own.notes)
        audit_log(
            actor=merged_by,
            action=AuditAction.UPDATE,
            obj=own,
            patient_ref=survivor.uuid,
            changed_fields=["notes", f"merge={merge_id}"],
        )
    return len(theirs)


def _address(value: Any) -> str:
    # An email or phone as compared across the two records (any case).
    text = value.as_e164 if hasattr(value, "as_e164") else str(value or "")
    return text.strip().casefold()


@transaction.atomic
def _merge(
    *,
    duplicate: Patient,
    survivor: Patient,
    merged_by: User,
    take_email: bool,
    take_phone: bool,
    duplicate_version: int | None,
    survivor_version: int | None,
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
    if not any(p.code in MERGED_PROBLEMS for p in problems):
        # A form sent twice is told the merge is done, not that a version moved on.
        _stale_check(
            duplicate,
            survivor,
            duplicate_version=duplicate_version,
            survivor_version=survivor_version,
        )
    if problems:
        raise PatientMergeRefusedError.from_problems(problems)

    counts = merge_holdings(patients=[duplicate])[duplicate.pk]
    # Before the duplicate's contact changes move: who set each email.
    duplicate_email_held = email_set_by_non_clinical_role(patient=duplicate)
    survivor_email_held = email_set_by_non_clinical_role(patient=survivor)
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
            _shared_allergies_note(duplicate, survivor, merged_by=merged_by, merge_id=merge_id)
            if moved.get("portal_accounts"):
                # Whoever signed in to the duplicate's account must not see the
                # survivor's documents: the account is closed until a
                # practitioner invites the record that stays, at its own email.
                portal_account_close(
                    account=PortalAccount.objects.select_related("user", "patient").get(
                        patient=survivor
                    ),
                    closed_by=merged_by,
                    marks=[f"merge={merge_id}"],
                )
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
            # At the version just checked: the comparison showed these details.
            survivor = patient_update(
                patient=survivor,
                updated_by=merged_by,
                expected_version=survivor.version,
                **taken,
            )
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
        if "email" in taken and duplicate_email_held:
            # The change patient_update just recorded: the address came from
            # reception, so the merge does not lift its wait.
            ContactChange.objects.filter(
                pk=ContactChange.objects.filter(patient=survivor, field=ContactField.EMAIL)
                .order_by("-changed_at", "-id")
                .values("pk")[:1]
            ).update(by_clinical_role=False)
    # The duplicate's own addresses that the merged record does not keep are
    # told: its documents and portal account now follow the survivor's.
    dropped = {
        name: getattr(duplicate, name)
        for name in ("email", "phone")
        if name not in taken
        and _address(getattr(duplicate, name))
        and _address(getattr(duplicate, name)) != _address(getattr(survivor, name))
    }
    if dropped:
        contact_changes_record(
            patient=survivor,
            previous=dropped,
            changed_by=merged_by,
            held="email" in dropped and survivor_email_held,
        )

    # A request to erase on either record is the same person's: it holds
    # for the record that stays, whose contact details for messages are
    # erased now (audited there), as recording it would have.
    erasure_applied = ErasureRequest.objects.filter(
        patient=survivor, status=ErasureStatus.RETAINED
    ).exists()
    if erasure_applied:
        erasure_apply_at_once(patient=survivor, by=merged_by)
        survivor.refresh_from_db()

    audit_log(
        actor=merged_by,
        action=AuditAction.UPDATE,
        obj=survivor,
        patient_ref=survivor.uuid,
        changed_fields=[
            *(["erasure_applied"] if erasure_applied else []),
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
    duplicate_version: int | None = None,
    survivor_version: int | None = None,
) -> MergeResult:
    """Merge `duplicate` into `survivor`: every row of the duplicate's record
    moves to the survivor's, in one transaction, audited.

    `merged_by` is the practitioner merging. The survivor's details stay;
    `take_email` / `take_phone` replace its email / mobile with the
    duplicate's (when the duplicate has one and it differs), through
    `patients.services.patient_update`. `duplicate_version` and
    `survivor_version` are the versions of the two records the comparison
    page showed (None: not from a page, nothing is checked).

    The duplicate's row is locked FOR UPDATE and the survivor's FOR NO KEY
    UPDATE, lowest id first, then their bookings: a row written for the
    duplicate meanwhile waits and then goes to the survivor (patients.locking;
    consent migration 0006). Under the locks, the versions and the problems
    of `treatments.selectors.merge.merge_problems` are checked again. Signed
    records move through the database's one audited path (the
    `clinic.patient_merge` setting, patients migration 0009), their contents
    untouched. A duplicate's allergy to an ingredient the survivor already
    lists stays on the merged record (a record lists an ingredient once; an
    allergy is never deleted), and what it says is added to the notes of
    the survivor's allergy to that ingredient, audited. The duplicate is
    marked merged into the survivor (at, by). A portal account it brings is
    closed (`portal_account_close`: sessions ended, unused sign-in links
    revoked) until a practitioner invites the survivor. When either record
    has a request to erase not yet done, the survivor's contact details for
    messages are erased as the request erases them (`treatments.services.
    data_rights.erasure_apply_at_once`, audited; the merge page says so
    before confirming). Two audit events: on the
    survivor, naming the duplicate, the merge and the rows moved per kind; on
    the duplicate, naming the survivor.

    Raises `StaleEditError` (clinic.concurrency; nothing changed) when either
    record changed since the versions given (code "stale_edit": each detail
    changed, its value now, who and when) or a version is not one the record
    had ("bad_version"). Raises `PatientMergeRefusedError` (nothing changed)
    for the same record twice, a record already merged (either one),
    overlapping bookings (the database's exclusion constraint on a patient's
    bookings), two portal accounts, a contact detail to take that the
    register refuses (code `contact_invalid`), or a deadlock with another
    change of these records (code `busy`: try again); `ImproperlyConfigured`
    when a relation to Patient is not in RECORD_KINDS.
    """
    try:
        return _merge(
            duplicate=duplicate,
            survivor=survivor,
            merged_by=merged_by,
            take_email=take_email,
            take_phone=take_phone,
            duplicate_version=duplicate_version,
            survivor_version=survivor_version,
        )
    except OperationalError as error:
        if getattr(error.__cause__, "sqlstate", None) != DEADLOCK_DETECTED:
            raise
        raise PatientMergeRefusedError(
            _("These records were being changed at the same moment. Try the merge again."),
            code="busy",
        ) from error

"""State changes of the patient register. Views, forms and tasks call these;
nothing else saves a Patient."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import date
from typing import Any

from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from clinic import dates
from clinic.audit import audit_log
from clinic.concurrency import (
    OtherEdit,
    StaleChange,
    StaleEditError,
    bad_version_error,
    differs,
    field_text,
    submission_check,
    submission_marks,
    version_bump,
    version_check,
)
from clinic.models import AuditAction, User
from clinic.refusals import RefusalKind, RefusedError
from clinic.roles import CLINICAL_DOCUMENT_ROLES
from patients.contact_changes import contact_changes_record
from patients.folding import name_key, search_foldings
from patients.images import CleanImage
from patients.locking import patient_hold
from patients.models import (
    PATIENT_EDITABLE_FIELDS,
    Consultation,
    MedicalHistory,
    Patient,
    Photo,
)
from patients.selectors import (
    consultation_newest,
    history_answer_names,
    history_current,
    history_question,
    patient_possible_duplicates,
)


def _reject_unknown(fields: Any, allowed: Any, what: str) -> None:
    """Services take only the fields they name: anything else is a programming error."""
    unknown = set(fields) - set(allowed)
    if unknown:
        raise TypeError(f"{what}: {sorted(unknown)}")


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def patient_search_text(patient: Patient) -> str:
    """What the search box matches, as one string for the trigram index.

    Every folding of the first and last name (`patients.folding.search_foldings`:
    no accents or case, both Müller spellings, O'Grady as "ogrady" and
    "o grady"; each also without spaces) and of the email (without its dots),
    the phone's digits in international and national form, and the birth date
    as ISO and as dd/mm/yyyy. The search box folds what is typed with the
    same function.
    """
    parts: list[str] = []
    foldings: list[str] = []
    for name in (patient.first_name or "", patient.last_name or ""):
        for folding in search_foldings(name):
            # Also without spaces: "O Grady" is found by "O'Grady" (ogrady).
            foldings += [folding, folding.replace(" ", "")]
    # Searched inside, never by its parts: no word-break form, fewer trigrams.
    foldings += search_foldings(patient.email or "", word_breaks=False)
    for folding in foldings:
        if folding not in parts:
            parts.append(folding)
    if patient.phone:
        parts.append(_digits(patient.phone.as_e164))
        parts.append(_digits(str(patient.phone.as_national)))
    if patient.date_of_birth:
        parts.append(patient.date_of_birth.isoformat())
        parts.append(patient.date_of_birth.strftime("%d/%m/%Y"))
    return " ".join(parts)


class PatientRefusedError(RefusedError):
    """A registration refused, with a sentence for reception, the form field it
    concerns (None: the whole form) and a code for the view."""

    kind = RefusalKind.CONFLICT


class PossibleDuplicateError(PatientRefusedError):
    """Someone already registered may be this person: show them before saving."""

    code = "possible_duplicate"

    def __init__(self, duplicates: list[Patient]) -> None:
        super().__init__(_("This may be someone already registered."))
        self.duplicates = duplicates


class AnonymisedRecordError(PatientRefusedError):
    """The record was anonymised when its retention period ended: it names no
    one, and no name or contact detail is ever put back on it."""

    code = "anonymised"

    def __init__(self) -> None:
        super().__init__(
            _(
                "This record was anonymised when its retention period ended: no name or "
                "contact detail can be put back on it. Register the person again if they "
                "come back."
            )
        )


class AlreadyRegisteredError(PatientRefusedError):
    """This very registration form has already registered `patient`."""

    code = "already_registered"

    def __init__(self, patient: Patient) -> None:
        super().__init__(_("%(name)s is already registered.") % {"name": patient.full_name})
        self.patient = patient


class RegistrationFormUsedError(PatientRefusedError):
    """The form's token registered someone else (a form reused with other details)."""

    code = "registration_form_used"


def _lock_key(*parts: str) -> int:
    # A signed 64-bit key for pg_advisory_xact_lock, namespaced to this use.
    digest = hashlib.blake2b("\x1f".join(("patients.registration", *parts)).encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


# Every registration holds this key shared, first; a patient import
# (patients.imports) holds it alone while it checks its rows against the
# register and inserts them. Registrations still run side by side, but one
# that starts during an import waits for the import's commit and then sees
# its patients, and an import waits for registrations under way.
REGISTER_LOCK_KEY = _lock_key("register")


def patient_register_lock_all() -> None:
    """Hold, until the transaction ends, the register against every
    registration (`REGISTER_LOCK_KEY` alone): for a patient import, whose
    rows are checked for duplicates and inserted as registration does. Take
    it before any other lock, so that no registration deadlocks with it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [REGISTER_LOCK_KEY])


def _registration_locks(patient: Patient, token: uuid.UUID | None) -> None:
    """Hold, until the transaction ends, the register against an import
    (`REGISTER_LOCK_KEY` shared) and a lock on each identity the patient
    shares with a possible duplicate, always in one order (register, token,
    name and birth date, email, phone) so that two registrations never deadlock."""
    keys = []
    if token is not None:
        keys.append(_lock_key("token", str(token)))
    # The two names in either order: the duplicate check also matches them swapped.
    names = sorted((name_key(patient.first_name), name_key(patient.last_name)))
    keys.append(_lock_key("name", *names, patient.date_of_birth.isoformat()))
    if patient.email:
        keys.append(_lock_key("email", patient.email.strip().lower()))
    if patient.phone:
        keys.append(_lock_key("phone", patient.phone.as_e164))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [REGISTER_LOCK_KEY])
        for key in keys:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def _same_person(patient: Patient, other: Patient) -> bool:
    return (
        name_key(patient.first_name) == name_key(other.first_name)
        and name_key(patient.last_name) == name_key(other.last_name)
        and patient.date_of_birth == other.date_of_birth
    )


@transaction.atomic
def patient_create(
    *,
    created_by: User,
    registration_token: uuid.UUID | None = None,
    confirmed_different_person: bool = False,
    **fields: Any,
) -> Patient:
    """Register a patient and record who did.

    `fields` are the registration fields (PATIENT_EDITABLE_FIELDS; the birth
    date a `date`, the phone a number or string in national or E.164 form).
    `registration_token` is the one-time token of the registration form; the
    same form sent again finds the first record instead of making a second.
    `confirmed_different_person` is True only when reception has seen the
    possible duplicates and confirmed this is someone else.

    The duplicate check and the insert run under PostgreSQL transaction-level
    advisory locks on the folded name with the birth date, on the email and on
    the phone, so two registrations of one person at the same moment are
    checked one after the other: the second sees the first's record; and
    under `REGISTER_LOCK_KEY` held shared, so a registration and a patient
    import never both pass their checks (the later waits for the other).

    Raises `AlreadyRegisteredError` (with `.patient`) when this token already
    registered the same person; `RegistrationFormUsedError` when it registered
    someone else; `PossibleDuplicateError` (with `.duplicates`) when a patient
    with the same folded first and last name (in either order) and birth
    date, the same email
    (any case) or the same phone exists and the user has not confirmed;
    `ValidationError` for invalid fields; `TypeError` for fields it does not
    take. Nothing is written when it raises.

    An email or mobile number typed by a role outside CLINICAL_DOCUMENT_ROLES
    is recorded as set by that role (patients.contact_changes): nothing that
    opens clinical documents goes to that email for 24 hours.
    """
    _reject_unknown(fields, PATIENT_EDITABLE_FIELDS, "not editable")
    patient = Patient(created_by=created_by, registration_token=registration_token, **fields)
    # Field values first (the locks need the parsed phone and date), then the
    # check and the insert under the locks. The token's uniqueness is checked
    # under its lock below, with a clearer answer than a validation error.
    patient.full_clean(exclude=["registration_token"], validate_unique=False)
    _registration_locks(patient, registration_token)
    if registration_token is not None:
        earlier = Patient.objects.filter(registration_token=registration_token).first()
        if earlier is not None:
            if _same_person(patient, earlier):
                raise AlreadyRegisteredError(earlier)
            raise RegistrationFormUsedError(
                str(
                    _(
                        "This form has already registered %(name)s. Start a new "
                        "registration for another person."
                    )
                    % {"name": earlier.full_name}
                )
            )
    if not confirmed_different_person:
        duplicates = patient_possible_duplicates(
            user=created_by,
            first_name=patient.first_name,
            last_name=patient.last_name,
            date_of_birth=patient.date_of_birth,
            email=patient.email,
            phone=patient.phone.as_e164 if patient.phone else "",
        )
        if duplicates:
            raise PossibleDuplicateError(duplicates)
    patient.search_text = patient_search_text(patient)
    patient.validate_unique()
    patient.save()
    if not created_by.has_any_role(CLINICAL_DOCUMENT_ROLES):
        # An address typed by reception is held like one it changed
        # (patients.contact_changes); a new record has no previous one to tell.
        typed = {f: "" for f in ("email", "phone") if getattr(patient, f)}
        if typed:
            contact_changes_record(patient=patient, previous=typed, changed_by=created_by)
    audit_log(
        actor=created_by,
        action=AuditAction.CREATE,
        obj=patient,
        patient_ref=patient.uuid,
        changed_fields=[f for f in fields if fields[f] not in ("", None)],
    )
    return patient


@transaction.atomic
def patient_update(
    *,
    patient: Patient,
    updated_by: User,
    expected_version: int | None = None,
    **fields: Any,
) -> Patient:
    """Change a patient's registration and contact details.

    `fields` are any of PATIENT_EDITABLE_FIELDS with their new values (a
    form sends only those the person changed: a field left out keeps its
    value); only those that differ (`clinic.concurrency.differs`) are saved
    and named in the audit event (with the new version's marker), the search
    text is refolded and the version raised. `expected_version` is the
    version the contact-details form was opened with; None only for changes
    that come from no form (a merge).

    The row is locked first, so two receptionists saving at once do not
    interleave, and the second, opened before the first saved, is refused
    rather than applied over it. Returns the saved patient (unchanged when
    nothing differs). Raises `StaleEditError` (clinic.concurrency) when the
    record changed since `expected_version` (code "stale_edit", with the
    fields changed, their values now, who and when) or the version is not
    one it had ("bad_version"); `AnonymisedRecordError` for an anonymised
    record; `ValidationError` for invalid values;
    `TypeError` for fields it does not take. Nothing is written when it
    raises. The possible-duplicate warning for edits is shown by the view
    before this is called. A change of the email or mobile number is
    recorded with who made it (patients.contact_changes), and the previous
    address is told of it in the background.
    """
    _reject_unknown(fields, PATIENT_EDITABLE_FIELDS, "not editable")
    # Lock the row: two receptionists saving at once must not interleave.
    # FOR NO KEY UPDATE: bookings and tests written for the patient meanwhile
    # (FOR KEY SHARE) go on, and a merge taking a contact detail, which
    # already holds the record that stays so, never waits for them.
    current = Patient.objects.select_for_update(no_key=True).get(pk=patient.pk)
    if current.is_anonymised:
        raise AnonymisedRecordError
    version_check(current, expected=expected_version)
    changed = [f for f, v in fields.items() if differs(getattr(current, f), v)]
    if not changed:
        return current
    # The previous email and phone are told of their change (patients.contact_changes).
    previous_contact = {f: getattr(current, f) for f in ("email", "phone") if f in changed}
    for name in changed:
        setattr(current, name, fields[name])
    current.search_text = patient_search_text(current)
    mark = version_bump(current)
    current.full_clean()
    current.save()
    if previous_contact:
        contact_changes_record(patient=current, previous=previous_contact, changed_by=updated_by)
    audit_log(
        actor=updated_by,
        action=AuditAction.UPDATE,
        obj=current,
        patient_ref=current.uuid,
        changed_fields=[*changed, mark],
    )
    return current


def _differ(one: Any, other: Any) -> bool:
    # Areas ticked are a set: the same ones in another order are the same answer.
    if isinstance(one, list | tuple) and isinstance(other, list | tuple):
        return set(one) != set(other)
    return bool(one != other)


def _who(user: User) -> str:
    return str(user.get_full_name() or user.get_username())


def _history_text(history: MedicalHistory, name: str) -> tuple[str, str]:
    # As the questionnaire asks and answers: Yes/No, dd/mm/yyyy, areas by name.
    return history_question(name), field_text(history, name)[1]


def _history_stale_error(
    patient: Patient, base: MedicalHistory | None, answers: dict[str, Any]
) -> StaleEditError:
    """The refusal of a history started from `base` (None: from none) when
    newer ones were signed since: each answer they changed, its value now,
    who signed it and when. Started from none, the answers of the current
    history that differ from those typed."""
    newer = list(patient.histories.select_related("signed_by").order_by("signed_at", "id"))
    if base is not None:
        newer = [h for h in newer if (h.signed_at, h.pk) > (base.signed_at, base.pk)]
    names = history_answer_names()
    latest: dict[str, MedicalHistory] = {}
    edits: list[OtherEdit] = []
    previous = base
    for history in newer:
        if previous is None:
            changed = [
                n for n in names if n in answers and _differ(answers[n], getattr(history, n))
            ]
        else:
            changed = [n for n in names if _differ(getattr(history, n), getattr(previous, n))]
        for name in changed:
            latest[name] = history
        edits.insert(
            0,
            OtherEdit(
                by=_who(history.signed_by),
                at=history.signed_at,
                labels=[history_question(n) for n in changed],
            ),
        )
        previous = history
    current = newer[-1] if newer else None
    changes = []
    for name in names:
        if name not in latest or current is None:
            continue
        if base is None and not _differ(answers.get(name), getattr(current, name)):
            continue
        label, value = _history_text(current, name)
        changes.append(
            StaleChange(
                field=name,
                label=label,
                value=value,
                by=_who(latest[name].signed_by),
                at=latest[name].signed_at,
            )
        )
    newest = edits[0] if edits else None
    if newest is not None and newest.at is not None:
        message = _(
            "%(who)s signed a medical history for this patient at %(when)s, after you "
            "opened this form. Nothing of yours was signed."
        ) % {
            "who": newest.by,
            "when": dates.day_time(newest.at),
        }
    else:
        message = _(
            "A newer medical history was signed after you opened this form. Nothing of "
            "yours was signed."
        )
    return StaleEditError(message, changes=changes, edits=edits)


def _based_on(
    patient: Patient, based_on: str, model: type[MedicalHistory] | type[Consultation]
) -> Any:
    """The row of `patient` a form was started from (`based_on`: its uuid, ""
    for none); `bad_version_error` for anything else."""
    if not based_on:
        return None
    try:
        wanted = uuid.UUID(based_on)
    except ValueError:
        raise bad_version_error() from None
    found = model._default_manager.filter(patient=patient, uuid=wanted).first()
    if found is None:
        raise bad_version_error()
    return found


@transaction.atomic
def medical_history_record(
    *,
    patient: Patient,
    signed_by: User,
    answers: dict[str, Any],
    based_on: str | None = None,
    submission_token: uuid.UUID | None = None,
) -> MedicalHistory:
    """Record and sign a completed questionnaire. It becomes the patient's
    current history; the previous ones stay, unchanged, for comparison.

    `answers` are the questionnaire's fields (the model's editable fields).
    `based_on` is the uuid of the history the form was started from, as the
    form was opened ("" when the patient had none; None: not from a form,
    nothing checked). `submission_token` is the form's one-time token, stored
    on the history (None: no guard).

    One signing at a time per record: the patient's row is held FOR NO KEY
    UPDATE first (following a merge to the record that stays,
    patients.locking), then the current history compared with `based_on`.

    Raises `AlreadySubmittedError` (clinic.concurrency, with `.obj`) when this
    form was already signed (a double click): one history is recorded.
    Raises `StaleEditError` when a history was signed since the form was
    opened (code "stale_edit": the answers it changed, their values now, who
    signed and when), so that no colleague's answer is silently dropped, or
    when `based_on` is not a history of this patient ("bad_version");
    `ValidationError` for invalid answers; `TypeError` for fields it does not
    take. Nothing is written when it raises."""
    allowed = {f.name for f in MedicalHistory._meta.get_fields() if getattr(f, "editable", False)}
    allowed -= {"patient", "id"}
    _reject_unknown(answers, allowed, "not questionnaire fields")
    # First the token: a second post of the same form waits here for the first.
    submission_check(MedicalHistory, submission_token)
    patient = patient_hold(patient, exclusive=True)
    if based_on is not None:
        base = _based_on(patient, based_on, MedicalHistory)
        current = history_current(patient=patient)
        if current is not None and (base is None or current.pk != base.pk):
            raise _history_stale_error(patient, base, answers)
    history = MedicalHistory(
        patient=patient,
        signed_by=signed_by,
        signed_at=timezone.now(),
        submission_token=submission_token,
        **answers,
    )
    history.full_clean()
    history.save()
    audit_log(
        actor=signed_by,
        action=AuditAction.CREATE,
        obj=history,
        patient_ref=patient.uuid,
    )
    return history


CONSULTATION_SHOWN = (
    "skin_type",
    "concerns",
    "areas",
    "goals",
    "alternatives_discussed",
    "recommended_protocol",
    "notes",
)


def _consultation_stale_error(
    patient: Patient, base: Consultation | None, fields: dict[str, Any]
) -> StaleEditError:
    """The refusal of a consultation started when `base` was the newest (None:
    there was none) and another was recorded since: what the newest says
    where it differs from what was typed, who recorded it and when."""
    newer = list(patient.consultations.select_related("recorded_by").order_by("recorded_at", "id"))
    if base is not None:
        newer = [c for c in newer if (c.recorded_at, c.pk) > (base.recorded_at, base.pk)]
    edits = [OtherEdit(by=_who(c.recorded_by), at=c.recorded_at) for c in reversed(newer)]
    changes = []
    if newer:
        newest = newer[-1]
        for name in CONSULTATION_SHOWN:
            if not _differ(fields.get(name), getattr(newest, name)):
                continue
            label, value = field_text(newest, name)
            changes.append(
                StaleChange(field=name, label=label, value=value, by=edits[0].by, at=edits[0].at)
            )
    first = edits[0] if edits else None
    message = _(
        "%(who)s recorded a consultation for this patient at %(when)s while you were "
        "writing yours; yours is not saved yet. Send it to record yours as well."
    ) % {
        "who": first.by if first else _("someone"),
        "when": dates.day_time(first.at) if first and first.at else "",
    }
    return StaleEditError(message, changes=changes, edits=edits)


@transaction.atomic
def consultation_record(
    *,
    patient: Patient,
    recorded_by: User,
    based_on: str | None = None,
    submission_token: uuid.UUID | None = None,
    **fields: Any,
) -> Consultation:
    """Record a consultation (`fields`: the consultation form's fields).

    `based_on` is the uuid of the patient's newest consultation when the form
    was opened ("" for none; None: not from a form, nothing checked);
    `submission_token` the form's one-time token, stored on the row (None:
    no guard). One recording at a time per record (the patient's row held FOR
    NO KEY UPDATE, following a merge, patients.locking).

    Raises `AlreadySubmittedError` (with `.obj`) when this form was already
    saved (a double click): one consultation is recorded. Raises
    `StaleEditError` when a colleague recorded one since the form was opened
    (code "stale_edit": what theirs says where it differs, who and when), so
    that two practitioners do not plan the same patient's course without
    seeing each other's; "bad_version" when `based_on` is not one of this
    patient's. `ValidationError` for invalid fields. Nothing is written when
    it raises."""
    submission_check(Consultation, submission_token)
    patient = patient_hold(patient, exclusive=True)
    if based_on is not None:
        base = _based_on(patient, based_on, Consultation)
        newest = consultation_newest(patient=patient)
        if newest is not None and (base is None or newest.pk != base.pk):
            raise _consultation_stale_error(patient, base, fields)
    consultation = Consultation(
        patient=patient, recorded_by=recorded_by, submission_token=submission_token, **fields
    )
    consultation.full_clean()
    consultation.save()
    audit_log(
        actor=recorded_by, action=AuditAction.CREATE, obj=consultation, patient_ref=patient.uuid
    )
    return consultation


def photo_add(
    *,
    patient: Patient,
    uploaded_by: User,
    area: str,
    kind: str,
    taken_on: date,
    image: CleanImage,
    submission_token: uuid.UUID | None = None,
) -> Photo:
    """Store a cleaned photo and its record; no file is left behind if the record fails.

    `submission_token` is the upload form's one-time token. Raises
    `AlreadySubmittedError` (clinic.concurrency, with `.obj`) when this very
    form was already saved (sent twice, even at the same instant): one photo
    is stored. Raises `ValidationError` for invalid fields."""
    with transaction.atomic():
        # First the token, before any file is stored: a second post waits here.
        submission_check(Photo, submission_token, by=uploaded_by)
        return _photo_store(
            patient=patient,
            uploaded_by=uploaded_by,
            area=area,
            kind=kind,
            taken_on=taken_on,
            image=image,
            submission_token=submission_token,
        )


def _photo_store(
    *,
    patient: Patient,
    uploaded_by: User,
    area: str,
    kind: str,
    taken_on: date,
    image: CleanImage,
    submission_token: uuid.UUID | None,
) -> Photo:
    photo = Photo(
        patient=patient,
        uploaded_by=uploaded_by,
        area=area,
        kind=kind,
        taken_on=taken_on,
        width=image.width,
        height=image.height,
        sha256=image.sha256,
    )
    photo.image.save(f"{photo.uuid}.jpg", ContentFile(image.content), save=False)
    try:
        with transaction.atomic():
            # A record being merged at this moment: the photo goes to the one that stays.
            photo.patient = patient = patient_hold(patient)
            photo.full_clean()
            photo.save()
            audit_log(
                actor=uploaded_by,
                action=AuditAction.CREATE,
                obj=photo,
                patient_ref=patient.uuid,
                changed_fields=submission_marks(submission_token),
            )
    except Exception:
        photo.image.delete(save=False)
        raise
    return photo

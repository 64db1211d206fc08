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

from clinic.audit import audit_log
from clinic.concurrency import version_bump, version_check
from clinic.models import AuditAction, User
from patients.contact_changes import contact_changes_record
from patients.folding import name_key, search_foldings
from patients.images import CleanImage
from patients.models import (
    PATIENT_EDITABLE_FIELDS,
    Consultation,
    MedicalHistory,
    Patient,
    Photo,
)
from patients.selectors import patient_possible_duplicates


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


class PatientRefusedError(Exception):
    """A registration refused, with a sentence for reception, the form field it
    concerns (None: the whole form) and a code for the view."""

    code = "refused"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class PossibleDuplicateError(PatientRefusedError):
    """Someone already registered may be this person: show them before saving."""

    code = "possible_duplicate"

    def __init__(self, duplicates: list[Patient]) -> None:
        super().__init__(str(_("This may be someone already registered.")))
        self.duplicates = duplicates


class AlreadyRegisteredError(PatientRefusedError):
    """This very registration form has already registered `patient`."""

    code = "already_registered"

    def __init__(self, patient: Patient) -> None:
        super().__init__(str(_("%(name)s is already registered.") % {"name": patient.full_name}))
        self.patient = patient


class RegistrationFormUsedError(PatientRefusedError):
    """The form's token registered someone else (a form reused with other details)."""

    code = "registration_form_used"


def _lock_key(*parts: str) -> int:
    # A signed 64-bit key for pg_advisory_xact_lock, namespaced to this use.
    digest = hashlib.blake2b("\x1f".join(("patients.registration", *parts)).encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


def _registration_locks(patient: Patient, token: uuid.UUID | None) -> None:
    """Hold, until the transaction ends, a lock on each identity the patient
    shares with a possible duplicate, always in one order (token, name and
    birth date, email, phone) so that two registrations never deadlock."""
    keys = []
    if token is not None:
        keys.append(_lock_key("token", str(token)))
    keys.append(
        _lock_key(
            "name",
            name_key(patient.first_name),
            name_key(patient.last_name),
            patient.date_of_birth.isoformat(),
        )
    )
    if patient.email:
        keys.append(_lock_key("email", patient.email.strip().lower()))
    if patient.phone:
        keys.append(_lock_key("phone", patient.phone.as_e164))
    with connection.cursor() as cursor:
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
    checked one after the other: the second sees the first's record.

    Raises `AlreadyRegisteredError` (with `.patient`) when this token already
    registered the same person; `RegistrationFormUsedError` when it registered
    someone else; `PossibleDuplicateError` (with `.duplicates`) when a patient
    with the same folded first and last name and birth date, the same email
    (any case) or the same phone exists and the user has not confirmed;
    `ValidationError` for invalid fields; `TypeError` for fields it does not
    take. Nothing is written when it raises.
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

    `fields` are any of PATIENT_EDITABLE_FIELDS with their new values; only
    those that differ are saved and named in the audit event (with the new
    version's marker), the search text is refolded and the version raised.
    `expected_version` is the version the contact-details form was opened
    with; None only for changes that come from no form (a merge).

    The row is locked first, so two receptionists saving at once do not
    interleave, and the second, opened before the first saved, is refused
    rather than applied over it. Returns the saved patient (unchanged when
    nothing differs). Raises `StaleEditError` (clinic.concurrency) when the
    record changed since `expected_version` (code "stale_edit", with the
    fields changed, their values now, who and when) or the version is not
    one it had ("bad_version"); `ValidationError` for invalid values;
    `TypeError` for fields it does not take. Nothing is written when it
    raises. The possible-duplicate warning for edits is shown by the view
    before this is called. A change of the email or mobile number is
    recorded with who made it (patients.contact_changes), and the previous
    address is told of it in the background.
    """
    _reject_unknown(fields, PATIENT_EDITABLE_FIELDS, "not editable")
    # Lock the row: two receptionists saving at once must not interleave.
    current = Patient.objects.select_for_update().get(pk=patient.pk)
    version_check(current, expected=expected_version)
    changed = [f for f, v in fields.items() if getattr(current, f) != v]
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


@transaction.atomic
def medical_history_record(
    *, patient: Patient, signed_by: User, answers: dict[str, Any]
) -> MedicalHistory:
    """Record and sign a completed questionnaire. It becomes the patient's
    current history; the previous ones stay, unchanged, for comparison."""
    allowed = {f.name for f in MedicalHistory._meta.get_fields() if getattr(f, "editable", False)}
    allowed -= {"patient", "id"}
    _reject_unknown(answers, allowed, "not questionnaire fields")
    history = MedicalHistory(
        patient=patient, signed_by=signed_by, signed_at=timezone.now(), **answers
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


@transaction.atomic
def consultation_record(*, patient: Patient, recorded_by: User, **fields: Any) -> Consultation:
    consultation = Consultation(patient=patient, recorded_by=recorded_by, **fields)
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
) -> Photo:
    """Store a cleaned photo and its record; no file is left behind if the record fails."""
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
            photo.full_clean()
            photo.save()
            audit_log(
                actor=uploaded_by, action=AuditAction.CREATE, obj=photo, patient_ref=patient.uuid
            )
    except Exception:
        photo.image.delete(save=False)
        raise
    return photo

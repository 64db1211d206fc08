"""State changes of the patient register. Views, forms and tasks call these;
nothing else saves a Patient."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from clinic.audit import audit_log
from clinic.models import AuditAction, User
from patients.images import CleanImage
from patients.models import (
    PATIENT_EDITABLE_FIELDS,
    Consultation,
    MedicalHistory,
    Patient,
    Photo,
)


def _reject_unknown(fields: Any, allowed: Any, what: str) -> None:
    """Services take only the fields they name: anything else is a programming error."""
    unknown = set(fields) - set(allowed)
    if unknown:
        raise TypeError(f"{what}: {sorted(unknown)}")


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def patient_search_text(patient: Patient) -> str:
    """What the search box matches: name, email, phone digits (international
    and national forms) and the birth date as ISO and as dd/mm/yyyy."""
    parts = [patient.first_name, patient.last_name, patient.email]
    if patient.phone:
        parts.append(_digits(patient.phone.as_e164))
        parts.append(_digits(str(patient.phone.as_national)))
    if patient.date_of_birth:
        parts.append(patient.date_of_birth.isoformat())
        parts.append(patient.date_of_birth.strftime("%d/%m/%Y"))
    return " ".join(p.strip().lower() for p in parts if p)


@transaction.atomic
def patient_create(*, created_by: User, **fields: Any) -> Patient:
    _reject_unknown(fields, PATIENT_EDITABLE_FIELDS, "not editable")
    patient = Patient(created_by=created_by, **fields)
    patient.search_text = patient_search_text(patient)
    patient.full_clean()
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
def patient_update(*, patient: Patient, updated_by: User, **fields: Any) -> Patient:
    _reject_unknown(fields, PATIENT_EDITABLE_FIELDS, "not editable")
    # Lock the row: two receptionists saving at once must not interleave.
    current = Patient.objects.select_for_update().get(pk=patient.pk)
    changed = [f for f, v in fields.items() if getattr(current, f) != v]
    if not changed:
        return current
    for name in changed:
        setattr(current, name, fields[name])
    current.search_text = patient_search_text(current)
    current.full_clean()
    current.save()
    audit_log(
        actor=updated_by,
        action=AuditAction.UPDATE,
        obj=current,
        patient_ref=current.uuid,
        changed_fields=changed,
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

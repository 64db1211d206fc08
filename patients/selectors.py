"""Reads of the patient register, with the one access check for patients."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date, timedelta

from django.conf import settings
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from clinic.models import User
from patients.models import HISTORY_QUESTIONS, MedicalHistory, Patient, TreatmentArea
from patients.screening import screen

QUESTION_LABELS = {name: label for _group, qs in HISTORY_QUESTIONS for name, label in qs}

SEARCH_LIMIT = 25


def patients_visible_to(user: User) -> QuerySet[Patient]:
    """Every patient query for a request starts here. Staff of the clinic see
    the register; anyone else (a future portal account) sees nobody here."""
    if user.is_authenticated and user.is_clinic_staff:
        return Patient.objects.all()
    return Patient.objects.none()


def patient_get_for_user(*, user: User, patient_uuid: uuid.UUID) -> Patient:
    """The patient, if this user may see them; 404 otherwise (no hint either way)."""
    try:
        return patients_visible_to(user).get(uuid=patient_uuid)
    except Patient.DoesNotExist:
        raise Http404 from None


DATE_TERM = re.compile(r"\d{4}-\d{1,2}(-\d{1,2})?|\d{1,2}/\d{1,2}(/\d{2,4})?")
PHONE_TERM = re.compile(r"[\d\s()+-]+")


def _normalise_term(term: str) -> str:
    term = term.strip().lower()
    if DATE_TERM.fullmatch(term):
        return term
    # "07911 123 456" and "+44 7911" are typed with spaces and signs: match digits.
    if PHONE_TERM.fullmatch(term):
        return re.sub(r"\D", "", term)
    return term


def patient_search(*, user: User, query: str, limit: int = SEARCH_LIMIT) -> list[Patient]:
    """Patients matching every word of `query` in name, email, phone or birth date."""
    terms = [t for t in (_normalise_term(w) for w in query.split()) if t][:6]
    if not terms:
        return []
    condition = Q()
    for term in terms:
        condition &= Q(search_text__contains=term)
    return list(
        patients_visible_to(user)
        .filter(condition)
        .order_by("last_name", "first_name", "id")[:limit]
    )


def patient_possible_duplicates(
    *,
    user: User,
    first_name: str,
    last_name: str,
    date_of_birth: date | None,
    email: str,
    phone: str,
    exclude: Patient | None = None,
) -> list[Patient]:
    """Existing patients that may be the same person: same name and birth
    date, same email, or same phone."""
    condition = Q()
    if date_of_birth:
        condition |= Q(
            first_name__iexact=first_name.strip(),
            last_name__iexact=last_name.strip(),
            date_of_birth=date_of_birth,
        )
    if email:
        condition |= Q(email__iexact=email.strip())
    if phone:
        condition |= Q(phone=phone)
    if not condition:
        return []
    found = patients_visible_to(user).filter(condition)
    if exclude is not None:
        found = found.exclude(pk=exclude.pk)
    return list(found.order_by("last_name", "first_name")[:10])


# --- Medical history and readiness ---------------------------------------------------


@dataclass(frozen=True)
class AnswerChange:
    question: str
    before: str
    after: str


@dataclass(frozen=True)
class Readiness:
    """What reception may know: flags in non-clinical words, never the reason."""

    flags: list[str]
    history_current: bool


def history_current(*, patient: Patient) -> MedicalHistory | None:
    return patient.histories.order_by("-signed_at", "-id").first()


def history_is_valid(history: MedicalHistory | None, *, today: date) -> bool:
    if history is None:
        return False
    age = today - timezone.localtime(history.signed_at).date()
    return age <= timedelta(days=settings.MEDICAL_HISTORY_VALID_DAYS)


def _display(history: MedicalHistory, name: str) -> str:
    value = getattr(history, name)
    if isinstance(value, bool):
        return str(_("yes")) if value else str(_("no"))
    if name == "implant_areas":
        labels = dict(TreatmentArea.choices)
        return ", ".join(str(labels.get(a, a)) for a in value) or "—"
    if isinstance(value, date):
        return formats.date_format(value, "j M Y")
    return str(value).strip() or "—"


def history_changes(current: MedicalHistory, previous: MedicalHistory) -> list[AnswerChange]:
    """Answers that differ between two questionnaires, in questionnaire order."""
    changes = []
    for field in MedicalHistory._meta.get_fields():
        name = field.name
        if not getattr(field, "editable", False) or name in {"id", "uuid", "patient"}:
            continue
        if getattr(current, name) != getattr(previous, name):
            label = str(getattr(field, "verbose_name", name))
            question = QUESTION_LABELS.get(name, label[:1].upper() + label[1:])
            changes.append(
                AnswerChange(str(question), _display(previous, name), _display(current, name))
            )
    return changes


def patient_readiness(*, patient: Patient, today: date) -> Readiness:
    """Flags for the patient page and, later, bookings: safe to share with reception."""
    history = history_current(patient=patient)
    flags: list[str] = []
    valid = history_is_valid(history, today=today)
    if history is None:
        flags.append(str(_("medical history needed")))
    elif not valid:
        flags.append(str(_("medical history out of date: needs taking again")))
    if history is not None:
        notes = {f.reception_note for f in screen(history, today=today) if f.reception_note}
        flags.extend(sorted(notes))
    return Readiness(flags=flags, history_current=valid)

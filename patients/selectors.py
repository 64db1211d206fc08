"""Reads of the patient register, with the one access check for patients."""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Q, QuerySet
from django.http import Http404
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from clinic.models import User
from clinic.names import person_name
from clinic.selectors import PatientLabel
from patients.folding import name_key, search_foldings
from patients.models import (
    HISTORY_QUESTIONS,
    Consultation,
    MedicalHistory,
    Patient,
    TreatmentArea,
)
from patients.screening import screen

QUESTION_LABELS = {name: label for _group, qs in HISTORY_QUESTIONS for name, label in qs}

SEARCH_LIMIT = 25
# Consultations recorded while a form was open, shown beside its refusal.
CONSULTATIONS_SHOWN_SINCE = 5


class PatientMergedError(Http404):
    """The record asked for was merged into another (`survivor_uuid`).

    Raised by `patient_get_for_user`; `patients.middleware` answers a page
    request with a redirect to the same page of the survivor. Anywhere else
    it is a plain 404.
    """

    def __init__(
        self,
        *,
        merged_uuid: uuid.UUID,
        survivor_uuid: uuid.UUID,
        survivor: Patient | None = None,
    ) -> None:
        super().__init__("This record was merged into another.")
        self.merged_uuid = merged_uuid
        self.survivor_uuid = survivor_uuid
        self.survivor = survivor  # the record that stays, when at hand


# A merge re-points records merged earlier into the duplicate, so one hop is
# the rule; the bound only stops a loop that the data should never hold.
MERGE_HOPS = 5


# A chain of merges longer than this is not one a clinic makes by hand.
_MERGE_DEPTH = 20


def patient_records_merged_into(patient: uuid.UUID) -> list[uuid.UUID]:
    """The public ids of every record merged into the record `patient`,
    directly or through a chain of merges (treatments.services.merge), in the
    order of the chain; empty for an unknown id or a record nothing was
    merged into. One query per link of the chain (at most 20)."""
    found: list[uuid.UUID] = []
    level = [patient]
    for _depth in range(_MERGE_DEPTH):
        level = [
            record
            for record in Patient.objects.filter(merged_into__uuid__in=level).values_list(
                "uuid", flat=True
            )
            if record not in found and record != patient
        ]
        if not level:
            break
        found += level
    return found


def patient_labels_for_audit(records: Collection[uuid.UUID]) -> dict[uuid.UUID, PatientLabel]:
    """The name and page of the patient each record of `records` (public ids)
    stands for, for the audit log's rows: a record merged into another is
    named by the record that stayed, followed through at most _MERGE_DEPTH
    merges. Unknown ids are left out. One query, whatever the number of
    records: a recursive walk of the merge chains in PostgreSQL."""
    if not records:
        return {}
    table = connection.ops.quote_name(Patient._meta.db_table)
    sql = f"""
        WITH RECURSIVE chain (asked, id, merged_into_id, hops) AS (
            SELECT p.uuid, p.id, p.merged_into_id, 0 FROM {table} p WHERE p.uuid = ANY(%s)
            UNION ALL
            SELECT c.asked, p.id, p.merged_into_id, c.hops + 1
            FROM chain c JOIN {table} p ON p.id = c.merged_into_id
            WHERE c.hops < %s
        )
        SELECT c.asked, p.uuid, p.first_name, p.last_name, c.hops
        FROM chain c JOIN {table} p ON p.id = c.id
        WHERE c.merged_into_id IS NULL
    """  # noqa: S608 (the table name is the model's own; the ids are parameters)
    with connection.cursor() as cursor:
        cursor.execute(sql, [list(records), _MERGE_DEPTH])
        rows = cursor.fetchall()
    return {
        asked: PatientLabel(
            name=person_name(first, last),
            url=reverse("patients:detail", kwargs={"patient": survivor}),
            merged=hops > 0,
        )
        for asked, survivor, first, last, hops in rows
    }


def patient_records_visible_to(user: User) -> QuerySet[Patient]:
    """The records this user may see, merged ones included: for following a
    merged record to its survivor, and for the merge itself. Staff of the
    clinic see the register; anyone else sees nobody here."""
    if user.is_authenticated and user.is_clinic_staff:
        return Patient.objects.all()
    return Patient.objects.none()


def patients_visible_to(user: User) -> QuerySet[Patient]:
    """Every patient query for a request starts here: the records this user
    may see, without those merged into another (the survivor stands for them
    in search, lists and choices)."""
    return patient_records_visible_to(user).filter(merged_into__isnull=True)


def patient_get_for_user(*, user: User, patient_uuid: uuid.UUID) -> Patient:
    """The patient, if this user may see them; 404 otherwise (no hint either way).

    A record merged into another raises `PatientMergedError` naming the
    survivor, followed through at most MERGE_HOPS merges, if this user may see
    the survivor (a 404 otherwise): its pages then redirect there.
    """
    records = patient_records_visible_to(user)
    try:
        record = records.get(uuid=patient_uuid)
    except Patient.DoesNotExist:
        raise Http404 from None
    survivor = record
    for _hop in range(MERGE_HOPS):
        if survivor.merged_into_id is None:
            break
        found = records.filter(pk=survivor.merged_into_id).first()
        if found is None:
            raise Http404
        survivor = found
    if survivor.merged_into_id is not None:
        raise Http404
    if survivor.pk != record.pk:
        raise PatientMergedError(
            merged_uuid=record.uuid, survivor_uuid=survivor.uuid, survivor=survivor
        )
    return record


DATE_TERM = re.compile(r"\d{4}-\d{1,2}(-\d{1,2})?|\d{1,2}/\d{1,2}(/\d{2,4})?")
PHONE_TERM = re.compile(r"[\d\s()+-]+")
DUPLICATE_LIMIT = 10


def _term_foldings(term: str) -> list[str]:
    """The spellings of one typed word to look for, any of which may match."""
    term = term.strip()
    if DATE_TERM.fullmatch(term):
        return [term]
    # "07911 123 456" and "+44 7911" are typed with spaces and signs: match digits.
    if PHONE_TERM.fullmatch(term):
        digits = re.sub(r"\D", "", term)
        return [digits] if digits else []
    # The same folding as the stored search text (patients.services.patient_search_text).
    # A typed word has no space, and the stored text holds every name also
    # without its spaces, so the separator-removed spellings are enough.
    return search_foldings(term, word_breaks=False)


# Shorter terms hold no whole trigram: "sm" cannot narrow the trigram index
# as a part of a word, only as the start of one (pg_trgm pads each word with
# two spaces in front, so " sm" is one of the index's trigrams).
WORD_START_BELOW = 3


def _any_of(foldings: list[str]) -> Q:
    """`search_text` contains one of `foldings`, as one trigram-indexable test.

    Two spellings (Müller: muller, mueller) are one regular expression rather
    than two LIKEs joined by OR: PostgreSQL costs each LIKE as a separate
    index scan, and the pair then looks dearer than reading the whole table
    (90 ms instead of 15 at 50,000 patients). pg_trgm indexes the expression.

    A term shorter than three characters (`WORD_START_BELOW`) matches the
    start of a word ("sm" finds Smith, not Osmond): the only form of it the
    trigram index can serve (issue 14: "sm" read the whole table).
    """
    alternatives = "|".join(re.escape(f) for f in foldings)
    if max(len(f) for f in foldings) < WORD_START_BELOW:
        return Q(search_text__regex=f"(^| )({alternatives})")
    if len(foldings) == 1:
        return Q(search_text__contains=foldings[0])
    return Q(search_text__regex=alternatives)


# The matches are gathered through the trigram index first (a MATERIALIZED
# CTE is a fence the planner does not reorder), then sorted by name. Left to
# itself, the planner may instead walk the name index in order and test every
# row: fine for a term found everywhere, but a late-alphabet name part ("smi",
# "wil") then reads and discards most of the register before its first match
# (issue 14: 70 ms instead of 2.2 at 50,000 patients, growing with the register).
# The final order is that of the first matches, not of the table's columns,
# so that no plan can take it from the name index either. Records merged into
# another are left out after the fence: inside it, "merged_into_id IS NULL"
# (true of nearly every row) led PostgreSQL 18 to read its foreign-key index
# instead of the trigram one.
_SEARCH_SQL = """
WITH found AS MATERIALIZED ({matching})
SELECT patient.* FROM (
    SELECT id, last_name, first_name FROM found WHERE merged_into_id IS NULL
    ORDER BY last_name, first_name, id LIMIT %s
) AS first_found
JOIN patients_patient AS patient ON patient.id = first_found.id
ORDER BY first_found.last_name, first_found.first_name, first_found.id
"""


def patient_search(*, user: User, query: str, limit: int = SEARCH_LIMIT) -> list[Patient]:
    """Patients matching every word of `query` in name, email, phone or birth date.

    `query` is what was typed in the search box: up to six words count. Names
    and emails match whatever the case, accents and apostrophes ("muller",
    "Mueller" and "MÜLLER" find Müller; "ogrady" and "O-Grady" find O'Grady),
    a phone by its digits (spaces and signs ignored), a birth date as
    yyyy-mm-dd or dd/mm/yyyy. A word of three characters or more may be
    anywhere ("mit" finds Smith); a shorter one starts a word ("sm" finds
    Smith, "07" a national phone number). Returns at most `limit` patients
    this `user` may see, by last then first name; an empty list when nothing
    was typed. One query, served by the trigram index on `search_text`
    (migration 0002) at any size of the register (issue 14).
    """
    words = [foldings for foldings in (_term_foldings(w) for w in query.split()) if foldings]
    if not words:
        return []
    condition = Q()
    for foldings in words[:6]:
        condition &= _any_of(foldings)
    # Merged records included here and left out after the fence (_SEARCH_SQL):
    # the same patients as patients_visible_to(user).
    matching = (
        patient_records_visible_to(user)
        .filter(condition)
        .order_by()  # sorted once, after the fence
        .values("id", "last_name", "first_name", "merged_into_id")
    )
    try:
        sql, params = matching.query.sql_with_params()
    except EmptyResultSet:  # nobody this user may see
        return []
    return list(Patient.objects.raw(_SEARCH_SQL.format(matching=sql), [*params, limit]))


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
    """Existing patients, visible to `user`, who may be the person being
    registered or edited: the same first and last name whatever the case,
    accents, transliteration and apostrophes (`patients.folding.name_key`:
    Zoe Muller is Zoë Müller), also swapped (first name typed as the last:
    "Muller" "Zoe"), with the same `date_of_birth`; or the same `email` (any
    case); or the same `phone` (E.164 or a parsed number).
    Blank values are not compared. `exclude` is the patient being edited.
    Returns up to 10, by last then first name. Two indexed queries: the
    patients born that day (a handful) are compared by folded name here, in
    Python, with the same folding the search uses.
    """
    visible = patients_visible_to(user)
    if exclude is not None:
        visible = visible.exclude(pk=exclude.pk)
    found: dict[int, Patient] = {}
    if date_of_birth:
        wanted = (name_key(first_name), name_key(last_name))
        # Also swapped: names are often given family name first.
        either = {wanted, wanted[::-1]}
        for other in visible.filter(date_of_birth=date_of_birth):
            if (name_key(other.first_name), name_key(other.last_name)) in either:
                found[other.pk] = other
    contact = Q()
    if email and email.strip():
        contact |= Q(email__iexact=email.strip())
    if phone:
        contact |= Q(phone=phone)
    if contact:
        for other in visible.filter(contact).order_by("last_name", "first_name", "id")[
            :DUPLICATE_LIMIT
        ]:
            found.setdefault(other.pk, other)
    ordered = sorted(found.values(), key=lambda p: (p.last_name, p.first_name, p.pk))
    return ordered[:DUPLICATE_LIMIT]


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
    """The patient's most recently signed medical history, or None if none was
    ever taken. Whether it is still valid is `history_is_valid`'s question."""
    return patient.histories.order_by("-signed_at", "-id").first()


def consultation_newest(*, patient: Patient) -> Consultation | None:
    """The patient's most recent consultation, or None."""
    return patient.consultations.order_by("-recorded_at", "-id").first()


def consultations_since(*, patient: Patient, based_on: str) -> list[Consultation]:
    """The consultations of `patient` recorded after the one whose uuid is
    `based_on` ("" or unknown: all of them), newest first, at most
    CONSULTATIONS_SHOWN_SINCE: what a colleague recorded while a form was open."""
    found = patient.consultations.select_related("recorded_by").order_by("-recorded_at", "-id")
    base = _row_of(patient.consultations.all(), based_on)
    if base is not None:
        found = found.filter(
            Q(recorded_at__gt=base.recorded_at) | Q(recorded_at=base.recorded_at, id__gt=base.pk)
        )
    return list(found[:CONSULTATIONS_SHOWN_SINCE])


def history_get(*, patient: Patient, based_on: str) -> MedicalHistory | None:
    """The history of `patient` whose uuid is `based_on`, or None ("" or
    not one of theirs)."""
    return _row_of(patient.histories.all(), based_on)


def _row_of(rows: QuerySet[Any], wanted: str) -> Any:
    try:
        key = uuid.UUID(str(wanted))
    except ValueError:
        return None
    return rows.filter(uuid=key).first()


def history_is_valid(history: MedicalHistory | None, *, today: date) -> bool:
    """Whether `history` still allows treatment on `today` (clinic date): it
    exists and was signed at most MEDICAL_HISTORY_VALID_DAYS days before
    (default 365: a history is taken again every year, domain.md)."""
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


def history_answer_names() -> list[str]:
    """The answers of a questionnaire, in the model's order (every field a
    practitioner fills in)."""
    return [
        field.name
        for field in MedicalHistory._meta.get_fields()
        if getattr(field, "editable", False) and field.name not in {"id", "uuid", "patient"}
    ]


def history_question(name: str) -> str:
    """The question of answer `name`, as the questionnaire asks it."""
    field = MedicalHistory._meta.get_field(name)
    label = str(getattr(field, "verbose_name", name))
    return str(QUESTION_LABELS.get(name, label[:1].upper() + label[1:]))


def history_answer_text(history: MedicalHistory, name: str) -> str:
    """Answer `name` of a questionnaire as a person reads it (yes/no, areas, dates)."""
    return _display(history, name)


def history_changes(current: MedicalHistory, previous: MedicalHistory) -> list[AnswerChange]:
    """Answers that differ between two questionnaires, in questionnaire order."""
    return [
        AnswerChange(history_question(name), _display(previous, name), _display(current, name))
        for name in history_answer_names()
        if getattr(current, name) != getattr(previous, name)
    ]


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

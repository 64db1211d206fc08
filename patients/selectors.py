"""Reads of the patient register, with the one access check for patients."""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Q, QuerySet
from django.db.models.expressions import RawSQL
from django.http import Http404
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from clinic import clinic_settings, dates
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

# Shorter terms hold no whole trigram: "sm" cannot narrow the trigram index
# as a part of a word, only as the start of one (pg_trgm pads each word with
# two spaces in front, so " sm" is one of the index's trigrams).
WORD_START_BELOW = 3
# Words of a query that count; the rest are ignored.
SEARCH_TERMS_MAX = 6
# Word rows a query of several words reads in the word index before it asks
# the trigram index instead (see `patient_search`): about 1 ms of checks.
WORDS_READ_MAX = 1000


@dataclass(frozen=True)
class _Term:
    """One typed word: its spellings (`foldings`), any of which may match, and
    whether it matches only at the start of a word (`word_start`)."""

    foldings: tuple[str, ...]
    word_start: bool


def _term(typed: str) -> _Term | None:
    """The spellings of one typed word to look for, or None if nothing is left."""
    typed = typed.strip()
    if DATE_TERM.fullmatch(typed):
        # A birth date is a word of its own: 4/07/1999 is not 14/07/1999.
        return _Term((typed,), word_start=True)
    # "07911 123 456" and "+44 7911" are typed with spaces and signs: match digits.
    if PHONE_TERM.fullmatch(typed):
        digits = re.sub(r"\D", "", typed)
        foldings = [digits] if digits else []
    else:
        # The same folding as the stored search text (patients.services.patient_search_text).
        # A typed word has no space, and the stored text holds every name also
        # without its spaces, so the separator-removed spellings are enough.
        foldings = search_foldings(typed, word_breaks=False)
    if not foldings:
        return None
    short = max(len(f) for f in foldings) < WORD_START_BELOW
    return _Term(tuple(foldings), word_start=short)


def _any_of(term: _Term) -> Q:
    """`search_text` holds one of the term's spellings, as one trigram-indexable test.

    Two spellings (Müller: muller, mueller) are one regular expression rather
    than two LIKEs joined by OR: PostgreSQL costs each LIKE as a separate
    index scan, and the pair then looks dearer than reading the whole table
    (90 ms instead of 15 at 50,000 patients). pg_trgm indexes the expression.

    A term matched at the start of a word only (shorter than three
    characters, or a date) is a regular expression anchored at a word start
    ("sm" finds Smith, not Osmond): the only form of a short term the trigram
    index can serve (issue 14: "sm" read the whole table).
    """
    alternatives = "|".join(re.escape(f) for f in term.foldings)
    if term.word_start:
        return Q(search_text__regex=f"(^| )({alternatives})")
    if len(term.foldings) == 1:
        return Q(search_text__contains=term.foldings[0])
    return Q(search_text__regex=alternatives)


class PatientSearchResults(list[Patient]):
    """A page of `patient_search`: the patients shown, and whether more match
    (`more`) than the page holds, known without counting them."""

    more: bool = False


# The patient's first word (in byte order) that starts with one of the
# driving term's spellings, from the row's own search text: NULL when it
# has none (the term is found inside a word). {row} is the row's alias.
_FIRST_WORD = """(
    SELECT min(part COLLATE "C") FROM unnest(string_to_array({row}.search_text, ' ')) AS part
    WHERE part ^@ ANY(%s::text[])
)"""

# One spelling's range of the word index, in index order.
_WORD_RANGE = """(
    SELECT word, patient_id FROM patients_patientsearchword
    WHERE word ^@ %s ORDER BY word, patient_id LIMIT %s
)"""

# The word index's rows for the driving term, every spelling's range merged
# in word order (PostgreSQL's Merge Append of ordered index scans), each
# checked against the whole query on its patient's row, until the page is
# full. A patient with several words that match (Amelia, ameliasmith@...)
# is kept at the first only. The lateral subquery (OFFSET 0 keeps it one)
# looks each patient up by its key: the planner may not swap it for a scan
# of every match, which is what this query exists to avoid.
_WORDS_SQL = """
SELECT patient.*, w.word AS search_word FROM (
    SELECT word, patient_id FROM ({ranges}) AS ranges
    ORDER BY word, patient_id LIMIT %s
) AS w
CROSS JOIN LATERAL (
    SELECT found.* FROM ({matching}) AS found
    WHERE found.id = w.patient_id AND found.merged_into_id IS NULL
        AND {first_word} = w.word
    OFFSET 0
) AS patient
ORDER BY w.word, w.patient_id
LIMIT %s
"""

# How many rows the word index's ranges hold, up to the number read.
_RANGE_COUNT_SQL = "SELECT count(*) FROM ({ranges}) AS ranges"

# Every match through the trigram index, gathered first (a MATERIALIZED CTE
# is a fence the planner does not reorder: left to itself, it may walk the
# name index and test every row, issue 14), then in the search's order: the
# patients with a word starting with the driving term by that word, then
# the others by name. Records merged into another are left out after the
# fence: inside it, "merged_into_id IS NULL" (true of nearly every row) led
# PostgreSQL 18 to read its foreign-key index instead of the trigram one.
_MATCHES_SQL = """
WITH found AS MATERIALIZED ({matching})
SELECT patient.*, first_found.search_word FROM (
    SELECT id, last_name, first_name, search_word FROM found
    WHERE merged_into_id IS NULL
    ORDER BY {order} LIMIT %s
) AS first_found
JOIN patients_patient AS patient ON patient.id = first_found.id
ORDER BY {first_found_order}
"""
# Within the fence, each match's first word starting with a spelling of the
# driving term, or NULL: a cheap test first (a regular expression costs
# twice as much), the words only then. The search text stays inside.
_MATCH_WORD = "CASE WHEN {starts} THEN {first_word} END"
_STARTS = "strpos(' ' || {row}.search_text, %s) > 0"
# The first group by word (then key), the second by name.
_MATCHES_ORDER = """
    {t}search_word NULLS LAST,
    CASE WHEN {t}search_word IS NULL THEN {t}last_name END,
    CASE WHEN {t}search_word IS NULL THEN {t}first_name END,
    {t}id"""


def patient_search(*, user: User, query: str, limit: int = SEARCH_LIMIT) -> PatientSearchResults:
    """Patients matching every word of `query` in name, email, phone or birth date.

    `query` is what was typed in the search box: up to six words count. Names
    and emails match whatever the case, accents and apostrophes ("muller",
    "Mueller" and "MÜLLER" find Müller; "ogrady" and "O-Grady" find O'Grady),
    a phone by its digits (spaces and signs ignored), a birth date as
    yyyy-mm-dd or dd/mm/yyyy (from its start: "4/07/1999" is not 14 July). A
    word of three characters or more may be anywhere ("mit" finds Smith); a
    shorter one starts a word ("sm" finds Smith, "07" a national phone number).

    Returns at most `limit` patients this `user` may see, with `more` set when
    others match too (none are counted); empty when nothing was typed.
    Order: first the patients with a word that starts with the query's
    driving word (the only word, or the longest), grouped by that word in
    alphabetical order ("sm": Small, then Smith, then Smyth; a first name is
    a word too), each group by name; then those where it is found inside a
    word ("sm": Osmond), by name. When a word starts more patients than a
    page holds, the page has those registered first (then shown by name).

    Cost (issue 14): the first group is read from the word index
    (`PatientSearchWord`) in that order and the reading stops with the page,
    whatever the size of the register: one query. Only when the page is not
    full (a term found inside words, several words that the first
    `WORDS_READ_MAX` rows of the index do not satisfy) does the trigram index
    gather every match, and that costs what the matches cost. Three queries
    at most.
    """
    terms = [t for t in (_term(typed) for typed in query.split()) if t is not None]
    terms = terms[:SEARCH_TERMS_MAX]
    if not terms:
        return PatientSearchResults()
    condition = Q()
    for term in terms:
        condition &= _any_of(term)
    # The longest word narrows the index's range most; the last typed of equal ones.
    driver = max(reversed(terms), key=lambda t: max(len(f) for f in t.foldings))
    # A spelling that starts with another ("bjoe", "bjo") reads a part of the
    # other's range again: each row would be read, and its patient listed, twice.
    spellings = [
        s for s in driver.foldings if not any(o != s and s.startswith(o) for o in driver.foldings)
    ]
    # Merged records included here and left out in the SQL: the same
    # patients as patients_visible_to(user).
    matching = patient_records_visible_to(user).filter(condition).order_by()
    try:
        row_sql, row_params = matching.query.sql_with_params()
        table = connection.ops.quote_name(Patient._meta.db_table)
        match_word = _MATCH_WORD.format(
            starts=" OR ".join([_STARTS.format(row=table)] * len(spellings)),
            first_word=_FIRST_WORD.format(row=table),
        )
        found_sql, found_params = (
            matching.annotate(
                # Our own SQL; the spellings are parameters.
                search_word=RawSQL(match_word, [*(f" {s}" for s in spellings), spellings])  # noqa: S611
            )
            .values("id", "last_name", "first_name", "merged_into_id", "search_word")
            .query.sql_with_params()
        )
    except EmptyResultSet:  # nobody this user may see
        return PatientSearchResults()
    several = len(terms) > 1
    # Rows of the word index read at most. One word: the page four times
    # over, since its rows fail only for patients met twice and merged
    # records; a small bound also keeps the planner on the index's order
    # (with none, it chose to read and sort all 18,137 "sm" rows at 500,000).
    # Several words: the others are checked row by row, which may go on long
    # for a combination nobody has; the trigram index answers those instead.
    read = WORDS_READ_MAX if several else 4 * (limit + 1)
    ranges = " UNION ALL ".join([_WORD_RANGE] * len(spellings))
    range_params: list[Any] = [p for s in spellings for p in (s, read)]
    sql = _WORDS_SQL.format(
        ranges=ranges, matching=row_sql, first_word=_FIRST_WORD.format(row="found")
    )
    params = [*range_params, read, *row_params, spellings, limit + 1]
    found = list(Patient.objects.raw(sql, params))
    if len(found) > limit:
        return _page(found, limit)
    # One word matched only at word starts (a short one, a date) has no
    # other matches: the page holds them all unless the index had more rows
    # than were read (counted, without the checks, only in that case).
    if not several and driver.word_start:
        with connection.cursor() as cursor:
            cursor.execute(_RANGE_COUNT_SQL.format(ranges=ranges), range_params)
            in_range = cursor.fetchone()[0]
        if in_range < read:
            return _page(found, limit)
    sql = _MATCHES_SQL.format(
        matching=found_sql,
        order=_MATCHES_ORDER.format(t=""),
        first_found_order=_MATCHES_ORDER.format(t="first_found."),
    )
    return _page(list(Patient.objects.raw(sql, [*found_params, limit + 1])), limit)


def _page(found: list[Patient], limit: int) -> PatientSearchResults:
    """The first `limit` of `found` (in the search's order), with `more` when
    there were others; within the page, each word's group shown by name."""

    def shown(place: int, patient: Patient) -> tuple[Any, ...]:
        word = getattr(patient, "search_word", None)
        if word is None:  # found inside a word: already by name
            return (1, place)
        name = (patient.last_name.casefold(), patient.first_name.casefold(), patient.pk)
        return (0, word, *name)

    page = PatientSearchResults(
        patient for _place, patient in sorted(enumerate(found[:limit]), key=lambda e: shown(*e))
    )
    page.more = len(found) > limit
    return page


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
    exists and was signed at most the settings' `medical_history_valid_days`
    days before (30 to 365, default 365: a history is taken again every year,
    design.md gate 1; clinic/clinic_settings_rules.py)."""
    if history is None:
        return False
    age = today - timezone.localtime(history.signed_at).date()
    return age <= timedelta(days=clinic_settings.current().medical_history_valid_days)


def _display(history: MedicalHistory, name: str) -> str:
    value = getattr(history, name)
    if isinstance(value, bool):
        return str(_("yes")) if value else str(_("no"))
    if name == "implant_areas":
        labels = dict(TreatmentArea.choices)
        return ", ".join(str(labels.get(a, a)) for a in value) or "—"
    if isinstance(value, date):
        return dates.day(value)
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

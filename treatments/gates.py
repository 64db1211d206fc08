"""The clinical safety gates: what must hold before a session is completed or a
cocktail recorded. One function per gate, each returning its failures.

Each failure carries a sentence for the practitioner, a note in non-clinical
words for reception, and, when waiting would clear it, the earliest moment it
may. Every gate reads its facts from a `GateFacts`, loaded once for one
booking or for a whole calendar week (a fixed number of queries whatever the
number of bookings), so reception's safe-to-treat flag and the practitioner's
gates are the same code over the same facts:

- `booking_gates` (gates 1 to 4): what reception sees on a booking, and the
  first half of every completion; `cases_gates` says the same of many
  bookings at once (a calendar week) over one `GateFacts`;
- `session_gates` (gates 1 to 8): what completing a session requires.

The calendar keeps a week's flags (rendered) in the cache until a fact they
read changes (`treatments.selectors.calendar_cache`): that is for display
only, and this module stays the one place the rules are written. No service
reads the cache: booking, completing a session and recording a cocktail judge
every write through these gates on the facts loaded at that moment.

The rules and their sources: the contraindications and cautions come from
`patients.screening` (domain.md, "Contraindication screening"); the allergy
test from domain.md, "Allergy test" (read 24 hours after it is given, treat
only after a negative reading); the rest from design.md, "Clinical safety
gates".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import partial
from typing import TypeVar

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.contrib.postgres.aggregates import ArrayAgg
from django.db import connection
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from clinic import clinic_settings, dates
from clinic.localtime import clinic_zone, local_instant
from consent.models import ConsentFormVersion, ConsentWithdrawal, SignedConsent
from consent.selectors import consent_state_from
from patients.models import MedicalHistory, Patient, TreatmentArea
from patients.screening import Finding, Severity, screen
from patients.selectors import history_is_valid
from treatments.models import (
    DAY_OF_FIELDS,
    AllergyResult,
    AllergyTest,
    Batch,
    BatchStatus,
    Booking,
    Ingredient,
    PatientAllergy,
    Product,
    Protocol,
)

# The clinic's settings (the validity windows) read once per evaluation,
# however many readings and histories it judges (clinic/clinic_settings.py).
_settings_read_once = clinic_settings.read_once


class GateFailure:
    """One reason treatment cannot go ahead.

    `sentence` (for the practitioner) may be given as a callable returning it:
    it is then written the first time it is read, in the language and time
    zone active then. Reception's flags read only `reception_note` and
    `earliest`, so a calendar week does not format a date or translate a
    sentence it never shows. Two failures are equal when their gate, sentence,
    note and earliest moment are."""

    __slots__ = ("_sentence", "earliest", "gate", "reception_note")

    def __init__(
        self,
        gate: int,
        sentence: str | Callable[[], str],
        reception_note: str,  # for reception: no clinical detail
        earliest: datetime | None = None,  # when waiting would clear it
    ) -> None:
        self.gate = gate
        self._sentence = sentence
        self.reception_note = reception_note
        self.earliest = earliest

    @property
    def sentence(self) -> str:
        """For the practitioner, in plain words."""
        sentence = self._sentence
        if not isinstance(sentence, str):
            sentence = self._sentence = sentence()
        return sentence

    def _key(self) -> tuple[int, str, str, datetime | None]:
        return (self.gate, self.sentence, self.reception_note, self.earliest)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GateFailure):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        gate, sentence, note, earliest = self._key()
        return f"GateFailure({gate!r}, {sentence!r}, {note!r}, {earliest!r})"


def _day(day: date) -> str:
    return dates.day(day)


def _moment(moment: datetime) -> str:
    # As safe-to-treat writes its earliest moment, so one sentence can say it once.
    return dates.day_or_day_time(moment)


@dataclass(frozen=True, slots=True)
class _Words:
    """Reception's notes of gates 1 to 4 in the active language, and the
    clinic's time zone: looked up once for a whole week of bookings rather
    than for every failure."""

    history_needed: str
    history_out_of_date: str
    not_for_now: str
    cannot_have: str
    test_needed: str
    reading_due: str  # with %(when)s
    zone: tzinfo


def _words() -> _Words:
    return _Words(
        history_needed=_("medical history needed"),
        history_out_of_date=_("medical history out of date: needs taking again"),
        not_for_now=_("cannot be treated for now: see the practitioner"),
        cannot_have=_("cannot have this treatment: see the practitioner"),
        test_needed=_("allergy test needed"),
        reading_due=_("allergy reading due %(when)s"),
        zone=clinic_zone(),
    )


def _start_of(day: date) -> datetime:
    return local_instant(day, time.min)


def ingredients_of(products: Iterable[Product]) -> list[Ingredient]:
    """Every ingredient the given products contain, once each, by name (one query)."""
    ids = [p.pk for p in products]
    if not ids:
        return []
    return list(Ingredient.objects.filter(products__in=ids).distinct().order_by("name"))


# --- The facts, loaded once ---------------------------------------------------------


@dataclass
class GateFacts:
    """What the gates read for a set of patients, consent forms and ingredients.

    Built by `gate_facts_load`; the gates never query on their own. A patient,
    form or ingredient outside the loaded sets reads as "nothing on record".
    """

    # Facts recorded after this moment are left out (a session recorded after
    # it ended is judged on what was known by its end); None: everything.
    known_by: datetime | None = None
    histories: dict[int, MedicalHistory] = field(default_factory=dict)  # latest, by patient
    consent_current: dict[int, ConsentFormVersion] = field(default_factory=dict)  # by form
    signatures: dict[tuple[int, int], SignedConsent] = field(default_factory=dict)
    allergies: dict[tuple[int, int], PatientAllergy] = field(default_factory=dict)
    tests: dict[tuple[int, int], list[AllergyTest]] = field(default_factory=dict)


# What gates 3 and 4 read of a signature and of an allergy test (and
# `consent_state_from`, `ConsentState.sentence`, `_late_note`).
_SIGNATURE_FIELDS = (
    "patient_id",
    "signed_at",
    "version__number",
    "version__form_id",
    "withdrawal__withdrawn_at",
)
_ALLERGY_TEST_FIELDS = (
    "patient_id",
    "given_at",
    "entered_at",
    "late_entry_reason",
    "read_due_at",
    "result",
    "read_at",
)


def gate_facts_load(
    *,
    patient_ids: Iterable[int],
    consent_form_ids: Iterable[int | None],
    ingredient_ids: Iterable[int],
    known_by: datetime | None = None,
) -> GateFacts:
    """Load every fact gates 1 to 4 read for these patients, consent forms and
    ingredients: five queries whatever their number (fewer when a set is empty).
    With `known_by` (aware), only what was recorded by then counts: histories,
    signatures and withdrawals, published versions, allergies, allergy tests
    and their readings."""
    patients = set(patient_ids)
    forms = {pk for pk in consent_form_ids if pk is not None}
    wanted = set(ingredient_ids)
    facts = GateFacts(known_by=known_by)
    if not patients:
        return facts
    by = Q() if known_by is None else Q(signed_at__lte=known_by)
    for history in (
        MedicalHistory.objects.filter(by, patient_id__in=patients)
        .order_by("patient_id", "-signed_at", "-id")
        .distinct("patient_id")
    ):
        facts.histories[history.patient_id] = history
    if forms:
        for version in (
            ConsentFormVersion.objects.filter(
                Q() if known_by is None else Q(published_at__lte=known_by),
                form_id__in=forms,
                published_at__isnull=False,
            )
            .select_related("form")
            .order_by("form_id", "-number")
        ):
            facts.consent_current.setdefault(version.form_id, version)
        for signed in (
            SignedConsent.objects.filter(by, patient_id__in=patients, version__form_id__in=forms)
            .select_related("version", "withdrawal")
            # Not the signed text, its sections or the version's texts: a week
            # of signatures would carry the whole consent form hundreds of times.
            .only(*_SIGNATURE_FIELDS)
            # Only the latest signature per patient and form counts.
            .order_by("patient_id", "version__form_id", "-signed_at", "-id")
            .distinct("patient_id", "version__form_id")
        ):
            facts.signatures.setdefault((signed.patient_id, signed.version.form_id), signed)
    if wanted:
        for allergy in PatientAllergy.objects.filter(
            Q() if known_by is None else Q(recorded_at__lte=known_by),
            patient_id__in=patients,
            ingredient_id__in=wanted,
        ):
            facts.allergies[(allergy.patient_id, allergy.ingredient_id)] = allergy
        tests: dict[tuple[int, int], list[AllergyTest]] = defaultdict(list)
        # One row and one instance per test, with the wanted ingredients it
        # tested: a row per ingredient would read its moments again for each.
        for test_id, tested, *values in (
            AllergyTest.objects.filter(
                Q() if known_by is None else Q(entered_at__lte=known_by),
                patient_id__in=patients,
                ingredients__in=wanted,
            )
            .annotate(tested=ArrayAgg("ingredients__id"))
            .order_by("-given_at", "-id")
            .values_list("id", "tested", *_ALLERGY_TEST_FIELDS)
        ):
            test = AllergyTest.from_db(None, ["id", *_ALLERGY_TEST_FIELDS], [test_id, *values])
            for ingredient_id in tested:
                tests[(test.patient_id, ingredient_id)].append(test)
        facts.tests = dict(tests)
    return facts


def gate_facts_counted_from(*, patient_ids: Iterable[int], after: datetime) -> datetime | None:
    """The first moment later than `after` (aware) at which facts loaded by
    `gate_facts_load(known_by=after)` for these patients would read
    differently without any write: the earliest moment, after `after`, of a
    history, signature, withdrawal, allergy, allergy test or reading of these
    patients, or of a consent version being published (every moment that
    `gate_facts_load` and the gates compare with `known_by`). None: nothing
    recorded for later. The services stamp each of them with the moment of
    the write, so in practice only a clock set back leaves one ahead; a
    result kept for display (the calendar's cache) is kept no later than
    this. One query (none without patients). Raises nothing."""
    patients = sorted(set(patient_ids))
    if not patients:
        return None
    tables = {
        "history": MedicalHistory._meta.db_table,
        "version": ConsentFormVersion._meta.db_table,
        "signed": SignedConsent._meta.db_table,
        "withdrawal": ConsentWithdrawal._meta.db_table,
        "allergy": PatientAllergy._meta.db_table,
        "test": AllergyTest._meta.db_table,
    }
    # Every published version counts, whichever forms are read: a superset
    # only ends the result sooner.
    sql = """
        SELECT LEAST(
            (SELECT min(signed_at) FROM {history}
             WHERE patient_id = ANY(%(patients)s) AND signed_at > %(after)s),
            (SELECT min(published_at) FROM {version} WHERE published_at > %(after)s),
            (SELECT min(signed_at) FROM {signed}
             WHERE patient_id = ANY(%(patients)s) AND signed_at > %(after)s),
            (SELECT min(w.withdrawn_at) FROM {withdrawal} w
             JOIN {signed} s ON s.id = w.signed_consent_id
             WHERE s.patient_id = ANY(%(patients)s) AND w.withdrawn_at > %(after)s),
            (SELECT min(recorded_at) FROM {allergy}
             WHERE patient_id = ANY(%(patients)s) AND recorded_at > %(after)s),
            (SELECT min(entered_at) FROM {test}
             WHERE patient_id = ANY(%(patients)s) AND entered_at > %(after)s),
            (SELECT min(read_at) FROM {test}
             WHERE patient_id = ANY(%(patients)s) AND read_at > %(after)s)
        )
    """.format(**{name: connection.ops.quote_name(table) for name, table in tables.items()})  # noqa: S608 (the models' own table names; the values are parameters)
    with connection.cursor() as cursor:
        cursor.execute(sql, {"patients": patients, "after": after})
        row = cursor.fetchone()
    return row[0] if row else None


def _facts_for(
    patient: Patient,
    *,
    protocol: Protocol | None = None,
    ingredients: Sequence[Ingredient] = (),
    known_by: datetime | None = None,
) -> GateFacts:
    return gate_facts_load(
        patient_ids=[patient.pk],
        consent_form_ids=[protocol.consent_form_id] if protocol is not None else [],
        ingredient_ids=[i.pk for i in ingredients],
        known_by=known_by,
    )


# --- Gate 1: medical history ----------------------------------------------------------


def _history_out_of_date(signed_at: datetime) -> str:
    return _(
        "The medical history of %(day)s is older than %(days)s days: take it again before treating."
    ) % {
        "day": _day(timezone.localtime(signed_at).date()),
        "days": clinic_settings.current().medical_history_valid_days,
    }


def _history_failures(
    history: MedicalHistory | None, *, today: date, words: _Words
) -> list[GateFailure]:
    if history is None:
        return [
            GateFailure(
                1,
                lambda: _("No medical history on record: take one before treating."),
                words.history_needed,
            )
        ]
    if not history_is_valid(history, today=today):
        return [
            GateFailure(
                1,
                partial(_history_out_of_date, history.signed_at),
                words.history_out_of_date,
            )
        ]
    return []


@_settings_read_once
def gate_medical_history(
    *, patient: Patient, at: datetime, facts: GateFacts | None = None
) -> list[GateFailure]:
    """Gate 1: a medical history signed within the clinic's validity window
    (the settings' `medical_history_valid_days`, 30 to 365 local calendar
    days) of `at` (aware). Source: design.md, gate 1; the bound's reason in
    clinic/clinic_settings_rules.py."""
    facts = facts or _facts_for(patient)
    return _history_failures(
        facts.histories.get(patient.pk), today=timezone.localdate(at), words=_words()
    )


# --- Gate 2: absolute contraindications -----------------------------------------------


def _findings(history: MedicalHistory, *, today: date, zone: tzinfo | None = None) -> list[Finding]:
    """Screening of the history for a session on `today` (the clinic's date of
    its moment): answers that describe only the day the history was taken
    count on that day alone."""
    return screen(
        history,
        today=today,
        answered_on=timezone.localdate(history.signed_at, zone),
    )


def _contraindication_failures(
    history: MedicalHistory | None, *, today: date, words: _Words
) -> list[GateFailure]:
    if history is None:
        return []  # gate 1 says so
    failures = []
    for finding in _findings(history, today=today, zone=words.zone):
        if finding.severity != Severity.ABSOLUTE:
            continue
        failures.append(
            GateFailure(
                2,
                finding.reason,
                finding.reception_note or words.not_for_now,
                _start_of(finding.lifts_on) if finding.lifts_on else None,
            )
        )
    return failures


def gate_contraindications(
    *, patient: Patient, at: datetime, facts: GateFacts | None = None
) -> list[GateFailure]:
    """Gate 2: absolute findings of the current history block; cautions are
    gate 7. Source: domain.md, "Contraindication screening"."""
    facts = facts or _facts_for(patient)
    return _contraindication_failures(
        facts.histories.get(patient.pk), today=timezone.localdate(at), words=_words()
    )


def cautions_for(
    *, history: MedicalHistory | None, areas: Collection[str], at: datetime
) -> list[Finding]:
    """The cautions of the current history that concern a session at `at`
    (aware) treating `areas` (TreatmentArea codes), in screening order. A caution
    for other areas (cold sores when only the scalp is treated) is left out."""
    if history is None:
        return []
    return [
        finding
        for finding in _findings(history, today=timezone.localdate(at))
        if finding.severity == Severity.CAUTION and finding.concerns(areas)
    ]


def area_labels(codes: Iterable[str]) -> str:
    """Area codes as the practitioner reads them ("Face, Under-eye"); "Every area" if none."""
    labels = dict(TreatmentArea.choices)
    names = [str(labels.get(code, code)) for code in codes]
    return ", ".join(names) if names else _("Every area")


# How a caution that concerns some areas only is put at the chair: one
# sentence naming the areas treated today (%(areas)s) and the reason. The
# screening's own sentence (kept in the record when acknowledged) names the
# areas in general ("the face"); beside today's areas it would read as a
# second, different list.
_CAUTION_FOR_AREAS = {
    "cold_sores": gettext_lazy(
        "The patient has had cold sores, and injections in the %(areas)s can bring on an outbreak."
    ),
}


def caution_wording(caution: Finding) -> tuple[str, str]:
    """The sentence putting `caution` to the practitioner, split where the
    areas it concerns today go (`area_labels`): (before, after). A caution for
    every area is its screening sentence alone: (reason, "")."""
    if not caution.areas:
        return str(caution.reason), ""
    worded = _CAUTION_FOR_AREAS.get(caution.code)
    # A caution for some areas not worded here yet: its reason, then the areas.
    text = str(worded) if worded is not None else "%(reason)s " + _("It concerns the %(areas)s.")
    # A mark no translation or reason holds, to split the sentence around the areas.
    before, _mark, after = (text % {"reason": caution.reason, "areas": "\x00"}).partition("\x00")
    return before, after


def caution_sentence(caution: Finding, areas: Collection[str]) -> str:
    """`caution` in one sentence (`caution_wording`), naming the treated
    `areas` (TreatmentArea codes) it concerns, or all it concerns if none is."""
    before, after = caution_wording(caution)
    if not caution.areas:
        return before
    return before + area_labels(sorted(caution_areas(caution, areas) or caution.areas)) + after


# --- Gate 3: consent ------------------------------------------------------------------


def _consent_failures(patient_id: int, form_id: int, facts: GateFacts) -> list[GateFailure]:
    state = consent_state_from(
        current=facts.consent_current.get(form_id),
        latest=facts.signatures.get((patient_id, form_id)),
        as_of=facts.known_by,
    )
    if state.is_valid:
        return []
    return [GateFailure(3, lambda: state.sentence, state.reception_note)]


def gate_consent(
    *, patient: Patient, protocol: Protocol, at: datetime, facts: GateFacts | None = None
) -> list[GateFailure]:
    """Gate 3: signed, on the current version of the protocol's consent form, and
    not withdrawn. Source: domain.md, "Consent"."""
    facts = facts or _facts_for(patient, protocol=protocol)
    return _consent_failures(patient.pk, protocol.consent_form_id, facts)


# --- Gate 4: allergy tests ------------------------------------------------------------


@_settings_read_once
def negative_reading_valid_until(read_at: datetime) -> datetime:
    """The last moment (UTC) a negative reading taken at `read_at` allows
    treatment: the settings' `allergy_test_valid_months` (1 to 6) calendar
    months later, counted on the clinic's clock (a reading at 10:00 in May is
    valid to 10:00 in November for six months, whatever the clock change in
    between)."""
    local = timezone.localtime(read_at)
    months = clinic_settings.current().allergy_test_valid_months
    return (local + relativedelta(months=months)).astimezone(UTC)


def _negative_valid_at(read_at: datetime, at: datetime) -> bool:
    """Whether a negative reading taken at `read_at` still allows treatment at
    `at`: `negative_reading_valid_until`, without its calendar sum for the
    readings clearly inside it. Any N calendar months on the clinic's clock
    last at least 28 x N days (Jan 31 + 1 month is Feb 28), and a clock change
    moves them by less than a day."""
    months = clinic_settings.current().allergy_test_valid_months
    if at - read_at < timedelta(days=28 * months - 1):
        return True
    return at <= negative_reading_valid_until(read_at)


def _late_note(test: AllergyTest) -> str:
    if not test.is_late_entry:
        return ""
    return " " + _(
        "It was entered late (given %(given)s, entered %(entered)s: “%(reason)s”), "
        "so the 24 hours run from its entry."
    ) % {
        "given": _moment(test.given_at),
        "entered": _moment(test.entered_at),
        "reason": test.late_entry_reason,
    }


# The practitioner's sentences of gate 4, written only when read (`GateFailure`).


def _positive_sentence(name: str, read_at: datetime) -> str:
    return _("Allergic to %(name)s: positive test read on %(day)s.") % {
        "name": name,
        "day": _day(timezone.localtime(read_at).date()),
    }


def _recorded_sentence(name: str, recorded_at: datetime) -> str:
    return _("Allergic to %(name)s: recorded on %(day)s.") % {
        "name": name,
        "day": _day(timezone.localtime(recorded_at).date()),
    }


def _pending_sentence(name: str, test: AllergyTest) -> str:
    return _(
        "The allergy test for %(name)s has not been read yet: it can be read from %(when)s."
    ) % {"name": name, "when": _moment(test.read_due_at)} + _late_note(test)


def _expired_sentence(name: str, read_at: datetime) -> str:
    return _(
        "The negative allergy test for %(name)s from %(day)s is older than "
        "%(months)s months: test again."
    ) % {
        "name": name,
        "day": _day(timezone.localtime(read_at).date()),
        "months": clinic_settings.current().allergy_test_valid_months,
    }


def _untested_sentence(name: str) -> str:
    return _("No allergy test for %(name)s.") % {"name": name}


def _allergy_failures(
    patient_id: int,
    ingredients: Sequence[Ingredient],
    *,
    at: datetime,
    facts: GateFacts,
    words: _Words,
) -> list[GateFailure]:
    failures = []
    # A reading counts once taken, and only if taken by the time facts are known.
    cutoff = facts.known_by or at
    for ingredient in sorted({i.pk: i for i in ingredients}.values(), key=lambda i: i.name.lower()):
        name = ingredient.name
        its_tests = facts.tests.get((patient_id, ingredient.pk), [])
        positive = next(
            (t for t in its_tests if t.result == AllergyResult.POSITIVE and t.read_at), None
        )
        if positive is not None:
            assert positive.read_at is not None
            failures.append(
                GateFailure(
                    4,
                    partial(_positive_sentence, name, positive.read_at),
                    words.cannot_have,
                )
            )
            continue
        allergy = facts.allergies.get((patient_id, ingredient.pk))
        if allergy is not None:
            failures.append(
                GateFailure(
                    4,
                    partial(_recorded_sentence, name, allergy.recorded_at),
                    words.cannot_have,
                )
            )
            continue
        negatives = [
            t
            for t in its_tests
            if t.result == AllergyResult.NEGATIVE
            and t.read_at is not None
            and t.read_due_at <= t.read_at <= cutoff
        ]
        if any(t.read_at is not None and _negative_valid_at(t.read_at, at) for t in negatives):
            continue
        pending = sorted(
            (t for t in its_tests if t.read_at is None or t.read_at > cutoff),
            key=lambda t: t.read_due_at,
        )
        if pending:
            test = pending[0]
            due = test.read_due_at
            failures.append(
                GateFailure(
                    4,
                    partial(_pending_sentence, name, test),
                    words.reading_due % {"when": _moment(due)},
                    due,
                )
            )
        elif negatives:
            assert negatives[0].read_at is not None
            failures.append(
                GateFailure(
                    4,
                    partial(_expired_sentence, name, negatives[0].read_at),
                    words.test_needed,
                )
            )
        else:
            failures.append(
                GateFailure(
                    4,
                    partial(_untested_sentence, name),
                    words.test_needed,
                )
            )
    return failures


@_settings_read_once
def gate_allergy(
    *,
    patient: Patient,
    ingredients: Sequence[Ingredient],
    at: datetime,
    facts: GateFacts | None = None,
) -> list[GateFailure]:
    """Gate 4: every ingredient needs a valid negative reading, and no allergy ever.

    A recorded allergy or any positive reading blocks for good. A negative
    reading counts when taken no earlier than its `read_due_at` (24 hours
    after the test was given or entered, whichever is later) and for
    the settings' `allergy_test_valid_months` (1 to 6) calendar months on the
    clinic's clock. Source: domain.md, "Allergy test"; the bound's reason in
    clinic/clinic_settings_rules.py.
    """
    facts = facts or _facts_for(patient, ingredients=ingredients)
    return _allergy_failures(patient.pk, ingredients, at=at, facts=facts, words=_words())


# --- Gate 5: batches ------------------------------------------------------------------


def gate_batches(*, batches: Iterable[Batch], on: date) -> list[GateFailure]:
    """Gate 5: no batch that is recalled, or expired before `on` (a local date).
    `Batch.is_usable_on` asks this gate. Source: domain.md, "batches (lots)
    with expiry dates"."""
    failures = []
    for batch in batches:
        label = _("%(product)s lot %(lot)s") % {
            "product": batch.product.name,
            "lot": batch.lot_number,
        }
        if batch.status != BatchStatus.IN_STOCK:
            failures.append(
                GateFailure(
                    5,
                    _("%(batch)s was recalled: do not use it.") % {"batch": label},
                    _("a product needs replacing"),
                )
            )
        elif batch.expiry_date < on:
            failures.append(
                GateFailure(
                    5,
                    _("%(batch)s expired on %(day)s: do not use it.")
                    % {"batch": label, "day": _day(batch.expiry_date)},
                    _("a product needs replacing"),
                )
            )
    return failures


# --- Gate 6: the day-of-treatment answers --------------------------------------------


def _day_of_sentences() -> dict[str, str]:
    return {
        "unwell": _(
            "The patient is unwell today (a cold counts): postpone the session until "
            "they have recovered."
        ),
        "pregnant": _(
            "The patient is or may be pregnant: no mesotherapy during pregnancy "
            "or while it is possible."
        ),
        "breastfeeding": _("The patient is breastfeeding: no mesotherapy while breastfeeding."),
        "skin_infection": _(
            "A skin infection in or near an area to treat today: do not inject until it "
            "has cleared."
        ),
        "active_acne": _(
            "Active acne in or near an area to treat today: do not inject until it has settled."
        ),
        "cold_sore": _(
            "A cold sore in or near an area to treat today: do not inject until it has healed."
        ),
    }


def gate_day_of(
    *, answers: Mapping[str, bool | None] | None, history: MedicalHistory | None
) -> list[GateFailure]:
    """Gate 6: the day-of-treatment questions (DAY_OF_QUESTIONS) answered today,
    every one "no". The yearly history never answers for today: pregnancy, a
    cold or a cold sore are asked at every session. A new medicine or allergy
    since the history sends the practitioner to take a new history first.
    `answers` maps each field to True, False or None (not answered). Source:
    domain.md, "Contraindication screening"; design.md, gate 6."""
    answers = answers or {}
    missing = [name for name in DAY_OF_FIELDS if answers.get(name) is None]
    if missing:
        return [
            GateFailure(
                6,
                _(
                    "Ask the patient the day-of-treatment questions and record every answer: "
                    "a blank is not a no."
                ),
                _("day-of-treatment questions not asked yet"),
            )
        ]
    failures = []
    sentences = _day_of_sentences()
    for name in DAY_OF_FIELDS:
        if not answers.get(name):
            continue
        if name == "new_medicine_or_allergy":
            since = (
                _("of %(day)s") % {"day": _day(timezone.localtime(history.signed_at).date())}
                if history is not None
                else ""
            )
            sentence = _(
                "The patient has a new medicine or a new allergy since the medical history "
                "%(since)s: take a new medical history before treating."
            ) % {"since": since}
        else:
            sentence = sentences[name]
        failures.append(GateFailure(6, " ".join(sentence.split()), _("see the practitioner")))
    return failures


# --- Gate 7: cautions acknowledged ---------------------------------------------------


def caution_areas(caution: Finding, areas: Collection[str]) -> frozenset[str]:
    """The treated `areas` (TreatmentArea codes) that `caution` concerns: the
    ones shown beside it, and kept with its acknowledgement. Empty for a
    caution that concerns every area."""
    return frozenset(caution.areas.intersection(areas))


def cautions_acknowledging(
    cautions: Iterable[Finding], *, areas: Collection[str]
) -> dict[str, frozenset[str]]:
    """Every one of `cautions` acknowledged for the areas it concerns among
    `areas`, as gate 7 reads acknowledgements: for a caller that has shown
    each of them, with its areas, and had it confirmed."""
    return {caution.code: caution_areas(caution, areas) for caution in cautions}


def gate_cautions(
    *,
    cautions: Sequence[Finding],
    acknowledged: Mapping[str, Collection[str]],
    areas: Collection[str] = (),
) -> list[GateFailure]:
    """Gate 7: every caution that concerns today's areas (`cautions_for`;
    `areas`, TreatmentArea codes, names the ones treated) acknowledged by the
    practitioner for exactly the areas it concerns today (`acknowledged`:
    caution code -> the area codes shown beside it when it was ticked;
    `caution_areas`). A tick given when the caution was shown for fewer or
    other areas (an area added to the session since) does not count: the
    practitioner confirms each caution knowing which areas it concerns.
    Source: domain.md, "Cautions (treat with care, warn)"."""
    failures = []
    for caution in cautions:
        concerned = caution_areas(caution, areas)
        # The caution as the form words it, then what to do: no sentence inside another.
        said = caution_sentence(caution, areas)
        if caution.code not in acknowledged:
            sentence = _(
                "Not acknowledged yet: %(caution)s Tick it once the patient is warned."
            ) % {"caution": said}
        elif frozenset(acknowledged[caution.code]) != concerned:
            before = sorted(acknowledged[caution.code])
            # Without areas: a tick sent by an older page.
            when = area_labels(before) if before else _("no area named")
            sentence = _(
                "%(caution)s It was acknowledged for %(before)s: read it again and tick it."
            ) % {"before": when, "caution": said}
        else:
            continue
        failures.append(GateFailure(7, sentence, _("see the practitioner")))
    return failures


# --- Gate 8: the session has begun ----------------------------------------------------


def completion_opens_at(starts_at: datetime) -> datetime:
    """The first moment (aware) a session booked at `starts_at` may be completed:
    SESSION_COMPLETE_EARLY_MINUTES before its start, never on an earlier day."""
    early = starts_at - timedelta(minutes=settings.SESSION_COMPLETE_EARLY_MINUTES)
    return max(early, _start_of(timezone.localdate(starts_at)))


def gate_timing(*, starts_at: datetime, at: datetime) -> list[GateFailure]:
    """Gate 8: a session is completed from shortly before its booked start
    (`completion_opens_at`), never before: a future session has not happened.
    Source: design.md, gate 8."""
    opens = completion_opens_at(starts_at)
    if at >= opens:
        return []
    return [
        GateFailure(
            8,
            _(
                "This session is booked for %(start)s: it can be completed from %(opens)s, "
                "not before it has happened."
            )
            % {"start": _moment(starts_at), "opens": _moment(opens)},
            _("session not started yet"),
            opens,
        )
    ]


# --- All of them ----------------------------------------------------------------------


def _gates_1_to_4(
    patient_id: int,
    consent_form_id: int,
    ingredients: Sequence[Ingredient],
    at: datetime,
    facts: GateFacts,
    words: _Words,
) -> list[GateFailure]:
    history = facts.histories.get(patient_id)
    today = timezone.localdate(at, words.zone)
    return [
        *_history_failures(history, today=today, words=words),
        *_contraindication_failures(history, today=today, words=words),
        *_consent_failures(patient_id, consent_form_id, facts),
        *_allergy_failures(patient_id, ingredients, at=at, facts=facts, words=words),
    ]


@_settings_read_once
def booking_gates(
    *,
    booking: Booking,
    ingredients: Sequence[Ingredient],
    at: datetime,
    facts: GateFacts,
) -> list[GateFailure]:
    """Gates 1 to 4 for one booking at `at` (aware), from `facts` (no query):
    reception's safe-to-treat flag and the first half of `session_gates`."""
    return _gates_1_to_4(
        booking.patient_id, booking.protocol.consent_form_id, ingredients, at, facts, _words()
    )


K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class GateCase:
    """One booking as gates 1 to 4 read it, without the booking itself: whose
    it is, the consent form its protocol requires, the ingredients of the
    cocktail the session will start from, and the moment judged (aware)."""

    patient_id: int
    consent_form_id: int
    ingredients: Sequence[Ingredient]
    at: datetime


@_settings_read_once
def cases_gates(*, cases: Mapping[K, GateCase], facts: GateFacts) -> dict[K, list[GateFailure]]:
    """Gates 1 to 4 for many bookings over the same `facts` (no query), keyed
    as `cases` is (a booking id): for each, exactly what `booking_gates` says
    of that booking, through the same rules. The calendar's week and the
    patient's page judge every booking shown with it. Raises nothing."""
    words = _words()
    return {
        key: _gates_1_to_4(
            case.patient_id, case.consent_form_id, case.ingredients, case.at, facts, words
        )
        for key, case in cases.items()
    }


@_settings_read_once
def gates_check(
    *,
    patient: Patient,
    protocol: Protocol,
    ingredients: Sequence[Ingredient],
    batches: Iterable[Batch],
    at: datetime,
) -> list[GateFailure]:
    """Gates 1 to 5 for `patient` treated with `protocol`, these ingredients and
    batches, at `at` (aware). Empty: those gates pass. Five queries."""
    facts = _facts_for(patient, protocol=protocol, ingredients=ingredients)
    history = facts.histories.get(patient.pk)
    words = _words()
    today = timezone.localdate(at, words.zone)
    return [
        *_history_failures(history, today=today, words=words),
        *_contraindication_failures(history, today=today, words=words),
        *_consent_failures(patient.pk, protocol.consent_form_id, facts),
        *_allergy_failures(patient.pk, ingredients, at=at, facts=facts, words=words),
        *gate_batches(batches=batches, on=today),
    ]


@dataclass(frozen=True)
class SessionGates:
    """The outcome of `session_gates`: the failures, and the cautions that
    applied (to be acknowledged, and kept in the record when completed)."""

    failures: list[GateFailure]
    cautions: list[Finding]
    history: MedicalHistory | None


@_settings_read_once
def session_gates(
    *,
    booking: Booking,
    batches: Sequence[Batch],
    areas: Collection[str],
    day_of: Mapping[str, bool | None] | None,
    acknowledged: Mapping[str, Collection[str]],
    at: datetime,
) -> SessionGates:
    """Every gate, 1 to 8, for completing `booking` at `at` (aware) with these
    batches on these areas (TreatmentArea codes), the day-of answers
    (`day_of`, None when not asked yet) and the cautions acknowledged (caution
    code -> the area codes it was shown for when ticked: `gate_cautions`).

    Gates 1 to 5 judge the treatment as it happened: at the booked start once
    it has passed (a reading that expires while the patient is in the chair
    does not undo the session), on the facts recorded by the booked end (a
    consent signed a month after a session never clears it). Five or six
    queries."""
    judged_at = min(at, booking.starts_at)
    known_by = min(at, booking.ends_at)
    products = list({b.product_id: b.product for b in batches}.values())
    ingredients = ingredients_of(products)
    facts = _facts_for(
        booking.patient, protocol=booking.protocol, ingredients=ingredients, known_by=known_by
    )
    history = facts.histories.get(booking.patient_id)
    cautions = cautions_for(history=history, areas=areas, at=judged_at)
    failures = [
        *booking_gates(booking=booking, ingredients=ingredients, at=judged_at, facts=facts),
        *gate_batches(batches=batches, on=timezone.localdate(judged_at)),
        *gate_day_of(answers=day_of, history=history),
        *gate_cautions(cautions=cautions, acknowledged=acknowledged, areas=areas),
        *gate_timing(starts_at=booking.starts_at, at=at),
    ]
    return SessionGates(failures=failures, cautions=cautions, history=history)

"""Contraindication screening of one medical-history questionnaire.

One table, RULES, says what stops or complicates a mesotherapy session and
why; `screen()` walks it. The module is pure (no database, no model import) so
the same rules run on a saved `MedicalHistory`, on a form's cleaned data
wrapped in an object, or on a test double: anything shaped like
`HistoryAnswers`.

A finding carries two texts: `reason`, for the practitioner, names the
condition; `reception_note`, for the receptionist, never does, because the
reception takes no clinical decisions and must not read health data.
"""

from __future__ import annotations

import calendar
import datetime
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from django.db import models
from django.utils.functional import Promise
from django.utils.text import Truncator
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from clinic import dates

# Isotretinoin impairs skin healing long after the last dose.
ISOTRETINOIN_WAIT_MONTHS = 18
# Typed text quoted in a reason is cut so one long answer cannot swamp the list.
QUOTE_MAX_CHARS = 80


class HistoryAnswers(Protocol):
    """The answers screening reads; `patients.models.MedicalHistory` has these."""

    # Conditions
    diabetes: bool
    cancer_history: bool
    autoimmune_disease: bool
    cardiac_disease: bool
    bleeding_disorder: bool
    epilepsy: bool
    keloid_scarring: bool
    scleroderma: bool
    chronic_condition_uncontrolled: bool  # poorly controlled, or impairs healing
    chronic_condition_details: str
    # Medicines
    anticoagulants: bool  # aspirin, warfarin, other anticoagulants or antiplatelets
    steroids: bool
    isotretinoin_last_dose: datetime.date | None  # None: never taken
    bruising_supplements: bool
    # Allergies
    allergy_ingredients: str
    allergy_local_anaesthetic: bool
    allergy_other: str  # recorded for the practitioner; no finding by itself
    # Pregnancy
    pregnant: bool
    breastfeeding: bool
    # Skin today
    skin_infection: bool
    active_acne: bool
    cold_sores_history: bool
    # Permanent injectable implants, by treatment area code ("face", "neck", ...)
    implant_areas: list[str]
    # The day of the session
    unwell_today: bool
    important_event_soon: bool
    alcohol_around_session: bool


class Severity(models.TextChoices):
    ABSOLUTE = "absolute", _("Do not treat")
    CAUTION = "caution", _("Caution")


@dataclass(frozen=True)
class Finding:
    code: str  # stable machine code, e.g. "isotretinoin"
    severity: Severity
    reason: str  # one plain sentence for the practitioner
    lifts_on: datetime.date | None  # when time-bound: first day treatment is possible
    reception_note: str  # non-clinical words for reception; "" for cautions
    # Treatment-area codes a caution concerns; empty: every area.
    areas: frozenset[str] = frozenset()

    def concerns(self, areas: Iterable[str]) -> bool:
        """Does this finding apply to a session treating `areas` (area codes)?"""
        return not self.areas or bool(self.areas.intersection(areas))


@dataclass(frozen=True)
class Rule:
    code: str
    severity: Severity
    applies: Callable[[HistoryAnswers, datetime.date], bool]
    reason: Callable[[HistoryAnswers, datetime.date], str]
    lifts_on: Callable[[HistoryAnswers, datetime.date], datetime.date | None] | None = None
    # True: the answer describes the day the questionnaire was taken (unwell
    # today, an active infection or acne), so it says nothing about a later
    # day; the day-of-treatment check asks it again at every session. Cautions
    # are never day-bound: a warning costs a tick, a missed one a bruise.
    day_bound: bool = False
    # Cautions that concern only some treatment areas (area codes); empty: all.
    areas: frozenset[str] = frozenset()


# --- Helpers --------------------------------------------------------------------


def add_months(day: datetime.date, months: int) -> datetime.date:
    """`day` plus calendar months, the day clamped to the month's end (31 Aug + 6 = 28/29 Feb).

    A date past the calendar's end gives `date.max`: a typo such as year 9999
    must not crash the screening, and the finding still holds.
    """
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    if year > datetime.MAXYEAR:
        return datetime.date.max
    last_day = calendar.monthrange(year, month + 1)[1]
    return datetime.date(year, month + 1, min(day.day, last_day))


def format_day(day: datetime.date) -> str:
    """A day in the clinic's format (`clinic.dates.day`): "Tue 4 Jan 2028",
    the month by name so it cannot be misread, the year when not this one."""
    return dates.day(day)


def _quote(text: str) -> str:
    # One line, shortened: the reason is a single sentence in a list.
    return Truncator(" ".join(text.split())).chars(QUOTE_MAX_CHARS)


def _says(message: Promise) -> Callable[[HistoryAnswers, datetime.date], str]:
    """A reason that does not depend on the answers, translated when screened."""
    return lambda history, today: str(message)


# --- Isotretinoin ---------------------------------------------------------------


def _isotretinoin_lifts_on(history: HistoryAnswers, today: datetime.date) -> datetime.date | None:
    last_dose = history.isotretinoin_last_dose
    if last_dose is None:
        return None
    # A last dose in the future means the course is still running: the wait
    # counts from that planned last dose.
    return add_months(last_dose, ISOTRETINOIN_WAIT_MONTHS)


def _isotretinoin_applies(history: HistoryAnswers, today: datetime.date) -> bool:
    lifts_on = _isotretinoin_lifts_on(history, today)
    return lifts_on is not None and lifts_on > today


def _isotretinoin_reason(history: HistoryAnswers, today: datetime.date) -> str:
    last_dose = history.isotretinoin_last_dose
    if last_dose is None:  # never taken: the rule does not apply
        return ""
    lifts_on = add_months(last_dose, ISOTRETINOIN_WAIT_MONTHS)
    dates = {"last_dose": format_day(last_dose), "lifts_on": format_day(lifts_on)}
    if last_dose > today:
        return (
            gettext(
                "Isotretinoin is being taken now (last dose planned for %(last_dose)s): "
                "skin healing is impaired. Treatment can start on %(lifts_on)s."
            )
            % dates
        )
    return (
        gettext(
            "Isotretinoin was taken within the last 18 months (last dose %(last_dose)s): "
            "skin healing is impaired. Treatment can start on %(lifts_on)s."
        )
        % dates
    )


# --- Answers quoted in the reason -----------------------------------------------


def _allergy_ingredients_reason(history: HistoryAnswers, today: datetime.date) -> str:
    return gettext("Known allergy to an ingredient, as declared: “%(allergy)s”. Do not treat.") % {
        "allergy": _quote(history.allergy_ingredients)
    }


def _implant_areas(history: HistoryAnswers) -> list[str]:
    # Blank and repeated entries are form noise, not areas.
    return list(dict.fromkeys(area.strip() for area in history.implant_areas if area.strip()))


def _implant_reason(history: HistoryAnswers, today: datetime.date) -> str:
    return gettext(
        "A permanent injectable implant is in place (%(areas)s): do not inject these areas."
    ) % {"areas": _quote(", ".join(_implant_areas(history)))}


def _chronic_reason(history: HistoryAnswers, today: datetime.date) -> str:
    details = history.chronic_condition_details.strip()
    if details:
        return gettext(
            "A chronic condition is poorly controlled or impairs healing (“%(details)s”): "
            "do not treat."
        ) % {"details": _quote(details)}
    return gettext("A chronic condition is poorly controlled or impairs healing: do not treat.")


# --- The table ------------------------------------------------------------------

# Short names keep each row of the table to its facts.
A, C = Severity.ABSOLUTE, Severity.CAUTION
# Treatment areas of the face (patients.models.TreatmentArea codes): where
# injections can bring on a cold sore.
FACE_AREAS = frozenset({"face", "under_eye"})

# In the order findings are shown: everything that stops treatment first.
RULES: tuple[Rule, ...] = (
    Rule(
        "pregnancy",
        A,
        lambda h, today: h.pregnant,
        _says(_("The patient is pregnant: no mesotherapy during pregnancy.")),
    ),
    Rule(
        "breastfeeding",
        A,
        lambda h, today: h.breastfeeding,
        _says(_("The patient is breastfeeding: no mesotherapy while breastfeeding.")),
    ),
    Rule(
        "diabetes",
        A,
        lambda h, today: h.diabetes,
        _says(_("Diabetes is declared: do not treat.")),
    ),
    Rule(
        "cancer_history",
        A,
        lambda h, today: h.cancer_history,
        _says(_("A history of cancer is declared: do not treat.")),
    ),
    Rule(
        "autoimmune_disease",
        A,
        lambda h, today: h.autoimmune_disease,
        _says(_("An autoimmune disease is declared: do not treat.")),
    ),
    Rule(
        "cardiac_disease",
        A,
        lambda h, today: h.cardiac_disease,
        _says(_("A cardiac (heart) disease is declared: do not treat.")),
    ),
    Rule(
        "bleeding_disorder",
        A,
        lambda h, today: h.bleeding_disorder,
        _says(_("A bleeding disorder is declared: injections could bleed and bruise badly.")),
    ),
    Rule(
        "anticoagulants",
        A,
        lambda h, today: h.anticoagulants,
        _says(
            _(
                "The patient takes aspirin, warfarin or another anticoagulant or antiplatelet "
                "medicine: injections could bleed and bruise badly."
            )
        ),
    ),
    Rule(
        "steroids",
        A,
        lambda h, today: h.steroids,
        _says(_("The patient takes steroids: do not treat.")),
    ),
    Rule(
        "isotretinoin",
        A,
        _isotretinoin_applies,
        _isotretinoin_reason,
        _isotretinoin_lifts_on,
    ),
    Rule(
        "allergy_ingredient",
        A,
        lambda h, today: bool(h.allergy_ingredients.strip()),
        _allergy_ingredients_reason,
    ),
    Rule(
        "allergy_local_anaesthetic",
        A,
        lambda h, today: h.allergy_local_anaesthetic,
        _says(
            _(
                "Allergy to local anaesthetic is declared: the numbing cream used before "
                "injections cannot be applied. Do not treat."
            )
        ),
    ),
    Rule(
        "active_acne",
        A,
        lambda h, today: h.active_acne,
        _says(_("Active acne: do not inject until it has settled.")),
        day_bound=True,
    ),
    Rule(
        "skin_infection",
        A,
        lambda h, today: h.skin_infection,
        _says(_("A skin infection in or near the area: do not inject until it has cleared.")),
        day_bound=True,
    ),
    Rule(
        "unwell_today",
        A,
        lambda h, today: h.unwell_today,
        # Time-bound, but nobody can date a recovery: no lift date.
        _says(
            _(
                "The patient is unwell today (a cold counts): postpone the session until "
                "they have recovered."
            )
        ),
        day_bound=True,
    ),
    Rule(
        "implant",
        A,
        lambda h, today: bool(_implant_areas(h)),
        _implant_reason,
    ),
    Rule(
        "keloid_scarring",
        A,
        lambda h, today: h.keloid_scarring,
        _says(_("Keloid scarring is declared: injection points could scar. Do not treat.")),
    ),
    Rule(
        "scleroderma",
        A,
        lambda h, today: h.scleroderma,
        _says(_("Scleroderma is declared: do not treat.")),
    ),
    Rule(
        "epilepsy",
        A,
        lambda h, today: h.epilepsy,
        _says(_("Epilepsy is declared: do not treat.")),
    ),
    Rule(
        "chronic_condition",
        A,
        lambda h, today: h.chronic_condition_uncontrolled,
        _chronic_reason,
    ),
    # Cautions: treatment may go ahead, with a warning to the patient.
    Rule(
        "cold_sores",
        C,
        lambda h, today: h.cold_sores_history,
        _says(_("History of cold sores: injections in the face can bring on an outbreak.")),
        areas=FACE_AREAS,
    ),
    Rule(
        "important_event_soon",
        C,
        lambda h, today: h.important_event_soon,
        _says(_("An important event is coming up soon: warn that bruising may still show.")),
    ),
    Rule(
        "bruising_supplements",
        C,
        lambda h, today: h.bruising_supplements,
        _says(
            _(
                "The patient takes supplements or over-the-counter medicines that make "
                "bruising more likely: warn about bruising."
            )
        ),
    ),
    Rule(
        "alcohol_around_session",
        C,
        lambda h, today: h.alcohol_around_session,
        _says(
            _(
                "Alcohol is planned the day before or after the session: advise against it, "
                "as it makes bruising more likely."
            )
        ),
    ),
)


# --- Screening ------------------------------------------------------------------


def _reception_note(severity: Severity, lifts_on: datetime.date | None) -> str:
    # Reception books; it needs to know whether to book, never why not.
    if severity != Severity.ABSOLUTE:
        return ""
    if lifts_on is not None:
        return gettext("not before %(date)s — ask the practitioner") % {
            "date": format_day(lifts_on)
        }
    return gettext("ask the practitioner before booking")


def screen(
    history: HistoryAnswers,
    *,
    today: datetime.date,
    answered_on: datetime.date | None = None,
) -> list[Finding]:
    """The findings for one questionnaire, in the order of RULES.

    `today` is the local date treatment is considered for; `answered_on` the
    local date the questionnaire was signed. Answers that describe only the day
    they were given (unwell today, an active infection or acne) count only
    when `answered_on` is `today` or unknown (a questionnaire being filled
    in): on any later day the day-of-treatment check asks them again
    (domain.md, screening: "being unwell that day").
    """
    findings = []
    for rule in RULES:
        if rule.day_bound and answered_on is not None and answered_on != today:
            continue
        if not rule.applies(history, today):
            continue
        lifts_on = rule.lifts_on(history, today) if rule.lifts_on is not None else None
        findings.append(
            Finding(
                code=rule.code,
                severity=rule.severity,
                reason=rule.reason(history, today),
                lifts_on=lifts_on,
                reception_note=_reception_note(rule.severity, lifts_on),
                areas=rule.areas,
            )
        )
    return findings


def has_absolute(findings: Iterable[Finding]) -> bool:
    """True when at least one finding stops treatment."""
    return any(finding.severity == Severity.ABSOLUTE for finding in findings)

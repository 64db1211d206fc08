"""The clinical safety gates: what must hold before a session is completed or a
cocktail recorded. One function per gate, each returning its failures.

Each failure carries a sentence for the practitioner, a note in non-clinical
words for reception, and, when waiting would clear it, the earliest moment it
may. `gates_check` runs them all, in gate order, for the session record and
the booking calendar.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.db.models import Prefetch
from django.utils import dateformat, timezone
from django.utils.translation import gettext as _

from consent.selectors import consent_state
from patients.models import Patient
from patients.screening import Severity, screen
from patients.selectors import history_current, history_is_valid
from treatments.models import (
    AllergyResult,
    AllergyTest,
    Batch,
    BatchStatus,
    Ingredient,
    PatientAllergy,
    Product,
    Protocol,
)


@dataclass(frozen=True)
class GateFailure:
    """One reason treatment cannot go ahead."""

    gate: int
    sentence: str  # for the practitioner, in plain words
    reception_note: str  # for reception: no clinical detail
    earliest: datetime | None = None  # when waiting would clear it


def _day(day: date) -> str:
    return dateformat.format(day, "j M Y")


def _moment(moment: datetime) -> str:
    return dateformat.format(timezone.localtime(moment), "D j M H:i")


def _start_of(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def ingredients_of(products: Iterable[Product]) -> list[Ingredient]:
    """Every ingredient the given products contain, once each, by name (one query)."""
    ids = [p.pk for p in products]
    if not ids:
        return []
    return list(Ingredient.objects.filter(products__in=ids).distinct().order_by("name"))


# --- Gate 1: medical history ----------------------------------------------------------


def gate_medical_history(*, patient: Patient, at: datetime) -> list[GateFailure]:
    history = history_current(patient=patient)
    if history is None:
        return [
            GateFailure(
                1,
                _("No medical history on record: take one before treating."),
                _("medical history needed"),
            )
        ]
    if not history_is_valid(history, today=timezone.localdate(at)):
        return [
            GateFailure(
                1,
                _(
                    "The medical history of %(day)s is older than %(days)s days: "
                    "take it again before treating."
                )
                % {
                    "day": _day(timezone.localtime(history.signed_at).date()),
                    "days": settings.MEDICAL_HISTORY_VALID_DAYS,
                },
                _("medical history out of date: needs taking again"),
            )
        ]
    return []


# --- Gate 2: absolute contraindications -----------------------------------------------


def gate_contraindications(*, patient: Patient, at: datetime) -> list[GateFailure]:
    """Absolute findings of the current history block; cautions only warn (elsewhere)."""
    history = history_current(patient=patient)
    if history is None:
        return []  # gate 1 says so
    failures = []
    for finding in screen(history, today=timezone.localdate(at)):
        if finding.severity != Severity.ABSOLUTE:
            continue
        failures.append(
            GateFailure(
                2,
                finding.reason,
                finding.reception_note or _("cannot be treated for now: see the practitioner"),
                _start_of(finding.lifts_on) if finding.lifts_on else None,
            )
        )
    return failures


# --- Gate 3: consent ------------------------------------------------------------------


def gate_consent(*, patient: Patient, protocol: Protocol, at: datetime) -> list[GateFailure]:
    """Signed, on the current version of the protocol's consent form, and not withdrawn."""
    state = consent_state(patient=patient, form=protocol.consent_form)
    if state.is_valid:
        return []
    return [GateFailure(3, state.sentence, state.reception_note)]


# --- Gate 4: allergy tests ------------------------------------------------------------


def gate_allergy(
    *, patient: Patient, ingredients: Sequence[Ingredient], at: datetime
) -> list[GateFailure]:
    """Every ingredient needs a valid negative reading, and no allergy ever.

    A recorded allergy or any positive reading blocks for good. A negative
    reading counts when taken at least 24 hours after the test, and for
    ALLERGY_TEST_VALID_MONTHS calendar months. Three queries whatever the
    number of ingredients.
    """
    wanted = {i.pk: i for i in ingredients}
    if not wanted:
        return []
    months = settings.ALLERGY_TEST_VALID_MONTHS
    allergies = {
        a.ingredient_id: a
        for a in PatientAllergy.objects.filter(patient=patient, ingredient__in=list(wanted))
    }
    tests = list(
        AllergyTest.objects.filter(patient=patient, ingredients__in=list(wanted))
        .distinct()
        .prefetch_related(
            Prefetch(
                "ingredients",
                queryset=Ingredient.objects.filter(pk__in=list(wanted)),
                to_attr="wanted_ingredients",
            )
        )
        .order_by("-given_at", "-id")
    )
    by_ingredient: dict[int, list[AllergyTest]] = {pk: [] for pk in wanted}
    for test in tests:
        for ingredient in getattr(test, "wanted_ingredients", []):
            by_ingredient[ingredient.pk].append(test)

    failures = []
    for ingredient in sorted(wanted.values(), key=lambda i: i.name.lower()):
        name = ingredient.name
        its_tests = by_ingredient[ingredient.pk]
        positive = next(
            (t for t in its_tests if t.result == AllergyResult.POSITIVE and t.read_at), None
        )
        if positive is not None:
            assert positive.read_at is not None
            failures.append(
                GateFailure(
                    4,
                    _("Allergic to %(name)s: positive test read on %(day)s.")
                    % {"name": name, "day": _day(timezone.localtime(positive.read_at).date())},
                    _("cannot have this treatment: see the practitioner"),
                )
            )
            continue
        allergy = allergies.get(ingredient.pk)
        if allergy is not None:
            failures.append(
                GateFailure(
                    4,
                    _("Allergic to %(name)s: recorded on %(day)s.")
                    % {"name": name, "day": _day(timezone.localtime(allergy.recorded_at).date())},
                    _("cannot have this treatment: see the practitioner"),
                )
            )
            continue
        negatives = [
            t
            for t in its_tests
            if t.result == AllergyResult.NEGATIVE
            and t.read_at is not None
            and t.read_at >= t.read_due_at
            and t.read_at <= at
        ]
        if any(
            t.read_at is not None and t.read_at + relativedelta(months=months) >= at
            for t in negatives
        ):
            continue
        pending = sorted((t for t in its_tests if t.read_at is None), key=lambda t: t.read_due_at)
        if pending:
            due = pending[0].read_due_at
            failures.append(
                GateFailure(
                    4,
                    _(
                        "The allergy test for %(name)s has not been read yet: "
                        "it can be read from %(when)s."
                    )
                    % {"name": name, "when": _moment(due)},
                    _("allergy reading due %(when)s") % {"when": _moment(due)},
                    due,
                )
            )
        elif negatives:
            assert negatives[0].read_at is not None
            failures.append(
                GateFailure(
                    4,
                    _(
                        "The negative allergy test for %(name)s from %(day)s is older than "
                        "%(months)s months: test again."
                    )
                    % {
                        "name": name,
                        "day": _day(timezone.localtime(negatives[0].read_at).date()),
                        "months": months,
                    },
                    _("allergy test needed"),
                )
            )
        else:
            failures.append(
                GateFailure(
                    4,
                    _("No allergy test for %(name)s.") % {"name": name},
                    _("allergy test needed"),
                )
            )
    return failures


# --- Gate 5: batches ------------------------------------------------------------------


def gate_batches(*, batches: Iterable[Batch], on: date) -> list[GateFailure]:
    failures = []
    for batch in batches:
        label = _("%(product)s lot %(lot)s") % {
            "product": batch.product.name,
            "lot": batch.lot_number,
        }
        if batch.status == BatchStatus.RECALLED:
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


def gates_check(
    *,
    patient: Patient,
    protocol: Protocol,
    ingredients: Sequence[Ingredient],
    batches: Iterable[Batch],
    at: datetime,
) -> list[GateFailure]:
    """Every failure of every gate, in gate order. Empty: treatment may go ahead."""
    return [
        *gate_medical_history(patient=patient, at=at),
        *gate_contraindications(patient=patient, at=at),
        *gate_consent(patient=patient, protocol=protocol, at=at),
        *gate_allergy(patient=patient, ingredients=ingredients, at=at),
        *gate_batches(batches=batches, on=timezone.localdate(at)),
    ]

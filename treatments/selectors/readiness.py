"""Ready-to-treat for many bookings at once, for the calendar and the patient's
page: gates 1 to 4 of `treatments.gates` (medical history, absolute
contraindications, consent on the current version, allergy readings for the
cocktail the session will start from), the same code the practitioner's
completion runs, over facts loaded once for every booking shown. Batches are
chosen at the session, the day-of questions asked and the cautions
acknowledged there, so gates 5 to 8 do not apply to a booking yet. Reception
reads only each failure's `reception_note` and `earliest`.

The calendar keeps what it shows of a week in the cache until a fact changes
(`week_readiness` says how long an answer holds without a write;
`treatments.selectors.calendar_cache`). That is for display: the services
never read it, and judge every write through the gates afresh.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from clinic import clinic_settings
from treatments.gates import (
    GateCase,
    GateFailure,
    cases_gates,
    gate_facts_counted_from,
    gate_facts_load,
)
from treatments.models import Booking, BookingStatus, CocktailLine, Ingredient, ProtocolCocktailLine

Ingredients = dict[int, Ingredient]


class Judged(Protocol):
    """What ready-to-treat reads of a booking: a `Booking` through
    `booking_readiness`, a calendar row (`WeekBooking`) directly."""

    @property
    def pk(self) -> int: ...
    @property
    def patient_id(self) -> int: ...
    @property
    def protocol_id(self) -> int: ...
    @property
    def consent_form_id(self) -> int: ...
    @property
    def course_id(self) -> int | None: ...
    @property
    def starts_at(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class _Booked:
    pk: int
    patient_id: int
    protocol_id: int
    consent_form_id: int
    course_id: int | None
    starts_at: datetime


def _protocol_cocktails(bookings: Sequence[Judged]) -> dict[int, Ingredients]:
    """{protocol id: ingredients of its default cocktail} (one query)."""
    found: dict[int, Ingredients] = defaultdict(dict)
    for row in ProtocolCocktailLine.objects.filter(
        protocol_id__in={b.protocol_id for b in bookings}, product__ingredients__isnull=False
    ).values("protocol_id", "product__ingredients__id", "product__ingredients__name"):
        ingredient = Ingredient(
            pk=row["product__ingredients__id"], name=row["product__ingredients__name"]
        )
        found[row["protocol_id"]][ingredient.pk] = ingredient
    return found


def _previous_cocktails(bookings: Sequence[Judged]) -> dict[int, Ingredients]:
    """{booking id: ingredients of the last completed session of its course
    before it}, for bookings in a course that has one (one query, none without
    courses). The practitioner's form starts from that session's cocktail."""
    course_ids = {b.course_id for b in bookings if b.course_id is not None}
    if not course_ids:
        return {}
    sessions: dict[int, dict[int, tuple[datetime, Ingredients]]] = defaultdict(dict)
    for row in CocktailLine.objects.filter(
        session__booking__course_id__in=course_ids,
        session__booking__status=BookingStatus.COMPLETED,
        batch__product__ingredients__isnull=False,
    ).values(
        "session_id",
        "session__booking__course_id",
        "session__booking__starts_at",
        "batch__product__ingredients__id",
        "batch__product__ingredients__name",
    ):
        course = sessions[row["session__booking__course_id"]]
        _starts, found = course.setdefault(
            row["session_id"], (row["session__booking__starts_at"], {})
        )
        ingredient = Ingredient(
            pk=row["batch__product__ingredients__id"],
            name=row["batch__product__ingredients__name"],
        )
        found[ingredient.pk] = ingredient
    previous: dict[int, Ingredients] = {}
    for booking in bookings:
        if booking.course_id is None:
            continue
        earlier = [s for s in sessions[booking.course_id].values() if s[0] < booking.starts_at]
        if earlier:
            previous[booking.pk] = max(earlier, key=lambda s: s[0])[1]
    return previous


@clinic_settings.read_once
def booking_readiness(*, bookings: Sequence[Booking], at: datetime) -> dict[int, list[GateFailure]]:
    """{booking id: failures of gates 1 to 4} for each booking, judged at its
    start on what is known at `at` (aware, now), as `session_gates` judges a
    completion. The ingredients are those of the cocktail the session will
    start from: the course's last session, else the protocol's default. Six or
    seven queries whatever the number of bookings; `booking.protocol` must be
    loaded with the bookings. Source: design.md, "Clinical safety gates"."""
    return readiness_of(
        bookings=[
            _Booked(
                pk=b.pk,
                patient_id=b.patient_id,
                protocol_id=b.protocol_id,
                consent_form_id=b.protocol.consent_form_id,
                course_id=b.course_id,
                starts_at=b.starts_at,
            )
            for b in bookings
        ],
        at=at,
    )


@dataclass(frozen=True, slots=True)
class WeekReadiness:
    """`readiness_of`'s answer with how long it holds without a write."""

    failures: dict[int, list[GateFailure]]
    # The first moment after `at` the same rows would be judged otherwise (a
    # fact stamped later than `at` starting to count); None: not before a write.
    holds_until: datetime | None


@clinic_settings.read_once
def week_readiness(*, bookings: Sequence[Judged], at: datetime) -> WeekReadiness:
    """`readiness_of` (the same gates over the same facts, no other rule),
    and the moment until which its answer holds if nothing is written
    (`treatments.gates.gate_facts_counted_from`): the calendar keeps a week's
    flags for display that long at most, and only while no fact changes
    (`treatments.selectors.calendar_cache`). One query more than
    `readiness_of`. Raises nothing."""
    return WeekReadiness(
        failures=readiness_of(bookings=bookings, at=at),
        holds_until=gate_facts_counted_from(patient_ids={b.patient_id for b in bookings}, after=at),
    )


@clinic_settings.read_once
def readiness_of(*, bookings: Sequence[Judged], at: datetime) -> dict[int, list[GateFailure]]:
    """`booking_readiness` for bookings read as plain rows (`Judged`: the
    calendar's `WeekBooking`): the facts of every booking loaded at once
    (`gate_facts_load`), then each judged at its start through
    `treatments.gates.cases_gates`, the rules `booking_gates` applies. Six or
    seven queries whatever the number of bookings (none for none); `at` is
    aware. Raises nothing. Source: design.md, "Clinical safety gates"."""
    if not bookings:
        return {}
    by_protocol = _protocol_cocktails(bookings)
    previous = _previous_cocktails(bookings)
    expected = {
        booking.pk: previous.get(booking.pk) or by_protocol.get(booking.protocol_id, {})
        for booking in bookings
    }
    facts = gate_facts_load(
        patient_ids={b.patient_id for b in bookings},
        consent_form_ids={b.consent_form_id for b in bookings},
        ingredient_ids={pk for found in expected.values() for pk in found},
        known_by=at,
    )
    # Bookings sharing a cocktail share its list of ingredients.
    lists: dict[tuple[int, ...], list[Ingredient]] = {}
    cases = {}
    for booking in bookings:
        found = expected[booking.pk]
        ingredients = lists.setdefault(tuple(found), list(found.values()))
        cases[booking.pk] = GateCase(
            patient_id=booking.patient_id,
            consent_form_id=booking.consent_form_id,
            ingredients=ingredients,
            at=booking.starts_at,
        )
    return cases_gates(cases=cases, facts=facts)

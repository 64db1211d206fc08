"""Safe-to-treat for many bookings at once, for the calendar and the patient's
page: gates 1 to 4 of `treatments.gates` (medical history, absolute
contraindications, consent on the current version, allergy readings for the
cocktail the session will start from), the same code the practitioner's
completion runs, over facts loaded once for every booking shown. Batches are
chosen at the session, the day-of questions asked and the cautions
acknowledged there, so gates 5 to 8 do not apply to a booking yet. Reception
reads only each failure's `reception_note` and `earliest`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from treatments.gates import GateFailure, booking_gates, gate_facts_load
from treatments.models import Booking, BookingStatus, CocktailLine, Ingredient, ProtocolCocktailLine

Ingredients = dict[int, Ingredient]


def _protocol_cocktails(bookings: Sequence[Booking]) -> dict[int, Ingredients]:
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


def _previous_cocktails(bookings: Sequence[Booking]) -> dict[int, Ingredients]:
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


def booking_readiness(*, bookings: Sequence[Booking], at: datetime) -> dict[int, list[GateFailure]]:
    """{booking id: failures of gates 1 to 4} for each booking, judged at its
    start on what is known at `at` (aware, now), as `session_gates` judges a
    completion. The ingredients are those of the cocktail the session will
    start from: the course's last session, else the protocol's default. Six or
    seven queries whatever the number of bookings; `booking.protocol` must be
    loaded with the bookings."""
    if not bookings:
        return {}
    by_protocol = _protocol_cocktails(bookings)
    previous = _previous_cocktails(bookings)

    def expected(booking: Booking) -> Ingredients:
        return previous.get(booking.pk) or by_protocol.get(booking.protocol_id, {})

    facts = gate_facts_load(
        patient_ids={b.patient_id for b in bookings},
        consent_form_ids={b.protocol.consent_form_id for b in bookings},
        ingredient_ids={pk for b in bookings for pk in expected(b)},
        known_by=at,
    )
    return {
        booking.pk: booking_gates(
            booking=booking,
            ingredients=list(expected(booking).values()),
            at=booking.starts_at,
            facts=facts,
        )
        for booking in bookings
    }

"""Safe-to-treat for many bookings at once, for the calendar and the patient's
page: gates 1 to 4 of `treatments.gates` (medical history, absolute
contraindications, consent on the current version, allergy readings for the
protocol's default cocktail), the same code the practitioner's completion
runs, over facts loaded once for every booking shown. Batches are chosen at
the session, the day-of questions asked and the cautions acknowledged there,
so gates 5 to 8 do not apply to a booking yet. Reception reads only each
failure's `reception_note` and `earliest`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from treatments.gates import GateFailure, booking_gates, gate_facts_load
from treatments.models import Booking, Ingredient, ProtocolCocktailLine


def booking_readiness(*, bookings: Sequence[Booking], at: datetime) -> dict[int, list[GateFailure]]:
    """{booking id: failures of gates 1 to 4} for each booking, judged at its
    start, or at `at` (aware) if that is later. Six queries whatever the number
    of bookings; `booking.protocol` must be loaded with the bookings."""
    if not bookings:
        return {}
    protocol_ids = {b.protocol_id for b in bookings}
    ingredients: dict[int, dict[int, Ingredient]] = defaultdict(dict)
    for line in ProtocolCocktailLine.objects.filter(
        protocol_id__in=protocol_ids, product__ingredients__isnull=False
    ).values("protocol_id", "product__ingredients__id", "product__ingredients__name"):
        ingredient = Ingredient(
            pk=line["product__ingredients__id"], name=line["product__ingredients__name"]
        )
        ingredients[line["protocol_id"]][ingredient.pk] = ingredient
    facts = gate_facts_load(
        patient_ids={b.patient_id for b in bookings},
        consent_form_ids={b.protocol.consent_form_id for b in bookings},
        ingredient_ids={pk for per in ingredients.values() for pk in per},
    )
    return {
        booking.pk: booking_gates(
            booking=booking,
            ingredients=list(ingredients.get(booking.protocol_id, {}).values()),
            at=max(at, booking.starts_at),
            facts=facts,
        )
        for booking in bookings
    }

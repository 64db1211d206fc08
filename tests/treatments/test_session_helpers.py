"""Helpers for the session-record tests (no tests here): a patient ready for a
session (history, consent, allergy readings, usable batches), a booking today,
and the form as a browser posts it."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import time_machine
from django.utils import timezone

from clinic.models import User
from clinic.roles import Role
from consent.models import ConsentFormVersion
from patients.images import clean_photo
from patients.models import Patient
from tests.consent.helpers import signed_consent_for
from tests.factories import (
    BatchFactory,
    ConsentFormVersionFactory,
    IngredientFactory,
    PatientFactory,
    ProductFactory,
    ProtocolFactory,
    UserFactory,
    make_history,
)
from treatments.models import (
    DAY_OF_FIELDS,
    AllergyTest,
    Batch,
    Booking,
    BookingStatus,
    Ingredient,
    Protocol,
    ProtocolCocktailLine,
    Room,
    TreatmentCourse,
)
from treatments.services.allergy import allergy_test_give, allergy_test_read


@dataclass
class World:
    patient: Patient
    practitioner: User
    protocol: Protocol
    version: ConsentFormVersion
    ingredients: list[Ingredient]
    batches: list[Batch]
    booking: Booking
    room: Room


def give_and_read(
    patient: Patient,
    practitioner: User,
    ingredients: list[Ingredient],
    *,
    given_at: datetime,
    result: str | None = "negative",
    photo: bytes | None = None,
) -> AllergyTest:
    """An allergy test given at `given_at` and, unless result is None, read 25
    hours later, with a photograph of the site when `photo` (JPEG bytes) is given."""
    with time_machine.travel(given_at, tick=False):
        test = allergy_test_give(
            patient=patient,
            given_by=practitioner,
            ingredients=ingredients,
            products=[],
            site="Inner left forearm",
            given_at=given_at,
        )
    if result is None:
        return test
    with time_machine.travel(given_at + timedelta(hours=25), tick=False):
        reaction = "Red wheal, 7 mm" if result == "positive" else ""
        picture = clean_photo(io.BytesIO(photo), size=len(photo)) if photo is not None else None
        return allergy_test_read(
            test=test, read_by=practitioner, result=result, reaction=reaction, photo=picture
        )


_rooms = iter(range(1, 10**6))


def make_booking(
    *,
    patient: Patient,
    practitioner: User,
    protocol: Protocol,
    starts_at: datetime | None = None,
    status: str = BookingStatus.ARRIVED,
    course: TreatmentCourse | None = None,
    room: Room | None = None,
) -> Booking:
    starts_at = starts_at or timezone.now().replace(microsecond=0) - timedelta(minutes=10)
    room = room or Room.objects.create(name=f"Room {next(_rooms)}")
    return Booking.objects.create(
        patient=patient,
        practitioner=practitioner,
        room=room,
        protocol=protocol,
        course=course,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(minutes=45),
        status=status,
        created_by=practitioner,
        cancel_reason="Patient unwell" if status == BookingStatus.CANCELLED else "",
    )


def make_world(
    practitioner: User,
    *,
    history: bool = True,
    consent: bool = True,
    allergy: bool = True,
    status: str = BookingStatus.ARRIVED,
    products: int = 2,
    **patient_fields: Any,
) -> World:
    patient = PatientFactory(**patient_fields)
    version = ConsentFormVersionFactory()
    protocol = ProtocolFactory(consent_form=version.form)
    ingredients: list[Ingredient] = []
    batches: list[Batch] = []
    for n in range(products):
        ingredient = IngredientFactory()
        product = ProductFactory(ingredients=[ingredient])
        ProtocolCocktailLine.objects.create(
            protocol=protocol, product=product, amount=Decimal("1.50"), position=n
        )
        ingredients.append(ingredient)
        batches.append(BatchFactory(product=product))
    if history:
        make_history(patient, practitioner)
    if consent:
        signed_consent_for(patient=patient, version=version)
    if allergy:
        give_and_read(
            patient, practitioner, ingredients, given_at=timezone.now() - timedelta(days=3)
        )
    booking = make_booking(
        patient=patient, practitioner=practitioner, protocol=protocol, status=status
    )
    return World(
        patient=patient,
        practitioner=practitioner,
        protocol=protocol,
        version=version,
        ingredients=ingredients,
        batches=batches,
        booking=booking,
        room=booking.room,
    )


def line_data(index: int, batch: Batch, **overrides: Any) -> dict[str, str]:
    values = {
        "product": str(batch.product.uuid),
        "batch": str(batch.uuid),
        "amount": "2.50",
        "unit": "ml",
        "area": "face",
        "technique": "nappage",
        "depth_mm": "1.5",
        "needle_gauge": "32",
        "device": "meso_gun",
        **overrides,
    }
    return {f"lines-{index}-{key}": value for key, value in values.items()}


def day_of_answers(**answers: str) -> dict[str, str]:
    """The day-of-treatment questions as posted: "no" to each unless given."""
    return {f"today-{name}": answers.get(name, "no") for name in DAY_OF_FIELDS}


def session_post(
    batches: list[Batch],
    *,
    notes: str = "Tolerated well, typed by hand",
    events: list[dict[str, str]] | None = None,
    day_of: dict[str, str] | None = None,
    **extra: str,
) -> dict[str, str]:
    """The form as a browser posts it: one line per batch, the events, and
    the day-of answers (every one "no" unless `day_of` is given)."""
    data: dict[str, str] = {
        "lines-TOTAL_FORMS": str(len(batches)),
        "lines-INITIAL_FORMS": "0",
        "lines-MIN_NUM_FORMS": "0",
        "lines-MAX_NUM_FORMS": "1000",
        "events-TOTAL_FORMS": str(len(events or [])),
        "events-INITIAL_FORMS": "0",
        "events-MIN_NUM_FORMS": "0",
        "events-MAX_NUM_FORMS": "1000",
        "numbing_cream": "on",
        "immediate_reactions": "Slight redness",
        "notes": notes,
        # The booking's version the page showed: a fresh booking's.
        "version": "1",
    }
    for i, batch in enumerate(batches):
        data.update(line_data(i, batch))
    for i, event in enumerate(events or []):
        data.update({f"events-{i}-{k}": v for k, v in event.items()})
    data.update(day_of_answers() if day_of is None else day_of)
    data.update(extra)
    return data


def other_practitioner() -> User:
    return UserFactory(roles=[Role.PRACTITIONER])

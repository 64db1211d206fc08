"""The week view's safe-to-treat flags come from the one gate path: for every
booking of a generated week (histories current, out of date by a day or
missing, contraindications that lift on the booking's day, consents signed,
superseded or withdrawn, allergy tests read exactly 24 hours after they were
given, pending until the very start of the booking, positive, or expiring at
it), the batch that judges the whole week at once says exactly what the
practitioner's gates say of that booking alone, and the page shows it; the
page's query count does not grow with the week."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from dateutil.relativedelta import relativedelta
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.html import escape

from clinic import clinic_settings, dates
from clinic.localtime import to_local
from clinic.models import User
from consent.models import ConsentFormVersion
from consent.services import consent_withdraw
from patients.models import Patient
from tests.conftest import sign_in
from tests.consent.helpers import signed_consent_for
from tests.factories import (
    ConsentFormVersionFactory,
    IngredientFactory,
    PatientFactory,
    ProductFactory,
    ProtocolFactory,
    make_history,
)
from tests.treatments import test_booking_support as support
from tests.treatments.test_booking_support import MONDAY, NOW, Clinic, at, book
from treatments.gates import GateFailure, gates_check, ingredients_of
from treatments.models import Booking, Ingredient, Protocol, ProtocolCocktailLine
from treatments.selectors.calendar import calendar_build
from treatments.selectors.readiness import booking_readiness, readiness_of
from treatments.services.allergy import allergy_test_give, allergy_test_read

clinic = support.clinic
frozen = support.frozen
pytestmark = pytest.mark.usefixtures("frozen", "media")
CALENDAR = reverse("treatments:calendar")
READING = timedelta(hours=24)


@pytest.fixture
def media(settings: object, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path  # type: ignore[attr-defined]


def _cocktail(protocol: Protocol, *names: str) -> list[Ingredient]:
    product = ProductFactory(ingredients=[IngredientFactory(name=name) for name in names])
    ProtocolCocktailLine.objects.create(protocol=protocol, product=product, amount="2.00")
    return ingredients_of([product])


class _Week:
    """Bookings placed one after another in free slots, Monday to Friday."""

    def __init__(self, c: Clinic, protocols: list[Protocol]) -> None:
        self.c = c
        self.protocols = protocols
        self.slots = [
            (MONDAY + timedelta(days=d), 7 * 60 + 30 + 45 * q, side)
            for d in range(5)
            for q in range(14)
            for side in (0, 1)
        ]
        self.bookings: list[Booking] = []

    def book(self, patient: Patient, protocol: Protocol, *, slot: int | None = None) -> Booking:
        day, minute, side = self.slots.pop(0 if slot is None else slot)
        booking = book(
            patient=patient,
            practitioner=self.c.practitioner if side == 0 else self.c.other_practitioner,
            room=self.c.room if side == 0 else self.c.other_room,
            protocol=protocol,
            starts_at=at(day, minute // 60, minute % 60),
        )
        self.bookings.append(booking)
        return booking


def _history(patient: Patient, by: User, when: datetime, **answers: object) -> None:
    with time_machine.travel(when, tick=False):
        make_history(patient, by, **answers)


def _test(
    patient: Patient,
    by: User,
    ingredients: list[Ingredient],
    *,
    given_at: datetime,
    read_after: timedelta | None,
    result: str = "negative",
) -> None:
    with time_machine.travel(given_at, tick=False):
        test = allergy_test_give(
            patient=patient,
            given_by=by,
            ingredients=ingredients,
            products=[],
            site="inner left forearm",
            given_at=given_at,
        )
    if read_after is not None:
        with time_machine.travel(given_at + read_after, tick=False):
            reaction = "Raised weal, 8 mm" if result == "positive" else ""
            allergy_test_read(test=test, read_by=by, result=result, reaction=reaction)


def _consent(patient: Patient, version: ConsentFormVersion, kind: str, by: User) -> None:
    if kind == "missing":
        return
    signed = signed_consent_for(patient=patient, version=version, signed_at=NOW - timedelta(days=9))
    if kind == "withdrawn":
        consent_withdraw(signed=signed, reason="Changed her mind", recorded_by=by)


def _generated_week(c: Clinic, practitioner: User) -> tuple[_Week, dict[int, list[Ingredient]]]:
    """About sixty bookings: the boundaries named in the module's docstring,
    then a seeded random mix of every state."""
    face, scalp = ProtocolFactory(), ProtocolFactory()
    cocktails = {
        face.pk: _cocktail(face, "Hyaluronic acid", "Vitamin C"),
        scalp.pk: _cocktail(scalp, "Biotin"),
    }
    versions = {p.pk: ConsentFormVersionFactory(form=p.consent_form) for p in (face, scalp)}
    week = _Week(c, [face, scalp])
    valid_days = clinic_settings.current().medical_history_valid_days

    def ready(patient: Patient, protocol: Protocol, *, history: bool = True) -> None:
        if history:
            _history(patient, practitioner, NOW - timedelta(days=30))
        _consent(patient, versions[protocol.pk], "signed", practitioner)
        _test(
            patient,
            practitioner,
            cocktails[protocol.pk],
            given_at=NOW - timedelta(days=5),
            read_after=timedelta(hours=25),
        )

    # Read exactly 24 hours after it was given: the earliest reading counts.
    p = PatientFactory()
    _history(p, practitioner, NOW - timedelta(days=30))
    _consent(p, versions[face.pk], "signed", practitioner)
    _test(p, practitioner, cocktails[face.pk], given_at=NOW - timedelta(days=3), read_after=READING)
    week.book(p, face)
    # Pending, readable exactly when the booking starts (Monday 09:00) and a
    # minute after it.
    for offset in (timedelta(0), timedelta(minutes=1)):
        p = PatientFactory()
        _history(p, practitioner, NOW - timedelta(days=30))
        _consent(p, versions[face.pk], "signed", practitioner)
        booking = week.book(p, face, slot=4)
        _test(
            p,
            practitioner,
            cocktails[face.pk],
            given_at=booking.starts_at - READING + offset,
            read_after=None,
        )
    # A negative reading whose validity ends exactly at the booking's start,
    # and one that ended a minute before it.
    for early in (timedelta(0), timedelta(minutes=1)):
        p = PatientFactory()
        _history(p, practitioner, NOW - timedelta(days=30))
        _consent(p, versions[face.pk], "signed", practitioner)
        booking = week.book(p, face)
        read_at = to_local(booking.starts_at) - relativedelta(
            months=clinic_settings.current().allergy_test_valid_months
        )
        _test(
            p,
            practitioner,
            cocktails[face.pk],
            given_at=read_at - READING - early,
            read_after=READING,
        )
    # A history signed exactly as many days before the booking's day as it
    # stays valid, and a day more.
    for extra in (0, 1):
        p = PatientFactory()
        booking = week.book(p, face)
        day = to_local(booking.starts_at).date()
        _history(p, practitioner, at(day - timedelta(days=valid_days + extra), 10))
        ready(p, face, history=False)
    # Isotretinoin: the contraindication lifts on the booking's day, and the day after.
    for shift in (0, 1):
        p = PatientFactory()
        booking = week.book(p, face)
        day = to_local(booking.starts_at).date()
        last_dose = day - relativedelta(months=18) + timedelta(days=shift)
        _history(p, practitioner, NOW - timedelta(days=40), isotretinoin_last_dose=last_dose)
        ready(p, face, history=False)
    # Acne declared on the morning of a Monday booking (counts) and the week before.
    for when in (NOW - timedelta(minutes=30), NOW - timedelta(days=7)):
        p = PatientFactory()
        week.book(p, face, slot=0)
        _history(p, practitioner, when, active_acne=True)
        ready(p, face, history=False)
    # A patient booked twice in the week, a reading pending between the two.
    p = PatientFactory()
    _history(p, practitioner, NOW - timedelta(days=30))
    _consent(p, versions[face.pk], "signed", practitioner)
    _test(p, practitioner, cocktails[face.pk], given_at=NOW - timedelta(hours=2), read_after=None)
    week.book(p, face, slot=2)
    week.book(p, face, slot=len(week.slots) - 1)
    # A version published since the signature.
    p = PatientFactory()
    ready(p, scalp)
    week.book(p, scalp)

    rng = random.Random(20261123)  # repeatable cases
    histories: list[tuple[str, Callable[[Patient], None]]] = [
        ("none", lambda p: None),
        ("current", lambda p: _history(p, practitioner, NOW - timedelta(days=20))),
        ("old", lambda p: _history(p, practitioner, NOW - timedelta(days=valid_days + 20))),
        ("pregnant", lambda p: _history(p, practitioner, NOW - timedelta(days=3), pregnant=True)),
        (
            "cold sores",
            lambda p: _history(p, practitioner, NOW - timedelta(days=3), cold_sores_history=True),
        ),
        (
            "anticoagulants",
            lambda p: _history(p, practitioner, NOW - timedelta(days=3), anticoagulants=True),
        ),
    ]
    for _ in range(40):
        p = PatientFactory()
        protocol = rng.choice([face, scalp])
        ingredients = cocktails[protocol.pk]
        rng.choice(histories)[1](p)
        _consent(
            p, versions[protocol.pk], rng.choice(["signed", "missing", "withdrawn"]), c.practitioner
        )
        allergy = rng.choice(["none", "negative", "pending", "positive", "expired", "some"])
        if allergy == "negative":
            _test(
                p,
                practitioner,
                ingredients,
                given_at=NOW - timedelta(days=rng.randrange(2, 60)),
                read_after=timedelta(hours=24 + rng.randrange(6)),
            )
        elif allergy == "pending":
            _test(
                p,
                practitioner,
                ingredients,
                given_at=NOW - timedelta(hours=rng.randrange(1, 30)),
                read_after=None,
            )
        elif allergy == "positive":
            _test(
                p,
                practitioner,
                ingredients,
                given_at=NOW - timedelta(days=4),
                read_after=READING,
                result="positive",
            )
        elif allergy == "expired":
            _test(
                p, practitioner, ingredients, given_at=NOW - timedelta(days=200), read_after=READING
            )
        elif allergy == "some":
            _test(
                p,
                practitioner,
                ingredients[:1],
                given_at=NOW - timedelta(days=6),
                read_after=READING,
            )
        week.book(p, protocol, slot=rng.randrange(len(week.slots)))
    # Superseded after everyone signed: the scalp form's signatures need re-consent.
    ConsentFormVersionFactory(form=scalp.consent_form)
    return week, cocktails


def _facts(failures: list[GateFailure]) -> list[tuple[int, str, str, datetime | None]]:
    return [(f.gate, f.sentence, f.reception_note, f.earliest) for f in failures]


def _one_by_one(booking: Booking, cocktails: dict[int, list[Ingredient]]) -> list[GateFailure]:
    """What the practitioner's gates say of this booking alone, at its start."""
    return gates_check(
        patient=booking.patient,
        protocol=booking.protocol,
        ingredients=cocktails[booking.protocol_id],
        batches=[],
        at=booking.starts_at,
    )


def test_the_weeks_flags_are_what_the_gates_say_of_each_booking_alone(
    client: Client, clinic: Clinic, practitioner: User, receptionist: User
) -> None:
    week, cocktails = _generated_week(clinic, practitioner)
    alone = {b.pk: _one_by_one(b, cocktails) for b in week.bookings}
    # Every kind of answer is among the cases: ready, and each gate failing.
    assert any(not failures for failures in alone.values())
    assert {f.gate for failures in alone.values() for f in failures} == {1, 2, 3, 4}
    assert any(f.earliest for failures in alone.values() for f in failures)

    built = calendar_build(view="week", day=MONDAY, practitioner=None, room=None, at=NOW)
    rows = [item.booking for row in built.rows for cell in row.cells for item in cell.bookings]
    assert len(rows) == len(week.bookings) == 54
    with CaptureQueriesContext(connection) as queries:
        batched = readiness_of(bookings=rows, at=NOW)
    assert len(queries) <= 7
    loaded = list(Booking.objects.select_related("protocol").filter(pk__in=alone))
    by_model = booking_readiness(bookings=loaded, at=NOW)
    for pk, failures in alone.items():
        assert _facts(batched[pk]) == _facts(failures), pk
        assert _facts(by_model[pk]) == _facts(failures), pk

    # The page shows each booking's notes, once each, and the latest time waiting clears them.
    sign_in(client, receptionist)
    body = client.get(CALENDAR, {"view": "week", "date": MONDAY.isoformat()}).content.decode()
    for booking in week.bookings:
        card = body[body.index(f'data-booking="{booking.uuid}"') :]
        card = card[: card.index("</a>")]
        failures = alone[booking.pk]
        if not failures:
            assert 'data-testid="safe"' in card
            continue
        noted = [f for f in failures if f.reception_note]
        notes = "; ".join(dict.fromkeys(f.reception_note for f in noted))
        assert f'title="{escape(notes)}' in card
        # The earliest date: safe from it when waiting clears every note, else not
        # before it; left out when a note names that moment already (said once).
        earliest = max((f.earliest for f in failures if f.earliest), default=None)
        waits = all(f.earliest for f in noted)
        named = earliest is not None and dates.day_or_day_time(earliest) in notes
        assert ("· ready to treat from " in card) == (earliest is not None and waits and not named)
        assert ("· not before " in card) == (earliest is not None and not waits and not named)


def test_the_week_page_runs_the_same_queries_for_one_booking_or_sixty_with_records(
    client: Client, clinic: Clinic, practitioner: User, receptionist: User
) -> None:
    face = ProtocolFactory()
    ingredients = _cocktail(face, "Hyaluronic acid")
    version = ConsentFormVersionFactory(form=face.consent_form)
    week = _Week(clinic, [face])
    url = f"{CALENDAR}?view=week&date={MONDAY}"
    sign_in(client, receptionist)

    def patient_with_records() -> Patient:
        p = PatientFactory()
        _history(p, practitioner, NOW - timedelta(days=30), cold_sores_history=True)
        _consent(p, version, "signed", practitioner)
        _test(p, practitioner, ingredients, given_at=NOW - timedelta(days=4), read_after=READING)
        return p

    week.book(patient_with_records(), face)
    client.get(url)  # the session's first request writes it
    with CaptureQueriesContext(connection) as one:
        client.get(url)
    for _ in range(59):
        week.book(patient_with_records(), face)
    with CaptureQueriesContext(connection) as many:
        body = client.get(url).content.decode()
    assert body.count('data-testid="safe"') == 60
    # Computed (a test's transaction has written, so the cache is not used):
    # 16 queries before the cache, now also the facts' version and how long
    # the flags hold, and the clinic's settings (its name, validity windows).
    assert len(one) == len(many) <= 19

"""One gate, everywhere: reception's safe-to-treat flag and the practitioner's
gates come from the same code over the same facts, for every gate state; a
validity counted in months follows the clinic's calendar across a clock
change; a batch recalled while a session is completed never lets both through.
Every clock here is frozen."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connections, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from clinic import clinic_settings
from clinic.models import User
from consent.services import consent_withdraw
from patients.screening import RULES, Severity
from tests.factories import BatchFactory, ConsentFormVersionFactory, make_history
from tests.treatments.test_session_helpers import (
    World,
    give_and_read,
    make_booking,
    make_world,
    other_practitioner,
)
from treatments.gates import (
    GateFailure,
    gate_allergy,
    gate_batches,
    gates_check,
    ingredients_of,
    negative_reading_valid_until,
)
from treatments.models import Booking, SessionRecord
from treatments.selectors.catalogue import batches_usable
from treatments.selectors.readiness import booking_readiness
from treatments.services.catalogue import batch_recall
from treatments.services.session import GatesFailedError, LineInput, session_complete

LONDON = ZoneInfo("Europe/London")
# Tue 24 Nov 2026, 10:00 in London (GMT).
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=LONDON)
TODAY = NOW.date()

# History answers that bring on each absolute contraindication of the screening
# table, as a patient would declare them (domain.md, "Contraindication screening").
CONTRAINDICATIONS: dict[str, dict[str, object]] = {
    "pregnancy": {"pregnant": True},
    "breastfeeding": {"breastfeeding": True},
    "diabetes": {"diabetes": True},
    "cancer_history": {"cancer_history": True},
    "autoimmune_disease": {"autoimmune_disease": True},
    "cardiac_disease": {"cardiac_disease": True},
    "bleeding_disorder": {"bleeding_disorder": True},
    "anticoagulants": {"anticoagulants": True},
    "steroids": {"steroids": True},
    "isotretinoin": {"isotretinoin_last_dose": date(2026, 6, 1)},
    "allergy_ingredient": {"allergy_ingredients": "Lidocaine and vitamin C"},
    "allergy_local_anaesthetic": {"allergy_local_anaesthetic": True},
    "active_acne": {"active_acne": True},
    "skin_infection": {"skin_infection": True},
    "unwell_today": {"unwell_today": True},
    "implant": {"implant_areas": ["face"]},
    "keloid_scarring": {"keloid_scarring": True},
    "scleroderma": {"scleroderma": True},
    "epilepsy": {"epilepsy": True},
    "chronic_condition": {"chronic_condition_uncontrolled": True},
}


def test_every_absolute_contraindication_is_among_the_states_compared() -> None:
    absolute = {rule.code for rule in RULES if rule.severity == Severity.ABSOLUTE}
    assert set(CONTRAINDICATIONS) == absolute


def _state_history(**answers: object) -> Callable[[User], World]:
    def build(practitioner: User) -> World:
        world = make_world(practitioner, history=False)
        make_history(world.patient, practitioner, **answers)
        return world

    return build


def _old_history(practitioner: User) -> World:
    world = make_world(practitioner, history=False)
    with time_machine.travel(NOW - timedelta(days=400), tick=False):
        make_history(world.patient, practitioner)
    return world


def _withdrawn(practitioner: User) -> World:
    world = make_world(practitioner)
    consent_withdraw(
        signed=world.patient.signed_consents.get(), reason="Changed mind", recorded_by=practitioner
    )
    return world


def _superseded(practitioner: User) -> World:
    world = make_world(practitioner)
    ConsentFormVersionFactory(form=world.version.form)
    return world


def _allergy(result: str | None, *, days_ago: float) -> Callable[[User], World]:
    def build(practitioner: User) -> World:
        world = make_world(practitioner, allergy=False)
        give_and_read(
            world.patient,
            practitioner,
            world.ingredients,
            given_at=NOW - timedelta(days=days_ago),
            result=result,
        )
        return world

    return build


STATES: dict[str, tuple[Callable[[User], World], set[int]]] = {
    "ready": (make_world, set()),
    "no history": (lambda p: make_world(p, history=False), {1}),
    "history out of date": (_old_history, {1}),
    **{
        f"contraindication {code}": (_state_history(**answers), {2})
        for code, answers in CONTRAINDICATIONS.items()
    },
    "consent missing": (lambda p: make_world(p, consent=False), {3}),
    "consent withdrawn": (_withdrawn, {3}),
    "consent superseded": (_superseded, {3}),
    "allergy untested": (lambda p: make_world(p, allergy=False), {4}),
    "allergy reading pending": (_allergy(None, days_ago=0.1), {4}),
    "allergy positive": (_allergy("positive", days_ago=3), {4}),
    "allergy negative": (_allergy("negative", days_ago=3), set()),
    "allergy negative expired": (_allergy("negative", days_ago=220), {4}),
}


def _practitioner_gates(booking: Booking, at: datetime) -> list[GateFailure]:
    products = [line.product for line in booking.protocol.cocktail.select_related("product")]
    return gates_check(
        patient=booking.patient,
        protocol=booking.protocol,
        ingredients=ingredients_of(products),
        batches=[],
        at=at,
    )


@pytest.mark.django_db
@pytest.mark.parametrize("state", sorted(STATES))
def test_receptions_flag_and_the_practitioners_gates_agree(state: str, practitioner: User) -> None:
    build, expected_gates = STATES[state]
    with time_machine.travel(NOW, tick=False):
        world = build(practitioner)
        booking = Booking.objects.select_related("protocol", "patient").get(pk=world.booking.pk)
        flag = booking_readiness(bookings=[booking], at=NOW)[booking.pk]
        gates = _practitioner_gates(booking, NOW)
    assert {f.gate for f in flag} == expected_gates
    assert [(f.gate, f.sentence, f.reception_note, f.earliest) for f in flag] == [
        (f.gate, f.sentence, f.reception_note, f.earliest) for f in gates
    ]
    if expected_gates:
        assert all(f.reception_note for f in flag)


@pytest.mark.django_db
def test_a_whole_week_is_judged_in_a_fixed_number_of_queries_and_agrees_booking_by_booking(
    practitioner: User,
) -> None:
    with time_machine.travel(NOW, tick=False):
        # One practitioner each, so the bookings can share the morning.
        worlds = [build(other_practitioner()) for build, _gates in STATES.values()]
        bookings = list(
            Booking.objects.select_related("protocol", "patient").filter(
                pk__in=[w.booking.pk for w in worlds]
            )
        )
        with CaptureQueriesContext(connections["default"]) as queries:
            flags = booking_readiness(bookings=bookings, at=NOW)
        # The facts (6) and the clinic's settings (the validity windows, 1).
        assert len(queries) == 7
        for booking in bookings:
            gates = _practitioner_gates(booking, NOW)
            assert [(f.gate, f.reception_note, f.earliest) for f in flags[booking.pk]] == [
                (f.gate, f.reception_note, f.earliest) for f in gates
            ]


@pytest.mark.django_db
def test_a_pending_allergy_reading_tells_reception_the_earliest_safe_moment(
    practitioner: User,
) -> None:
    with time_machine.travel(NOW, tick=False):
        world = _allergy(None, days_ago=0.25)(practitioner)  # given at 04:00
        flags = booking_readiness(bookings=[world.booking], at=NOW)[world.booking.pk]
    assert len(flags) == len(world.ingredients)
    for flag in flags:
        assert flag.earliest == datetime(2026, 11, 25, 4, 0, tzinfo=LONDON)
        assert flag.reception_note == "allergy reading due Wed 25 Nov, 04:00"


@pytest.mark.django_db
def test_a_batch_is_usable_exactly_when_gate_5_lets_it_through(manager: User) -> None:
    received = TODAY - timedelta(days=300)
    with time_machine.travel(NOW, tick=False):
        good = BatchFactory(received_on=received, expiry_date=TODAY)
        expired = BatchFactory(received_on=received, expiry_date=TODAY - timedelta(days=1))
        recalled = batch_recall(
            batch=BatchFactory(received_on=received),
            recalled_by=manager,
            reason="Contaminated lot",
        )
    offered = set(batches_usable(on=TODAY))
    for batch in (good, expired, recalled):
        passes = gate_batches(batches=[batch], on=TODAY) == []
        assert batch.is_usable_on(TODAY) is passes
        assert (batch in offered) is passes
    assert good in offered
    assert expired not in offered
    assert recalled not in offered


# --- Months on the clinic's calendar ----------------------------------------------------


@pytest.mark.django_db
def test_a_negative_reading_stays_valid_to_the_same_clock_time_after_the_clock_change() -> None:
    # Read at 10:00 on 10 May (BST); valid six calendar months, to 10:00 on
    # 10 Nov (GMT). Counting in UTC would end it at 09:00, an hour early.
    # The months are the clinic's setting, read from the database.
    read = datetime(2026, 5, 10, 10, 0, tzinfo=LONDON)
    with clinic_settings.overridden(allergy_test_valid_months=6):
        assert negative_reading_valid_until(read) == datetime(2026, 11, 10, 10, 0, tzinfo=LONDON)


@pytest.mark.django_db
def test_the_allergy_gate_still_passes_at_half_past_nine_on_the_last_day(
    practitioner: User,
) -> None:
    read = datetime(2026, 5, 10, 10, 0, tzinfo=LONDON)
    with time_machine.travel(read, tick=False):
        world = make_world(practitioner, allergy=False)
    give_and_read(
        world.patient, practitioner, world.ingredients, given_at=read - timedelta(hours=25)
    )
    last_morning = datetime(2026, 11, 10, 9, 30, tzinfo=LONDON)
    assert gate_allergy(patient=world.patient, ingredients=world.ingredients, at=last_morning) == []
    after = datetime(2026, 11, 10, 10, 0, 1, tzinfo=LONDON)
    failures = gate_allergy(patient=world.patient, ingredients=world.ingredients, at=after)
    assert [f.gate for f in failures] == [4, 4]
    assert "is older than 6 months: test again." in failures[0].sentence


# --- A recall during a completion -------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_recall_in_progress_blocks_the_completion_that_uses_the_batch(
    practitioner: User, manager: User
) -> None:
    with time_machine.travel(NOW, tick=False):
        world = make_world(practitioner)
        recalled = threading.Event()
        done = threading.Event()
        errors: list[BaseException] = []

        def recall() -> None:
            try:
                with transaction.atomic():
                    batch_recall(
                        batch=world.batches[0], recalled_by=manager, reason="Supplier recall"
                    )
                    recalled.set()
                    done.wait(timeout=2)  # the completion starts while the recall is open
            except BaseException as error:  # a crash must show up, not hang the test
                errors.append(error)
                recalled.set()
            finally:
                connections.close_all()

        thread = threading.Thread(target=recall)
        thread.start()
        assert recalled.wait(timeout=30)
        timer = threading.Timer(1.0, done.set)
        timer.start()
        line = LineInput(
            batch=world.batches[0],
            amount=Decimal("1.00"),
            unit="ml",
            area="scalp",
            technique="nappage",
            depth_mm=Decimal("1.0"),
            needle_gauge=32,
            device="syringe",
        )
        with pytest.raises(GatesFailedError) as refused:
            session_complete(
                booking=world.booking,
                completed_by=practitioner,
                lines=[line],
                adverse_events=[],
                numbing_cream=False,
                immediate_reactions="",
                notes="",
                day_of=dict.fromkeys(
                    (
                        "unwell",
                        "pregnant",
                        "breastfeeding",
                        "skin_infection",
                        "active_acne",
                        "cold_sore",
                        "new_medicine_or_allergy",
                    ),
                    False,
                ),
                cautions_acknowledged={},
                at=NOW,
            )
        thread.join(timeout=30)
        timer.cancel()
    assert not errors
    assert "was recalled: do not use it." in str(refused.value)
    assert not SessionRecord.objects.exists()


@pytest.mark.django_db
def test_the_booking_gates_are_judged_at_the_bookings_start_when_later(
    practitioner: User,
) -> None:
    # A negative reading valid today but expired by a booking in three weeks.
    with time_machine.travel(NOW, tick=False):
        world = _allergy("negative", days_ago=170)(practitioner)
        later = make_booking(
            patient=world.patient,
            practitioner=practitioner,
            protocol=world.protocol,
            starts_at=NOW + timedelta(days=21),
        )
        flags = booking_readiness(bookings=[world.booking, later], at=NOW)
    assert flags[world.booking.pk] == []
    assert {f.reception_note for f in flags[later.pk]} == {"allergy test needed"}


@pytest.mark.django_db
def test_a_course_session_is_judged_on_the_cocktail_it_starts_from(
    practitioner: User, receptionist: User
) -> None:
    # The first session of the course added an ampoule whose ingredient was
    # never allergy-tested... through the practitioner's own form the second
    # session starts from that cocktail, so reception's flag must say so too.
    from tests.factories import IngredientFactory, ProductFactory
    from tests.treatments.test_session_helpers import session_post
    from treatments.models import TreatmentCourse

    with time_machine.travel(NOW - timedelta(days=14), tick=False):
        world = make_world(practitioner)
        course = TreatmentCourse.objects.create(
            patient=world.patient,
            protocol=world.protocol,
            planned_sessions=4,
            interval="fortnightly",
            created_by=practitioner,
        )
        Booking.objects.filter(pk=world.booking.pk).update(course=course)
        first = world.booking
        extra = ProductFactory(ingredients=[IngredientFactory(name="Vitamin C ampoule")])
        extra_batch = BatchFactory(product=extra)
        give_and_read(
            world.patient,
            practitioner,
            list(extra.ingredients.all()),
            given_at=NOW - timedelta(days=16),
        )
        from django.test import Client

        from tests.conftest import sign_in

        client = sign_in(Client(), practitioner)
        address = reverse("treatments:session_record", kwargs={"booking": first.uuid})
        done = client.post(address, session_post([*world.batches, extra_batch]))
        assert done.status_code == 302, done.content.decode()[:2000]
    second = make_booking(
        patient=world.patient,
        practitioner=practitioner,
        protocol=world.protocol,
        course=course,
        starts_at=NOW + timedelta(days=200),
        status="booked",
    )
    with time_machine.travel(NOW, tick=False):
        second = Booking.objects.select_related("protocol").get(pk=second.pk)
        flags = booking_readiness(bookings=[second], at=NOW)[second.pk]
    # 200 days on, every reading is past its 6 months, the ampoule's included.
    assert len(flags) == len(world.ingredients) + 1
    assert {f.reception_note for f in flags} == {"allergy test needed"}

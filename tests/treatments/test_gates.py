"""The clinical safety gates, case by case."""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import timezone

from clinic.models import User
from consent.models import ConsentFormVersion, ConsentWithdrawal, SignedConsent
from consent.services import consent_sections
from patients.models import Patient
from tests.conftest import frozen_at
from tests.factories import (
    BatchFactory,
    ConsentFormVersionFactory,
    IngredientFactory,
    PatientFactory,
    ProductFactory,
    ProtocolFactory,
    make_history,
)
from treatments.gates import (
    GateFailure,
    gate_allergy,
    gate_batches,
    gate_consent,
    gate_contraindications,
    gate_medical_history,
    gates_check,
    ingredients_of,
)
from treatments.models import AllergyTest, BatchStatus, Ingredient, PatientAllergy, Protocol
from treatments.services.allergy import allergy_test_give, allergy_test_read

pytestmark = pytest.mark.django_db

LONDON = ZoneInfo("Europe/London")
GIVEN = datetime(2026, 11, 23, 14, 0, tzinfo=LONDON)
# The gates are asked a week after GIVEN, whatever the wall clock says.
NOW = datetime(2026, 11, 30, 10, 0, tzinfo=LONDON)


frozen = frozen_at(NOW)


@pytest.fixture
def patient() -> Patient:
    return PatientFactory()


def give(
    patient: Patient, practitioner: User, *ingredients: Ingredient, at: datetime = GIVEN
) -> AllergyTest:
    with time_machine.travel(at, tick=False):
        return allergy_test_give(
            patient=patient,
            given_by=practitioner,
            ingredients=ingredients,
            products=[],
            site="Inner left forearm",
            given_at=at,
        )


def read(test: AllergyTest, practitioner: User, result: str, *, after: timedelta) -> AllergyTest:
    with time_machine.travel(test.given_at + after, tick=False):
        reaction = "Red wheal, 7 mm" if result == "positive" else ""
        return allergy_test_read(test=test, read_by=practitioner, result=result, reaction=reaction)


# --- Gate 1 -----------------------------------------------------------------------------


def test_gate_1_fails_without_any_medical_history(patient: Patient) -> None:
    [failure] = gate_medical_history(patient=patient, at=timezone.now())
    assert failure.gate == 1
    assert "No medical history" in failure.sentence
    assert failure.reception_note == "medical history needed"


def test_gate_1_fails_once_the_history_is_older_than_the_clinics_limit(
    patient: Patient, practitioner: User
) -> None:
    with time_machine.travel(datetime(2025, 11, 1, 10, 0, tzinfo=LONDON), tick=False):
        make_history(patient, practitioner)
    assert (
        gate_medical_history(patient=patient, at=datetime(2026, 11, 1, 10, 0, tzinfo=LONDON)) == []
    )
    [failure] = gate_medical_history(
        patient=patient, at=datetime(2026, 11, 2, 10, 0, tzinfo=LONDON)
    )
    assert "older than 365 days" in failure.sentence
    assert "1 Nov 2025" in failure.sentence


# --- Gate 2 -----------------------------------------------------------------------------


def test_gate_2_blocks_on_an_absolute_contraindication_but_not_on_a_caution(
    patient: Patient, practitioner: User
) -> None:
    make_history(patient, practitioner, cold_sores_history=True)
    assert gate_contraindications(patient=patient, at=timezone.now()) == []
    make_history(patient, practitioner, pregnant=True, cold_sores_history=True)
    failures = gate_contraindications(patient=patient, at=timezone.now())
    assert [f.gate for f in failures] == [2]
    assert "pregnan" in failures[0].sentence.lower()
    assert "pregnan" not in failures[0].reception_note.lower()
    assert failures[0].reception_note


def test_gate_2_gives_the_day_a_time_bound_contraindication_lifts(
    patient: Patient, practitioner: User
) -> None:
    # Eighteen months after the last day of August is the last day of February.
    make_history(patient, practitioner, isotretinoin_last_dose=date(2026, 8, 31))
    [failure] = gate_contraindications(patient=patient, at=timezone.now())
    assert failure.earliest is not None
    assert timezone.localtime(failure.earliest).date() == date(2028, 2, 29)


def test_gate_2_says_nothing_without_a_history(patient: Patient) -> None:
    assert gate_contraindications(patient=patient, at=timezone.now()) == []


# --- Gate 3 -----------------------------------------------------------------------------


def sign(patient: Patient, version: ConsentFormVersion, witness: User) -> SignedConsent:
    text = f"{version.form.title} v{version.number}"
    return SignedConsent.objects.create(
        patient=patient,
        version=version,
        text=text,
        text_sha256=hashlib.sha256(text.encode()).hexdigest(),
        sections=consent_sections(version=version, photo_consent=False),
        sections_confirmed=["procedure"],
        photo_consent=False,
        signer_name=patient.full_name,
        signature="consent/signatures/dummy.png",
        signature_sha256="a" * 64,
        signed_at=timezone.now(),
        witness=witness,
    )


@pytest.fixture
def protocol() -> Protocol:
    return ProtocolFactory()


def test_gate_3_fails_when_the_form_has_no_published_version(
    patient: Patient, protocol: Protocol
) -> None:
    [failure] = gate_consent(patient=patient, protocol=protocol, at=timezone.now())
    assert failure.gate == 3
    assert "no published version" in failure.sentence


def test_gate_3_fails_when_not_signed_and_passes_once_signed(
    patient: Patient, protocol: Protocol, practitioner: User
) -> None:
    version = ConsentFormVersionFactory(form=protocol.consent_form)
    [failure] = gate_consent(patient=patient, protocol=protocol, at=timezone.now())
    assert "has not signed" in failure.sentence
    assert failure.reception_note == "consent needed"
    sign(patient, version, practitioner)
    assert gate_consent(patient=patient, protocol=protocol, at=timezone.now()) == []


def test_gate_3_asks_for_re_consent_when_a_newer_version_is_published(
    patient: Patient, protocol: Protocol, practitioner: User
) -> None:
    first = ConsentFormVersionFactory(form=protocol.consent_form)
    sign(patient, first, practitioner)
    ConsentFormVersionFactory(form=protocol.consent_form)
    [failure] = gate_consent(patient=patient, protocol=protocol, at=timezone.now())
    assert "Re-consent needed" in failure.sentence
    assert failure.reception_note == "re-consent needed"


def test_gate_3_fails_when_the_consent_was_withdrawn(
    patient: Patient, protocol: Protocol, practitioner: User
) -> None:
    version = ConsentFormVersionFactory(form=protocol.consent_form)
    signed = sign(patient, version, practitioner)
    ConsentWithdrawal.objects.create(
        signed_consent=signed,
        reason="Changed her mind.",
        withdrawn_at=timezone.now(),
        recorded_by=practitioner,
    )
    [failure] = gate_consent(patient=patient, protocol=protocol, at=timezone.now())
    assert "withdrew" in failure.sentence
    assert failure.reception_note == "consent needed"


# --- Gate 4 -----------------------------------------------------------------------------


def test_gate_4_fails_without_any_test(patient: Patient) -> None:
    ingredient = IngredientFactory(name="Vitamin C")
    assert gate_allergy(patient=patient, ingredients=[ingredient], at=timezone.now()) == [
        GateFailure(4, "No allergy test for Vitamin C.", "allergy test needed", None)
    ]


def test_gate_4_waits_for_a_pending_reading_and_names_when_it_is_due(
    patient: Patient, practitioner: User
) -> None:
    ingredient = IngredientFactory(name="Vitamin C")
    test = give(patient, practitioner, ingredient)
    [failure] = gate_allergy(
        patient=patient, ingredients=[ingredient], at=GIVEN + timedelta(hours=3)
    )
    assert failure.reception_note == "allergy reading due Tue 24 Nov, 14:00"
    assert failure.earliest == test.read_due_at
    assert "Vitamin C" in failure.sentence


def test_gate_4_passes_with_a_negative_reading_taken_24_hours_after_the_test(
    patient: Patient, practitioner: User
) -> None:
    ingredient = IngredientFactory(name="Vitamin C")
    read(
        give(patient, practitioner, ingredient), practitioner, "negative", after=timedelta(hours=24)
    )
    at = GIVEN + timedelta(days=2)
    assert gate_allergy(patient=patient, ingredients=[ingredient], at=at) == []


def test_gate_4_negative_reading_is_valid_for_six_calendar_months_to_the_minute(
    patient: Patient, practitioner: User
) -> None:
    ingredient = IngredientFactory(name="Hyaluronic acid")
    given = datetime(2026, 2, 27, 10, 0, tzinfo=LONDON)
    test = read(
        give(patient, practitioner, ingredient, at=given),
        practitioner,
        "negative",
        after=timedelta(hours=24),
    )
    assert test.read_at is not None
    # Read at 10:00 on 28 Feb (GMT): valid to 10:00 on 28 Aug on the clinic's
    # clock (BST), not to 10:00 UTC, which would be 11:00 in the clinic.
    assert timezone.localtime(test.read_at) == datetime(2026, 2, 28, 10, 0, tzinfo=LONDON)
    expires = datetime(2026, 8, 28, 10, 0, tzinfo=LONDON)
    assert gate_allergy(patient=patient, ingredients=[ingredient], at=expires) == []
    [failure] = gate_allergy(
        patient=patient, ingredients=[ingredient], at=expires + timedelta(minutes=1)
    )
    assert failure.sentence == (
        "The negative allergy test for Hyaluronic acid from Sat 28 Feb is older than "
        "6 months: test again."
    )


def test_gate_4_blocks_for_ever_after_a_positive_reading_even_after_a_later_negative(
    patient: Patient, practitioner: User
) -> None:
    ingredient = IngredientFactory(name="Vitamin C")
    other = IngredientFactory(name="Organic silicon")
    positive = read(
        give(patient, practitioner, ingredient, other),
        practitioner,
        "positive",
        after=timedelta(hours=25),
    )
    assert set(PatientAllergy.objects.values_list("ingredient__name", flat=True)) == {
        "Vitamin C",
        "Organic silicon",
    }
    later = give(patient, practitioner, ingredient, at=GIVEN + timedelta(days=5))
    read(later, practitioner, "negative", after=timedelta(hours=24))
    failures = gate_allergy(patient=patient, ingredients=[ingredient], at=GIVEN + timedelta(days=7))
    assert [f.sentence for f in failures] == [
        "Allergic to Vitamin C: positive test read on Tue 24 Nov."
    ]
    assert failures[0].earliest is None
    assert positive.read_at is not None


def test_gate_4_blocks_on_an_allergy_recorded_without_a_test(
    patient: Patient, practitioner: User
) -> None:
    ingredient = IngredientFactory(name="Lidocaine")
    PatientAllergy.objects.create(patient=patient, ingredient=ingredient, recorded_by=practitioner)
    [failure] = gate_allergy(patient=patient, ingredients=[ingredient], at=timezone.now())
    assert failure.sentence.startswith("Allergic to Lidocaine: recorded on")


def test_gate_4_judges_each_ingredient_on_its_own(patient: Patient, practitioner: User) -> None:
    tested = IngredientFactory(name="Vitamin C")
    untested = IngredientFactory(name="Biotin")
    read(give(patient, practitioner, tested), practitioner, "negative", after=timedelta(hours=24))
    failures = gate_allergy(
        patient=patient, ingredients=[tested, untested], at=GIVEN + timedelta(days=2)
    )
    assert [f.sentence for f in failures] == ["No allergy test for Biotin."]


def test_gate_4_ignores_another_patients_tests(patient: Patient, practitioner: User) -> None:
    ingredient = IngredientFactory(name="Vitamin C")
    read(
        give(PatientFactory(), practitioner, ingredient),
        practitioner,
        "negative",
        after=timedelta(hours=24),
    )
    [failure] = gate_allergy(
        patient=patient, ingredients=[ingredient], at=GIVEN + timedelta(days=2)
    )
    assert failure.sentence == "No allergy test for Vitamin C."


@pytest.mark.parametrize("count", [1, 15])
def test_gate_4_uses_a_fixed_number_of_queries(
    patient: Patient, practitioner: User, count: int, django_assert_num_queries
) -> None:
    ingredients = [IngredientFactory() for _ in range(count)]
    read(
        give(patient, practitioner, *ingredients),
        practitioner,
        "negative",
        after=timedelta(hours=24),
    )
    give(patient, practitioner, *ingredients, at=GIVEN + timedelta(days=1))
    PatientAllergy.objects.create(
        patient=patient, ingredient=ingredients[0], recorded_by=practitioner
    )
    # The facts (3), and the clinic's settings for the reading's validity (1).
    with django_assert_num_queries(4):
        failures = gate_allergy(
            patient=patient, ingredients=ingredients, at=GIVEN + timedelta(days=3)
        )
    assert len(failures) == 1


# --- Gate 5 -----------------------------------------------------------------------------


def test_gate_5_refuses_expired_and_recalled_batches(practitioner: User) -> None:
    today = date(2026, 11, 23)
    good = BatchFactory(received_on=today - timedelta(days=30), expiry_date=today)
    expired = BatchFactory(
        lot_number="OLD1",
        received_on=today - timedelta(days=400),
        expiry_date=today - timedelta(days=1),
    )
    recalled = BatchFactory(
        lot_number="BAD1",
        status=BatchStatus.RECALLED,
        recalled_at=timezone.now(),
        recalled_by=practitioner,
        recall_reason="Sterility not assured.",
    )
    failures = gate_batches(batches=[good, expired, recalled], on=today)
    assert [f.gate for f in failures] == [5, 5]
    assert "lot OLD1 expired on Sun 22 Nov" in failures[0].sentence
    assert "lot BAD1 was recalled" in failures[1].sentence
    assert gate_batches(batches=[good], on=today) == []


# --- All together -----------------------------------------------------------------------


def test_ingredients_of_products_come_once_each_by_name() -> None:
    a, b, c = (IngredientFactory(name=n) for n in ("Vitamin C", "Biotin", "Zinc"))
    products = [ProductFactory(ingredients=[a, b]), ProductFactory(ingredients=[b, c])]
    assert ingredients_of(products) == [b, a, c]
    assert ingredients_of([]) == []


def test_gates_check_returns_every_failure_in_gate_order(
    patient: Patient, practitioner: User, protocol: Protocol
) -> None:
    make_history(patient, practitioner, pregnant=True)
    ingredient = IngredientFactory(name="Vitamin C")
    recalled = BatchFactory(
        status=BatchStatus.RECALLED,
        recalled_at=timezone.now(),
        recalled_by=practitioner,
        recall_reason="Sterility not assured.",
    )
    failures = gates_check(
        patient=patient,
        protocol=protocol,
        ingredients=[ingredient],
        batches=[recalled],
        at=timezone.now(),
    )
    assert [f.gate for f in failures] == [2, 3, 4, 5]


def test_gates_check_passes_when_everything_is_in_order(
    patient: Patient, practitioner: User, protocol: Protocol
) -> None:
    version = ConsentFormVersionFactory(form=protocol.consent_form)
    sign(patient, version, practitioner)
    ingredient = IngredientFactory()
    product = ProductFactory(ingredients=[ingredient])
    batch = BatchFactory(product=product)
    now = timezone.now()
    test = give(patient, practitioner, *ingredients_of([product]), at=now - timedelta(days=3))
    read(test, practitioner, "negative", after=timedelta(hours=24))
    make_history(patient, practitioner)
    assert (
        gates_check(
            patient=patient,
            protocol=protocol,
            ingredients=ingredients_of([product]),
            batches=[batch],
            at=now,
        )
        == []
    )

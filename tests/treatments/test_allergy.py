"""Allergy tests: given, read no earlier than 24 hours later, once; a positive
reading records allergies. Pages for practitioners only, and the task list."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DatabaseError, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from clinic.models import AuditAction, AuditEvent, User
from patients.models import Patient
from tests.conftest import media_in_tmp, sign_in
from tests.factories import BatchFactory, IngredientFactory, PatientFactory, ProductFactory
from treatments.models import AllergyResult, AllergyTest, BatchStatus, Ingredient, PatientAllergy
from treatments.services.allergy import (
    AllergyReadingRefusedError,
    allergy_test_give,
    allergy_test_read,
)

pytestmark = pytest.mark.django_db

LONDON = ZoneInfo("Europe/London")
# Mon 23 Nov 2026, 14:05 in London (GMT in November).
GIVEN = datetime(2026, 11, 23, 14, 5, tzinfo=LONDON)


media_root = media_in_tmp()


@pytest.fixture
def patient() -> Patient:
    return PatientFactory(first_name="Amelia", last_name="Hart")


@pytest.fixture
def vitamin_c() -> Ingredient:
    return IngredientFactory(name="Vitamin C")


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


@contextmanager
def signed_in_at(client: Client, user: User, moment: datetime) -> Iterator[Client]:
    """The clock at `moment`, with `user` signed in then (the idle timer follows the clock)."""
    with time_machine.travel(moment, tick=False):
        yield sign_in(client, user)


def read_url(test: AllergyTest) -> str:
    return reverse(
        "treatments:allergy_test_read", kwargs={"patient": test.patient.uuid, "test": test.uuid}
    )


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (220, 90, 90)).save(buffer, "JPEG")
    return buffer.getvalue()


# --- Giving a test ----------------------------------------------------------------------


def test_a_product_counts_as_all_its_ingredients_and_the_reading_is_due_24_hours_later(
    patient: Patient, practitioner: User, vitamin_c: Ingredient
) -> None:
    hyaluronic = IngredientFactory(name="Hyaluronic acid")
    silicon = IngredientFactory(name="Organic silicon")
    product = ProductFactory(ingredients=[hyaluronic, silicon])
    with time_machine.travel(GIVEN, tick=False):
        test = allergy_test_give(
            patient=patient,
            given_by=practitioner,
            ingredients=[vitamin_c, silicon],
            products=[product],
            site="Inner left forearm",
            given_at=GIVEN,
        )
    assert set(test.ingredients.all()) == {vitamin_c, hyaluronic, silicon}
    assert list(test.products.all()) == [product]
    assert test.read_due_at == GIVEN + timedelta(hours=24)
    event = AuditEvent.objects.get(object_type="treatments.allergytest", object_id=str(test.uuid))
    assert event.action == AuditAction.TEST_GIVEN
    assert event.actor == practitioner
    assert event.patient_ref == patient.uuid


def test_the_form_records_a_test_and_defaults_the_time_to_now_in_the_clinics_zone(
    patient: Patient, practitioner: User, vitamin_c: Ingredient, client: Client
) -> None:
    sign_in(client, practitioner)
    url = reverse("treatments:allergy_test_new", kwargs={"patient": patient.uuid})
    with time_machine.travel(datetime(2026, 7, 1, 9, 30, tzinfo=LONDON), tick=False):
        page = client.get(url)
        assert page.status_code == 200
        assert 'value="01/07/2026 09:30"' in page.content.decode()  # BST, not UTC
        response = client.post(
            url,
            {
                "ingredients": [vitamin_c.pk],
                "site": "Inner left forearm",
                "given_at": "2026-07-01T09:15",
            },
        )
    test = AllergyTest.objects.get()
    assert response.status_code == 302
    assert response["Location"] == test.get_absolute_url()
    assert test.given_at == datetime(2026, 7, 1, 9, 15, tzinfo=LONDON)
    assert test.given_by == practitioner


def test_an_empty_choice_of_ingredients_and_products_is_refused_and_keeps_what_was_typed(
    patient: Patient, practitioner: User, client: Client
) -> None:
    sign_in(client, practitioner)
    response = client.post(
        reverse("treatments:allergy_test_new", kwargs={"patient": patient.uuid}),
        {"site": "Inner left forearm", "given_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M")},
    )
    assert response.status_code == 400
    assert "Choose at least one ingredient or product" in response.content.decode()
    assert 'value="Inner left forearm"' in response.content.decode()
    assert not AllergyTest.objects.exists()


def test_the_service_also_refuses_an_empty_choice(patient: Patient, practitioner: User) -> None:
    with pytest.raises(ValidationError, match="Choose at least one ingredient or product"):
        allergy_test_give(
            patient=patient,
            given_by=practitioner,
            ingredients=[],
            products=[],
            site="Forearm",
            given_at=timezone.now(),
        )


@pytest.mark.parametrize(
    ("offset", "message"),
    [
        (timedelta(hours=2), "cannot be in the future"),
        (-timedelta(days=8), "cannot be more than 7 days ago"),
    ],
)
def test_a_time_given_in_the_future_or_over_a_week_ago_is_refused(
    patient: Patient,
    practitioner: User,
    vitamin_c: Ingredient,
    client: Client,
    offset: timedelta,
    message: str,
) -> None:
    when = GIVEN + offset
    with signed_in_at(client, practitioner, GIVEN):
        response = client.post(
            reverse("treatments:allergy_test_new", kwargs={"patient": patient.uuid}),
            {
                "ingredients": [vitamin_c.pk],
                "site": "Forearm",
                "given_at": when.strftime("%Y-%m-%dT%H:%M"),
                "late_entry_reason": "Given on paper.",
            },
        )
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not AllergyTest.objects.exists()
    with time_machine.travel(GIVEN, tick=False), pytest.raises(ValidationError, match=message):
        allergy_test_give(
            patient=patient,
            given_by=practitioner,
            ingredients=[vitamin_c],
            products=[],
            site="Forearm",
            given_at=when,
            late_entry_reason="Given on paper.",
        )


@pytest.mark.parametrize("kind", ["expired", "recalled"])
def test_an_expired_or_recalled_batch_cannot_be_chosen(
    patient: Patient, practitioner: User, vitamin_c: Ingredient, client: Client, kind: str
) -> None:
    today = timezone.localdate()
    usable = BatchFactory(lot_number="GOOD1")
    if kind == "expired":
        bad = BatchFactory(
            lot_number="BAD1",
            received_on=today - timedelta(days=400),
            expiry_date=today - timedelta(days=1),
        )
    else:
        bad = BatchFactory(
            lot_number="BAD1",
            status=BatchStatus.RECALLED,
            recalled_at=timezone.now(),
            recalled_by=practitioner,
            recall_reason="Contamination found by the maker.",
        )
    sign_in(client, practitioner)
    url = reverse("treatments:allergy_test_new", kwargs={"patient": patient.uuid})
    page = client.get(url).content.decode()
    assert "GOOD1" in page
    assert "BAD1" not in page
    response = client.post(
        url,
        {
            "ingredients": [vitamin_c.pk],
            "batch": bad.pk,
            "site": "Forearm",
            "given_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M"),
        },
    )
    assert response.status_code == 400
    assert "This batch cannot be used" in response.content.decode()
    assert not AllergyTest.objects.exists()
    with pytest.raises(ValidationError, match="expired or recalled"):
        allergy_test_give(
            patient=patient,
            given_by=practitioner,
            ingredients=[vitamin_c],
            products=[],
            site="Forearm",
            given_at=timezone.now(),
            batch=bad,
        )
    assert usable.is_usable_on(today)


# --- Reading ----------------------------------------------------------------------------


def test_reading_before_24_hours_is_refused_with_the_time_it_opens(
    patient: Patient, practitioner: User, vitamin_c: Ingredient, client: Client
) -> None:
    test = give(patient, practitioner, vitamin_c)
    with signed_in_at(client, practitioner, GIVEN + timedelta(hours=23, minutes=59)):
        response = client.post(read_url(test), {"result": "positive", "reaction": "Red wheal 6 mm"})
    assert response.status_code == 409
    page = response.content.decode()
    assert "This test can be read from Tue 24 Nov, 14:05." in page
    assert "Red wheal 6 mm" in page  # what was typed is kept
    test.refresh_from_db()
    assert test.read_at is None
    assert not PatientAllergy.objects.exists()


def test_reading_at_exactly_24_hours_is_accepted(
    patient: Patient, practitioner: User, vitamin_c: Ingredient, client: Client
) -> None:
    test = give(patient, practitioner, vitamin_c)
    with signed_in_at(client, practitioner, GIVEN + timedelta(hours=24)):
        response = client.post(read_url(test), {"result": "negative"})
    assert response.status_code == 302
    test.refresh_from_db()
    assert test.result == AllergyResult.NEGATIVE
    assert test.read_at == GIVEN + timedelta(hours=24)
    assert test.read_by == practitioner
    event = AuditEvent.objects.get(action=AuditAction.TEST_READ, object_id=str(test.uuid))
    assert "result" in event.changed_fields


def test_a_second_reading_is_refused(
    patient: Patient, practitioner: User, vitamin_c: Ingredient, client: Client
) -> None:
    test = give(patient, practitioner, vitamin_c)
    with signed_in_at(client, practitioner, GIVEN + timedelta(hours=25)):
        assert client.post(read_url(test), {"result": "negative"}).status_code == 302
        response = client.post(read_url(test), {"result": "positive", "reaction": "Redness"})
    assert response.status_code == 409
    assert "already read" in response.content.decode()
    test.refresh_from_db()
    assert test.result == AllergyResult.NEGATIVE
    assert not PatientAllergy.objects.exists()
    with (
        time_machine.travel(GIVEN + timedelta(hours=26), tick=False),
        pytest.raises(AllergyReadingRefusedError, match="already read"),
    ):
        allergy_test_read(test=test, read_by=practitioner, result="negative")


def test_a_positive_reading_needs_a_description(
    patient: Patient, practitioner: User, vitamin_c: Ingredient, client: Client
) -> None:
    test = give(patient, practitioner, vitamin_c)
    with signed_in_at(client, practitioner, GIVEN + timedelta(hours=25)):
        response = client.post(read_url(test), {"result": "positive", "reaction": "  "})
        assert response.status_code == 400
        assert "Describe the reaction seen." in response.content.decode()
        with pytest.raises(ValidationError):
            allergy_test_read(test=test, read_by=practitioner, result="positive", reaction="")
    test.refresh_from_db()
    assert test.read_at is None


def test_a_positive_reading_records_an_allergy_to_every_ingredient_tested_once(
    patient: Patient,
    practitioner: User,
    vitamin_c: Ingredient,
    client: Client,
    media_root: Path,
) -> None:
    hyaluronic = IngredientFactory(name="Hyaluronic acid")
    earlier = give(patient, practitioner, vitamin_c, at=GIVEN - timedelta(days=2))
    with time_machine.travel(GIVEN - timedelta(days=1), tick=False):
        allergy_test_read(test=earlier, read_by=practitioner, result="positive", reaction="Wheal")
    assert PatientAllergy.objects.count() == 1
    test = give(patient, practitioner, vitamin_c, hyaluronic)
    with signed_in_at(client, practitioner, GIVEN + timedelta(hours=25)):
        response = client.post(
            read_url(test),
            {
                "result": "positive",
                "reaction": "Raised red wheal, 8 mm, itching",
                "photo": SimpleUploadedFile("arm.jpg", jpeg(), content_type="image/jpeg"),
            },
        )
    assert response.status_code == 302
    allergies = PatientAllergy.objects.filter(patient=patient).order_by("ingredient__name")
    assert [a.ingredient for a in allergies] == [hyaluronic, vitamin_c]  # no duplicate
    assert allergies[0].source_test == test
    assert allergies[0].recorded_by == practitioner
    test.refresh_from_db()
    assert test.photo.name == f"allergy/{test.uuid}.jpg"
    assert (media_root / test.photo.name).exists()
    assert (
        AuditEvent.objects.filter(
            action=AuditAction.CREATE, object_type="treatments.patientallergy"
        ).count()
        == 2
    )
    # The photo is opened a minute after the reading, on the same frozen clock.
    with time_machine.travel(GIVEN + timedelta(hours=25, minutes=1), tick=False):
        photo = client.get(
            reverse(
                "treatments:allergy_test_photo",
                kwargs={"patient": patient.uuid, "test": test.uuid},
            )
        )
    assert photo.status_code == 200
    assert photo["Content-Type"] == "image/jpeg"


def test_a_file_that_is_not_an_image_is_refused_and_nothing_is_read(
    patient: Patient, practitioner: User, vitamin_c: Ingredient, client: Client
) -> None:
    test = give(patient, practitioner, vitamin_c)
    with signed_in_at(client, practitioner, GIVEN + timedelta(hours=25)):
        response = client.post(
            read_url(test),
            {
                "result": "positive",
                "reaction": "Wheal",
                "photo": SimpleUploadedFile("arm.jpg", b"not a picture", content_type="image/jpeg"),
            },
        )
    assert response.status_code == 400
    test.refresh_from_db()
    assert test.read_at is None
    assert not PatientAllergy.objects.exists()


def test_the_database_refuses_to_change_a_read_test(
    patient: Patient, practitioner: User, vitamin_c: Ingredient
) -> None:
    test = give(patient, practitioner, vitamin_c)
    with time_machine.travel(GIVEN + timedelta(hours=25), tick=False):
        allergy_test_read(test=test, read_by=practitioner, result="negative")
    with pytest.raises(DatabaseError), transaction.atomic():
        AllergyTest.objects.filter(pk=test.pk).update(result="positive", reaction="Changed")
    with pytest.raises(DatabaseError), transaction.atomic():
        AllergyTest.objects.filter(pk=test.pk).delete()
    test.refresh_from_db()
    assert test.result == AllergyResult.NEGATIVE


# --- Access -----------------------------------------------------------------------------


def _routes(test: AllergyTest) -> list[tuple[str, str]]:
    p, t = test.patient.uuid, test.uuid
    return [
        ("get", reverse("treatments:allergy_tests", kwargs={"patient": p})),
        ("get", reverse("treatments:allergy_test_new", kwargs={"patient": p})),
        ("post", reverse("treatments:allergy_test_new", kwargs={"patient": p})),
        ("get", reverse("treatments:allergy_test_detail", kwargs={"patient": p, "test": t})),
        ("post", reverse("treatments:allergy_test_read", kwargs={"patient": p, "test": t})),
        ("get", reverse("treatments:allergy_test_photo", kwargs={"patient": p, "test": t})),
        ("get", reverse("treatments:tasks")),
    ]


@pytest.mark.parametrize("persona", ["receptionist", "manager"])
def test_reception_and_managers_are_refused_every_allergy_route(
    patient: Patient,
    practitioner: User,
    vitamin_c: Ingredient,
    client: Client,
    persona: str,
    request: pytest.FixtureRequest,
) -> None:
    test = give(patient, practitioner, vitamin_c)
    user = request.getfixturevalue(persona)
    for method, url in _routes(test):
        data = {"result": "negative"} if method == "post" else None
        with signed_in_at(client, user, GIVEN + timedelta(hours=25)):
            response = getattr(client, method)(url, data)
        assert response.status_code == 403, url
    test.refresh_from_db()
    assert test.read_at is None


def test_another_patients_test_under_this_patients_url_is_not_found(
    patient: Patient, practitioner: User, vitamin_c: Ingredient, client: Client
) -> None:
    other = give(PatientFactory(), practitioner, vitamin_c)
    kwargs = {"patient": patient.uuid, "test": other.uuid}
    with signed_in_at(client, practitioner, GIVEN + timedelta(hours=25)):
        detail = client.get(reverse("treatments:allergy_test_detail", kwargs=kwargs))
        assert detail.status_code == 404
        response = client.post(
            reverse("treatments:allergy_test_read", kwargs=kwargs), {"result": "negative"}
        )
    assert response.status_code == 404
    other.refresh_from_db()
    assert other.read_at is None


# --- Pages and their query budgets ------------------------------------------------------


def _many_tests(patient: Patient, practitioner: User, count: int) -> None:
    for n in range(count):
        ingredients = [IngredientFactory(), IngredientFactory()]
        test = give(patient, practitioner, *ingredients, at=GIVEN - timedelta(days=10 + n))
        test.products.set([ProductFactory(ingredients=ingredients)])
        if n % 2:
            with time_machine.travel(test.read_due_at + timedelta(hours=1), tick=False):
                allergy_test_read(
                    test=test, read_by=practitioner, result="positive", reaction="Red"
                )


@pytest.mark.parametrize("count", [1, 20])
def test_the_patients_allergy_page_has_a_fixed_query_budget(
    patient: Patient,
    practitioner: User,
    client: Client,
    count: int,
    django_assert_max_num_queries,
) -> None:
    _many_tests(patient, practitioner, count)
    sign_in(client, practitioner)
    url = reverse("treatments:allergy_tests", kwargs={"patient": patient.uuid})
    with django_assert_max_num_queries(14):
        response = client.get(url)
    assert response.status_code == 200
    assert response.content.decode().count('data-testid="allergy-test"') == count
    assert AuditEvent.objects.filter(
        action=AuditAction.VIEW, object_type="treatments.allergytest", patient_ref=patient.uuid
    ).exists()


@pytest.mark.parametrize("count", [1, 20])
def test_the_test_page_has_a_fixed_query_budget(
    patient: Patient,
    practitioner: User,
    client: Client,
    count: int,
    django_assert_max_num_queries,
) -> None:
    ingredients = [IngredientFactory() for _ in range(count)]
    test = give(patient, practitioner, *ingredients)
    test.products.set([ProductFactory(ingredients=ingredients[:2])])
    sign_in(client, practitioner)
    with django_assert_max_num_queries(13):
        response = client.get(test.get_absolute_url())
    assert response.status_code == 200
    assert AuditEvent.objects.filter(action=AuditAction.VIEW, object_id=str(test.uuid)).exists()


@pytest.mark.parametrize("count", [1, 20])
def test_the_task_list_shows_due_and_upcoming_readings_in_a_fixed_number_of_queries(
    practitioner: User, client: Client, count: int, django_assert_max_num_queries
) -> None:
    now = GIVEN + timedelta(days=1, hours=2)
    for n in range(count):
        patient = PatientFactory()
        give(patient, practitioner, IngredientFactory(), at=now - timedelta(hours=30 + n))
        give(patient, practitioner, IngredientFactory(), at=now - timedelta(hours=20 - n % 10))
    read = give(PatientFactory(), practitioner, IngredientFactory(), at=now - timedelta(hours=40))
    with time_machine.travel(now - timedelta(hours=10), tick=False):
        allergy_test_read(test=read, read_by=practitioner, result="negative")
    later = give(PatientFactory(), practitioner, IngredientFactory(), at=now)  # due in 24 h
    with (
        signed_in_at(client, practitioner, now + timedelta(minutes=1)),
        # 15: the clinic's settings (its name, the validity windows) read once a page.
        django_assert_max_num_queries(15),
    ):
        response = client.get(reverse("treatments:tasks"))
    assert response.status_code == 200
    page = response.content.decode()
    due, upcoming = page.split('data-testid="tasks-upcoming"')
    assert due.count('data-testid="task"') == count
    assert upcoming.count('data-testid="task"') == count + 1
    assert str(read.uuid) not in page
    assert str(later.uuid) in upcoming
    # Oldest first.
    shown = re.findall(r"/allergy-tests/([0-9a-f-]{36})/", due)
    expected = AllergyTest.objects.filter(read_at__isnull=True, read_due_at__lte=now).order_by(
        "read_due_at"
    )
    assert shown == [str(t.uuid) for t in expected]


def test_the_task_list_names_patient_site_and_who_gave_the_test(
    practitioner: User, client: Client
) -> None:
    patient = PatientFactory(first_name="Theo", last_name="Fairbairn")
    test = give(patient, practitioner, IngredientFactory(name="Hyaluronic acid"))
    with signed_in_at(client, practitioner, GIVEN + timedelta(hours=25)):
        page = client.get(reverse("treatments:tasks")).content.decode()
    assert "Theo Fairbairn" in page
    assert "Hyaluronic acid" in page
    assert "Inner left forearm" in page
    assert "Tue 24 Nov, 14:05" in page
    assert test.get_absolute_url() in page


# --- The wait runs from the entry: late entries -------------------------------------------

# The reported case: a test entered on Tue 24 Nov at 13:27:03 as given the day before.
ENTERED = datetime(2026, 11, 24, 13, 27, 3, tzinfo=LONDON)
PAPER = "Given on paper during the network outage."


def new_url(patient: Patient) -> str:
    return reverse("treatments:allergy_test_new", kwargs={"patient": patient.uuid})


def enter_late(
    patient: Patient,
    practitioner: User,
    *ingredients: Ingredient,
    given: datetime,
    entered: datetime,
    reason: str = PAPER,
) -> AllergyTest:
    """A test given at `given` on paper and entered here at `entered`."""
    with time_machine.travel(entered, tick=False):
        return allergy_test_give(
            patient=patient,
            given_by=practitioner,
            ingredients=ingredients,
            products=[],
            site="Inner left forearm",
            given_at=given,
            late_entry_reason=reason,
        )


def test_a_test_typed_as_given_yesterday_cannot_be_read_a_second_after_it_is_entered(
    patient: Patient, practitioner: User, vitamin_c: Ingredient, client: Client
) -> None:
    # The reported exploit: entered at 13:27:03 as given the previous day at
    # 13:27:03, then read a second later. The patient has had no wait at all here.
    with signed_in_at(client, practitioner, ENTERED):
        response = client.post(
            new_url(patient),
            {
                "ingredients": [vitamin_c.pk],
                "site": "Inner left forearm",
                "given_at": "2026-11-23T13:27:03",
                "late_entry_reason": PAPER,
            },
        )
    assert response.status_code == 302
    test = AllergyTest.objects.get()
    assert test.given_at == ENTERED - timedelta(days=1)
    assert test.entered_at == ENTERED
    with signed_in_at(client, practitioner, ENTERED + timedelta(seconds=1)):
        response = client.post(read_url(test), {"result": "negative"})
    assert response.status_code == 409
    assert "This test can be read from Wed 25 Nov, 13:27." in response.content.decode()
    test.refresh_from_db()
    assert test.read_at is None
    # It opens 24 hours after the entry: Wed 25 Nov at 13:27:03.
    assert test.read_due_at == datetime(2026, 11, 25, 13, 27, 3, tzinfo=LONDON)


def test_a_late_entry_can_be_read_24_hours_after_it_was_entered_and_not_a_second_sooner(
    patient: Patient, practitioner: User, vitamin_c: Ingredient, client: Client
) -> None:
    test = enter_late(
        patient, practitioner, vitamin_c, given=ENTERED - timedelta(hours=5), entered=ENTERED
    )
    a_day_after_entry = datetime(2026, 11, 25, 13, 27, 3, tzinfo=LONDON)
    with signed_in_at(client, practitioner, a_day_after_entry - timedelta(seconds=1)):
        refused = client.post(read_url(test), {"result": "negative"})
    assert refused.status_code == 409
    assert "This test can be read from Wed 25 Nov, 13:27." in refused.content.decode()
    with signed_in_at(client, practitioner, a_day_after_entry):
        accepted = client.post(read_url(test), {"result": "negative"})
    assert accepted.status_code == 302
    test.refresh_from_db()
    assert test.result == AllergyResult.NEGATIVE
    assert test.read_at == a_day_after_entry


def test_a_time_given_a_minute_ahead_of_the_clock_opens_the_reading_24_hours_after_it(
    patient: Patient, practitioner: User, vitamin_c: Ingredient
) -> None:
    # The practitioner's watch runs a minute fast: the wait runs from the later time.
    ahead = GIVEN + timedelta(minutes=1)
    with time_machine.travel(GIVEN, tick=False):
        test = allergy_test_give(
            patient=patient,
            given_by=practitioner,
            ingredients=[vitamin_c],
            products=[],
            site="Inner left forearm",
            given_at=ahead,
        )
    assert test.read_due_at == datetime(2026, 11, 24, 14, 6, tzinfo=LONDON)
    with (
        time_machine.travel(GIVEN + timedelta(hours=24), tick=False),
        pytest.raises(AllergyReadingRefusedError, match="from Tue 24 Nov, 14:06"),
    ):
        allergy_test_read(test=test, read_by=practitioner, result="negative")


def test_a_test_given_15_minutes_before_it_is_entered_is_on_time_and_needs_no_reason(
    patient: Patient, practitioner: User, vitamin_c: Ingredient, client: Client
) -> None:
    entered = datetime(2026, 11, 24, 10, 0, tzinfo=LONDON)
    with signed_in_at(client, practitioner, entered):
        response = client.post(
            new_url(patient),
            {
                "ingredients": [vitamin_c.pk],
                "site": "Inner left forearm",
                "given_at": "2026-11-24T09:45",
            },
        )
    assert response.status_code == 302
    test = AllergyTest.objects.get()
    assert not test.is_late_entry
    assert test.late_entry_reason == ""
    # Even on time, the wait runs from the entry: the quarter of an hour is not taken off.
    assert test.read_due_at == datetime(2026, 11, 25, 10, 0, tzinfo=LONDON)
    with signed_in_at(client, practitioner, entered):
        page = client.get(test.get_absolute_url()).content.decode()
    assert "Entered late" not in page


def test_a_test_given_15_minutes_and_a_second_before_entry_is_late_and_refused_without_a_reason(
    patient: Patient, practitioner: User, vitamin_c: Ingredient, client: Client
) -> None:
    entered = datetime(2026, 11, 24, 10, 0, 1, tzinfo=LONDON)
    typed = {
        "ingredients": [vitamin_c.pk],
        "site": "Behind the right ear",
        "given_at": "2026-11-24T09:45",
    }
    with signed_in_at(client, practitioner, entered):
        refused = client.post(new_url(patient), typed)
    assert refused.status_code == 400
    page = refused.content.decode()
    assert "This test was given more than 15 minutes ago: say why it is entered late" in page
    # Everything typed is kept.
    assert 'value="Behind the right ear"' in page
    assert 'value="2026-11-24T09:45"' in page
    assert re.search(rf'value="{vitamin_c.pk}"[^>]*checked', page)
    assert not AllergyTest.objects.exists()
    # Said together with any other problem, not one at a time.
    with signed_in_at(client, practitioner, entered):
        both = client.post(new_url(patient), {**typed, "ingredients": []}).content.decode()
    assert "Choose at least one ingredient or product." in both
    assert "say why it is entered late" in both

    with signed_in_at(client, practitioner, entered):
        accepted = client.post(new_url(patient), {**typed, "late_entry_reason": f"  {PAPER}  "})
    assert accepted.status_code == 302
    test = AllergyTest.objects.get()
    assert test.is_late_entry
    assert test.late_entry_reason == PAPER
    assert test.entered_at == entered
    assert test.read_due_at == entered + timedelta(hours=24)


def test_the_service_refuses_a_late_entry_without_a_reason_and_keeps_no_reason_for_one_on_time(
    patient: Patient, practitioner: User, vitamin_c: Ingredient
) -> None:
    with (
        time_machine.travel(GIVEN + timedelta(minutes=15, seconds=1), tick=False),
        pytest.raises(ValidationError) as refused,
    ):
        allergy_test_give(
            patient=patient,
            given_by=practitioner,
            ingredients=[vitamin_c],
            products=[],
            site="Forearm",
            given_at=GIVEN,
            late_entry_reason="   ",
        )
    assert "late_entry_reason" in refused.value.message_dict
    assert not AllergyTest.objects.exists()
    with time_machine.travel(GIVEN + timedelta(minutes=15), tick=False):
        test = allergy_test_give(
            patient=patient,
            given_by=practitioner,
            ingredients=[vitamin_c],
            products=[],
            site="Forearm",
            given_at=GIVEN,
            late_entry_reason="Typed for nothing.",
        )
    assert not test.is_late_entry
    assert test.late_entry_reason == ""


def test_a_test_given_exactly_7_days_before_entry_is_accepted_and_a_second_more_is_refused(
    patient: Patient, practitioner: User, vitamin_c: Ingredient
) -> None:
    week = enter_late(
        patient, practitioner, vitamin_c, given=ENTERED - timedelta(days=7), entered=ENTERED
    )
    assert week.read_due_at == ENTERED + timedelta(hours=24)
    with pytest.raises(ValidationError, match="cannot be more than 7 days ago"):
        enter_late(
            patient,
            practitioner,
            vitamin_c,
            given=ENTERED - timedelta(days=7, seconds=1),
            entered=ENTERED,
        )
    assert AllergyTest.objects.count() == 1


def test_a_late_entry_is_shown_on_the_test_page_the_reading_page_and_the_task_list(
    practitioner: User, vitamin_c: Ingredient, client: Client
) -> None:
    patient = PatientFactory(first_name="Theo", last_name="Fairbairn")
    test = enter_late(
        patient, practitioner, vitamin_c, given=ENTERED - timedelta(days=1), entered=ENTERED
    )
    on_time = give(PatientFactory(), practitioner, IngredientFactory(), at=ENTERED)
    shown = f"Entered late: Mon 23 Nov, 13:27 entered Tue 24 Nov, 13:27 — {PAPER}"
    with signed_in_at(client, practitioner, ENTERED + timedelta(hours=2)):
        test_page = client.get(test.get_absolute_url()).content.decode()
        refused_reading = client.post(read_url(test), {"result": "negative"})
        patients_tests = client.get(
            reverse("treatments:allergy_tests", kwargs={"patient": patient.uuid})
        ).content.decode()
        tasks = client.get(reverse("treatments:tasks")).content.decode()
        on_time_page = client.get(on_time.get_absolute_url()).content.decode()
    assert shown in test_page
    assert refused_reading.status_code == 409
    assert shown in refused_reading.content.decode()
    assert shown in patients_tests
    upcoming = tasks.split('data-testid="tasks-upcoming"')[1]
    assert "Theo Fairbairn" in upcoming
    assert shown in upcoming
    assert tasks.count("Entered late") == 1  # the test entered on time is not marked
    assert "Entered late" not in on_time_page


def test_a_late_entry_is_audited_as_a_late_entry_without_the_reason_text(
    patient: Patient, practitioner: User, vitamin_c: Ingredient
) -> None:
    late = enter_late(
        patient, practitioner, vitamin_c, given=ENTERED - timedelta(hours=3), entered=ENTERED
    )
    on_time = give(patient, practitioner, vitamin_c, at=ENTERED)
    event = AuditEvent.objects.get(action=AuditAction.TEST_GIVEN, object_id=str(late.uuid))
    assert "late_entry_reason" in event.changed_fields
    assert "entered_at" in event.changed_fields
    assert event.actor == practitioner
    assert event.patient_ref == patient.uuid
    assert PAPER not in str(event.changed_fields)  # names only: the reason may be health data
    plain = AuditEvent.objects.get(action=AuditAction.TEST_GIVEN, object_id=str(on_time.uuid))
    assert "late_entry_reason" not in plain.changed_fields


def test_the_database_refuses_to_change_when_or_why_a_test_was_entered(
    patient: Patient, practitioner: User, vitamin_c: Ingredient
) -> None:
    # Changes every constraint would allow: only the trigger stands in the way.
    late = enter_late(
        patient, practitioner, vitamin_c, given=ENTERED - timedelta(hours=3), entered=ENTERED
    )
    with pytest.raises(DatabaseError, match="never changed"), transaction.atomic():
        AllergyTest.objects.filter(pk=late.pk).update(late_entry_reason="Another reason.")
    # Given a minute ahead of the clock: the wait runs from the time given, so
    # moving the entry by 30 seconds would leave the reading time as it is.
    with time_machine.travel(GIVEN, tick=False):
        ahead = allergy_test_give(
            patient=patient,
            given_by=practitioner,
            ingredients=[vitamin_c],
            products=[],
            site="Forearm",
            given_at=GIVEN + timedelta(minutes=1),
        )
    with pytest.raises(DatabaseError, match="never changed"), transaction.atomic():
        AllergyTest.objects.filter(pk=ahead.pk).update(entered_at=GIVEN + timedelta(seconds=30))
    with time_machine.travel(GIVEN + timedelta(hours=25), tick=False):
        allergy_test_read(test=ahead, read_by=practitioner, result="negative")
    with pytest.raises(DatabaseError, match="never changed"), transaction.atomic():
        AllergyTest.objects.filter(pk=ahead.pk).update(entered_at=GIVEN + timedelta(seconds=30))
    late.refresh_from_db()
    ahead.refresh_from_db()
    assert late.late_entry_reason == PAPER
    assert ahead.entered_at == GIVEN


def test_the_database_refuses_a_test_that_breaks_the_entry_rules(
    patient: Patient, practitioner: User
) -> None:
    # As the old code stored it: 24 hours from the time typed, a day before the entry.
    with (
        pytest.raises(DatabaseError, match="allergy_read_due_24h_after_entry"),
        transaction.atomic(),
    ):
        AllergyTest.objects.create(
            patient=patient,
            given_by=practitioner,
            site="Forearm",
            given_at=ENTERED - timedelta(days=1),
            entered_at=ENTERED,
            late_entry_reason=PAPER,
            read_due_at=ENTERED,
        )
    with pytest.raises(DatabaseError, match="allergy_late_entry_has_reason"), transaction.atomic():
        AllergyTest.objects.create(
            patient=patient,
            given_by=practitioner,
            site="Forearm",
            given_at=ENTERED - timedelta(days=1),
            entered_at=ENTERED,
            read_due_at=ENTERED + timedelta(hours=24),
        )
    with (
        pytest.raises(DatabaseError, match="allergy_given_within_week_before_entry"),
        transaction.atomic(),
    ):
        AllergyTest.objects.create(
            patient=patient,
            given_by=practitioner,
            site="Forearm",
            given_at=ENTERED + timedelta(minutes=2),
            entered_at=ENTERED,
            read_due_at=ENTERED + timedelta(minutes=2, hours=24),
        )
    assert not AllergyTest.objects.exists()


def test_a_forged_entered_at_in_the_form_is_ignored(
    patient: Patient, practitioner: User, vitamin_c: Ingredient, client: Client
) -> None:
    with signed_in_at(client, practitioner, ENTERED):
        response = client.post(
            new_url(patient),
            {
                "ingredients": [vitamin_c.pk],
                "site": "Inner left forearm",
                "given_at": "2026-11-23T13:27",
                "late_entry_reason": PAPER,
                "entered_at": "2026-11-23T13:27",
                "read_due_at": "2026-11-24T13:27",
            },
        )
    assert response.status_code == 302
    test = AllergyTest.objects.get()
    assert test.entered_at == ENTERED
    assert test.read_due_at == ENTERED + timedelta(hours=24)

"""The catalogue: ingredients, products, batches and their recall, aftercare
sheets and protocols, as the manager maintains them and the practitioner reads them."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from clinic.models import AuditAction, AuditEvent, User
from patients.models import Patient
from tests.conftest import sign_in
from tests.factories import (
    AftercareSheetFactory,
    BatchFactory,
    ConsentFormFactory,
    IngredientFactory,
    PatientFactory,
    ProductFactory,
    ProtocolFactory,
)
from treatments.models import (
    ALLERGY_READING_DELAY,
    AftercareSheet,
    AllergyTest,
    Batch,
    BatchStatus,
    Ingredient,
    Product,
    Protocol,
    ProtocolCocktailLine,
)
from treatments.selectors.catalogue import batch_recipients, batches_usable
from treatments.services.catalogue import (
    BatchAlreadyRecalledError,
    CocktailLine,
    batch_recall,
    protocol_create,
    protocol_update,
)

pytestmark = pytest.mark.django_db

TODAY = date(2026, 3, 10)
NOON = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.get_default_timezone())


@pytest.fixture(autouse=True)
def frozen_clock() -> Any:
    with time_machine.travel(NOON, tick=False):
        yield


def url(name: str, **kwargs: Any) -> str:
    return reverse(f"treatments:{name}", kwargs=kwargs)


def given_allergy_test(patient: Patient, batch: Batch, by: User, at: datetime) -> AllergyTest:
    test = AllergyTest.objects.create(
        patient=patient,
        batch=batch,
        site="inner left forearm",
        given_at=at,
        given_by=by,
        entered_at=at,
        read_due_at=at + ALLERGY_READING_DELAY,
    )
    test.ingredients.set(batch.product.ingredients.all())
    return test


# --- Ingredients --------------------------------------------------------------------


def test_manager_adds_an_ingredient_and_it_is_audited(manager: User, client: Client) -> None:
    response = sign_in(client, manager).post(
        url("ingredient_create"), {"name": " Vitamin C ", "category": "vitamin", "active": "on"}
    )
    assert response.status_code == 302
    ingredient = Ingredient.objects.get()
    assert ingredient.name == "Vitamin C"
    event = AuditEvent.objects.get(action=AuditAction.CREATE, object_type="treatments.ingredient")
    assert event.object_id == str(ingredient.uuid)
    assert event.actor == manager


def test_duplicate_ingredient_name_in_another_case_is_refused(
    manager: User, client: Client
) -> None:
    IngredientFactory(name="Hyaluronic acid", category="hyaluronic_acid")
    response = sign_in(client, manager).post(
        url("ingredient_create"), {"name": "HYALURONIC ACID", "category": "hyaluronic_acid"}
    )
    assert response.status_code == 400
    assert "An ingredient with this name already exists." in response.content.decode()
    assert 'value="HYALURONIC ACID"' in response.content.decode()
    assert Ingredient.objects.count() == 1


def test_an_ingredient_is_taken_out_of_use_not_deleted(manager: User, client: Client) -> None:
    ingredient = IngredientFactory(name="Finasteride", category="medicine")
    response = sign_in(client, manager).post(
        url("ingredient_edit", ingredient=ingredient.uuid),
        {"name": "Finasteride", "category": "medicine", "version": "1"},
    )
    assert response.status_code == 302
    ingredient.refresh_from_db()
    assert ingredient.active is False
    event = AuditEvent.objects.get(action=AuditAction.UPDATE, object_type="treatments.ingredient")
    assert event.changed_fields == ["active", "version=2"]


def test_renaming_an_ingredient_keeps_its_own_name_allowed(manager: User, client: Client) -> None:
    ingredient = IngredientFactory(name="vitamin e", category="vitamin")
    response = sign_in(client, manager).post(
        url("ingredient_edit", ingredient=ingredient.uuid),
        {"name": "Vitamin E", "category": "vitamin", "active": "on", "version": "1"},
    )
    assert response.status_code == 302
    ingredient.refresh_from_db()
    assert ingredient.name == "Vitamin E"


# --- Products -----------------------------------------------------------------------


def product_data(ingredients: list[Ingredient], **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Revitalising cocktail",
        "maker": "Laboratoires Exemple",
        "concentration": "5 mL vial",
        "notes": "Keep between 2 and 8 °C.",
        "ingredients": [str(i.pk) for i in ingredients],
        "active": "on",
    }
    data.update(overrides)
    return data


def test_manager_adds_a_product_with_two_ingredients(manager: User, client: Client) -> None:
    vit_c = IngredientFactory(name="Vitamin C")
    hya = IngredientFactory(name="Hyaluronic acid", category="hyaluronic_acid")
    response = sign_in(client, manager).post(url("product_create"), product_data([vit_c, hya]))
    product = Product.objects.get()
    assert response.status_code == 302
    assert response["Location"] == product.get_absolute_url()
    assert set(product.ingredients.all()) == {vit_c, hya}
    event = AuditEvent.objects.get(action=AuditAction.CREATE, object_type="treatments.product")
    assert "ingredients" in event.changed_fields


def test_a_product_without_ingredients_is_refused(manager: User, client: Client) -> None:
    response = sign_in(client, manager).post(url("product_create"), product_data([]))
    assert response.status_code == 400
    assert "Choose at least one ingredient." in response.content.decode()
    assert 'value="Revitalising cocktail"' in response.content.decode()
    assert not Product.objects.exists()


def test_the_product_service_refuses_an_empty_ingredient_list(manager: User) -> None:
    from treatments.services.catalogue import product_create

    with pytest.raises(ValidationError, match="Choose at least one ingredient"):
        product_create(created_by=manager, ingredients=[], name="X", maker="Y")
    assert not Product.objects.exists()


def test_same_product_name_from_the_same_maker_is_refused(manager: User, client: Client) -> None:
    ingredient = IngredientFactory()
    ProductFactory(name="Revitalising cocktail", maker="Laboratoires Exemple")
    response = sign_in(client, manager).post(
        url("product_create"),
        product_data([ingredient], name="revitalising COCKTAIL", maker="laboratoires exemple"),
    )
    assert response.status_code == 400
    assert "This maker already has a product with this name." in response.content.decode()
    assert Product.objects.count() == 1


def test_same_product_name_from_another_maker_is_allowed(manager: User, client: Client) -> None:
    ingredient = IngredientFactory()
    ProductFactory(name="Revitalising cocktail", maker="Laboratoires Exemple")
    response = sign_in(client, manager).post(
        url("product_create"), product_data([ingredient], maker="Other Pharma")
    )
    assert response.status_code == 302
    assert Product.objects.count() == 2


def test_editing_a_product_replaces_its_ingredients(manager: User, client: Client) -> None:
    old, new = IngredientFactory(name="Old"), IngredientFactory(name="New")
    product = ProductFactory(ingredients=[old])
    response = sign_in(client, manager).post(
        url("product_edit", product=product.uuid),
        product_data([new], name=product.name, maker=product.maker, version="1"),
    )
    assert response.status_code == 302
    assert list(product.ingredients.all()) == [new]


# --- Batches ------------------------------------------------------------------------


def batch_data(**overrides: str) -> dict[str, str]:
    data = {
        "lot_number": "A1234",
        "expiry_date": "2027-01-31",
        "quantity_received": "20",
        "received_on": "2026-03-09",
    }
    data.update(overrides)
    return data


def test_manager_adds_a_batch(manager: User, client: Client) -> None:
    product = ProductFactory()
    response = sign_in(client, manager).post(
        url("batch_create", product=product.uuid), batch_data()
    )
    assert response.status_code == 302
    batch = Batch.objects.get()
    assert (batch.product, batch.lot_number, batch.expiry_date) == (
        product,
        "A1234",
        date(2027, 1, 31),
    )
    assert batch.status == BatchStatus.IN_STOCK
    assert AuditEvent.objects.filter(
        action=AuditAction.CREATE, object_type="treatments.batch", object_id=str(batch.uuid)
    ).exists()


def test_a_batch_whose_expiry_has_passed_is_refused(manager: User, client: Client) -> None:
    product = ProductFactory()
    response = sign_in(client, manager).post(
        url("batch_create", product=product.uuid),
        batch_data(expiry_date="2026-03-09", received_on="2025-03-01"),
    )
    assert response.status_code == 400
    assert "This expiry date has passed." in response.content.decode()
    assert not Batch.objects.exists()


def test_a_batch_expiring_today_is_accepted(manager: User, client: Client) -> None:
    product = ProductFactory()
    response = sign_in(client, manager).post(
        url("batch_create", product=product.uuid),
        batch_data(expiry_date="2026-03-10", received_on="2026-03-01"),
    )
    assert response.status_code == 302


def test_a_lot_number_already_used_for_the_product_is_refused(
    manager: User, client: Client
) -> None:
    product = ProductFactory()
    BatchFactory(product=product, lot_number="A1234")
    response = sign_in(client, manager).post(
        url("batch_create", product=product.uuid), batch_data(lot_number="a1234")
    )
    body = response.content.decode()
    assert response.status_code == 400
    assert "This product already has a batch with this lot number." in body
    assert 'value="a1234"' in body  # what was typed is kept
    assert 'value="31/01/2027"' in body
    assert Batch.objects.count() == 1


def test_the_same_lot_number_on_another_product_is_allowed(manager: User, client: Client) -> None:
    BatchFactory(lot_number="A1234")
    other = ProductFactory()
    response = sign_in(client, manager).post(
        url("batch_create", product=other.uuid), batch_data(lot_number="A1234")
    )
    assert response.status_code == 302
    assert Batch.objects.filter(lot_number="A1234").count() == 2


def test_the_batch_service_maps_a_duplicate_lot_to_a_validation_error(manager: User) -> None:
    from treatments.services.catalogue import batch_create

    product = ProductFactory()
    BatchFactory(product=product, lot_number="Z9")
    with pytest.raises(ValidationError, match="already has a batch with this lot number"):
        batch_create(
            product=product,
            created_by=manager,
            lot_number="z9",
            expiry_date=date(2027, 1, 1),
            quantity_received=5,
            received_on=TODAY,
        )
    assert Batch.objects.count() == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"quantity_received": "0"}, "at least 1"),
        ({"received_on": "2026-03-11"}, "cannot be in the future"),
        ({"expiry_date": "31/31/2027"}, "Enter a valid date"),
        ({"lot_number": ""}, "This field is required"),
    ],
)
def test_bad_batch_input_is_refused_with_a_message(
    manager: User, client: Client, overrides: dict[str, str], message: str
) -> None:
    product = ProductFactory()
    response = sign_in(client, manager).post(
        url("batch_create", product=product.uuid), batch_data(**overrides)
    )
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Batch.objects.exists()


# --- Usable batches and recall ----------------------------------------------------------


def test_batches_usable_excludes_expired_from_the_day_after_expiry() -> None:
    batch = BatchFactory(received_on=date(2026, 1, 1), expiry_date=date(2026, 3, 10))
    assert list(batches_usable(on=date(2026, 3, 10))) == [batch]
    assert list(batches_usable(on=date(2026, 3, 11))) == []


def test_recall_sets_status_audits_and_makes_the_batch_unusable(
    manager: User, client: Client
) -> None:
    batch = BatchFactory()
    other = BatchFactory()
    response = sign_in(client, manager).post(
        url("batch_recall", batch=batch.uuid), {"reason": "Maker's recall notice 2026-07"}
    )
    assert response.status_code == 302
    batch.refresh_from_db()
    assert batch.status == BatchStatus.RECALLED
    assert batch.recalled_by == manager
    assert batch.recalled_at == timezone.now()
    assert batch.recall_reason == "Maker's recall notice 2026-07"
    assert not batch.is_usable_on(TODAY)
    assert list(batches_usable(on=TODAY)) == [other]
    event = AuditEvent.objects.get(action=AuditAction.RECALLED, object_type="treatments.batch")
    assert event.object_id == str(batch.uuid)
    assert "status" in event.changed_fields
    assert "recall_reason" in event.changed_fields


def test_a_recall_needs_a_reason(manager: User, client: Client) -> None:
    batch = BatchFactory()
    response = sign_in(client, manager).post(url("batch_recall", batch=batch.uuid), {"reason": " "})
    assert response.status_code == 400
    assert "Give the reason for the recall." in response.content.decode()
    batch.refresh_from_db()
    assert batch.status == BatchStatus.IN_STOCK


def test_a_recalled_batch_stays_recalled(manager: User, client: Client) -> None:
    batch = batch_recall(batch=BatchFactory(), recalled_by=manager, reason="Storage fault")
    with pytest.raises(BatchAlreadyRecalledError):
        batch_recall(batch=batch, recalled_by=manager, reason="Again")
    response = sign_in(client, manager).post(
        url("batch_recall", batch=batch.uuid), {"reason": "Again"}
    )
    assert response.status_code == 409
    assert "already been recalled" in response.content.decode()
    batch.refresh_from_db()
    assert batch.recall_reason == "Storage fault"


def test_batch_page_says_why_a_batch_cannot_be_used(manager: User, client: Client) -> None:
    expired = BatchFactory(received_on=date(2025, 1, 1), expiry_date=date(2026, 3, 1))
    recalled = batch_recall(batch=BatchFactory(), recalled_by=manager, reason="Cloudy vials")
    sign_in(client, manager)
    body = client.get(url("batch_detail", batch=expired.uuid)).content.decode()
    assert "This batch must not be used." in body
    assert "It expired on Sun 1 Mar." in body
    body = client.get(url("batch_detail", batch=recalled.uuid)).content.decode()
    assert "This batch must not be used." in body
    assert "Cloudy vials" in body
    assert 'data-testid="recall-form"' not in body  # nothing left to recall


def test_recall_list_names_everyone_who_received_the_batch(
    manager: User, practitioner: User, client: Client
) -> None:
    batch = BatchFactory()
    amelia = PatientFactory(first_name="Amelia", last_name="Hart", phone="+447911123456")
    bob = PatientFactory(first_name="Bob", last_name="Stone")
    nobody = PatientFactory(first_name="Nora", last_name="Other")
    given_allergy_test(amelia, batch, practitioner, NOON - timedelta(days=10))
    given_allergy_test(bob, batch, practitioner, NOON - timedelta(days=3))
    given_allergy_test(nobody, BatchFactory(), practitioner, NOON - timedelta(days=2))

    recipients = batch_recipients(batch=batch)
    assert [r.patient for r in recipients] == [amelia, bob]
    assert recipients[0].received_at == NOON - timedelta(days=10)
    assert "Allergy test" in recipients[0].what

    body = sign_in(client, manager).get(url("batch_detail", batch=batch.uuid)).content.decode()
    assert "Amelia Hart" in body
    assert "Bob Stone" in body
    assert "Nora" not in body
    assert "07911 123456" in body


def given_in_a_session(patient: Patient, batch: Batch, by: User, at: datetime) -> None:
    from treatments.models import Booking, BookingStatus, CocktailLine, Room, SessionRecord

    booking = Booking.objects.create(
        patient=patient,
        practitioner=by,
        room=Room.objects.create(name=f"Room {Room.objects.count() + 1}"),
        protocol=Protocol.objects.filter(name="Revitalising").first()
        or ProtocolFactory(name="Revitalising"),
        starts_at=at,
        ends_at=at + timedelta(minutes=45),
        status=BookingStatus.COMPLETED,
        created_by=by,
    )
    record = SessionRecord.objects.create(
        booking=booking, numbing_cream=True, completed_at=at, completed_by=by
    )
    CocktailLine.objects.create(
        session=record,
        batch=batch,
        amount="2.5",
        unit="ml",
        area="face",
        technique="nappage",
        depth_mm="1.0",
        needle_gauge=32,
        device="syringe",
    )


def test_recall_list_includes_cocktails_given_in_sessions(
    manager: User, practitioner: User, client: Client
) -> None:
    batch = BatchFactory()
    amelia = PatientFactory(first_name="Amelia", last_name="Hart")
    given_allergy_test(amelia, batch, practitioner, NOON - timedelta(days=20))
    given_in_a_session(amelia, batch, practitioner, NOON - timedelta(days=5))
    given_in_a_session(PatientFactory(), BatchFactory(), practitioner, NOON - timedelta(days=4))

    recipients = batch_recipients(batch=batch)
    assert [r.patient for r in recipients] == [amelia, amelia]
    assert recipients[1].received_at == NOON - timedelta(days=5)
    assert recipients[1].what == (
        f"Session (Revitalising): 2.50 mL, Face, by {practitioner.get_full_name()}"
    )
    response = sign_in(client, manager).get(url("batch_recall_csv", batch=batch.uuid))
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [row[6] for row in rows[1:]] == [
        "Allergy test, inner left forearm",
        f"Session (Revitalising): 2.50 mL, Face, by {practitioner.get_full_name()}",
    ]


def test_recall_csv_lists_contacts_and_defuses_spreadsheet_formulas(
    manager: User, practitioner: User, client: Client
) -> None:
    batch = BatchFactory(lot_number="L-77")
    sneaky = PatientFactory(
        first_name='=HYPERLINK("http://evil.example","click")',
        last_name="+Plus",
        email="amelia@example.org",
        phone="+447911123456",
        reminder_channel="email",
    )
    given_allergy_test(sneaky, batch, practitioner, NOON - timedelta(days=1))
    batch_recall(batch=batch, recalled_by=manager, reason="Recall notice")

    response = sign_in(client, manager).get(url("batch_recall_csv", batch=batch.uuid))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][:5] == ["Last name", "First name", "Date of birth", "Phone", "Email"]
    assert len(rows) == 2
    row = rows[1]
    assert row[0] == "'+Plus"
    assert row[1] == '\'=HYPERLINK("http://evil.example","click")'
    assert row[2] == sneaky.date_of_birth.isoformat()
    assert row[3] == "'+44 7911 123456"  # a phone number starts with +, so it is quoted too
    assert row[4] == "amelia@example.org"
    assert row[5] == "Email"
    assert "Allergy test" in row[6]
    assert row[9] == "L-77"
    assert AuditEvent.objects.filter(
        action=AuditAction.DOWNLOAD, object_type="treatments.batch", object_id=str(batch.uuid)
    ).exists()
    # The download names the patient: their access history shows it.
    assert AuditEvent.objects.filter(
        action=AuditAction.DOWNLOAD, patient_ref=sneaky.uuid, actor=manager
    ).exists()


def test_recall_list_takes_the_same_queries_for_one_or_many_recipients(
    manager: User,
    practitioner: User,
    client: Client,
    django_assert_max_num_queries: Callable[..., Any],
) -> None:
    batch = BatchFactory()
    sign_in(client, manager)

    def check() -> None:
        # 13: the clinic's settings (its name in the header) are read once a page.
        with django_assert_max_num_queries(13):
            assert client.get(url("batch_detail", batch=batch.uuid)).status_code == 200
        with django_assert_max_num_queries(10):
            assert client.get(url("batch_recall_csv", batch=batch.uuid)).status_code == 200

    given_allergy_test(PatientFactory(), batch, practitioner, NOON - timedelta(days=1))
    check()
    for i in range(15):
        given_allergy_test(PatientFactory(), batch, practitioner, NOON - timedelta(days=2))
        given_in_a_session(PatientFactory(), batch, practitioner, NOON - timedelta(days=i + 3))
    check()


# --- Roles --------------------------------------------------------------------------


def all_routes() -> tuple[list[str], list[str]]:
    """(read routes, edit routes) of the catalogue for one sample of everything."""
    batch = BatchFactory()
    ingredient = batch.product.ingredients.get()
    protocol = ProtocolFactory()
    sheet = protocol.aftercare_sheet
    reads = [
        url("catalogue"),
        url("ingredient_list"),
        url("product_list"),
        url("product_detail", product=batch.product.uuid),
        url("batch_detail", batch=batch.uuid),
        url("protocol_list"),
        url("protocol_detail", protocol=protocol.uuid),
        url("sheet_list"),
        url("sheet_detail", sheet=sheet.uuid),
    ]
    edits = [
        url("ingredient_create"),
        url("ingredient_edit", ingredient=ingredient.uuid),
        url("product_create"),
        url("product_edit", product=batch.product.uuid),
        url("batch_create", product=batch.product.uuid),
        url("batch_recall", batch=batch.uuid),
        url("batch_recall_csv", batch=batch.uuid),
        url("protocol_create"),
        url("protocol_edit", protocol=protocol.uuid),
        url("sheet_create"),
        url("sheet_edit", sheet=sheet.uuid),
    ]
    return reads, edits


def test_reception_is_refused_everywhere_in_the_catalogue(
    receptionist: User, client: Client
) -> None:
    reads, edits = all_routes()
    sign_in(client, receptionist)
    for route in reads + edits:
        assert client.get(route).status_code == 403, route
        assert client.post(route, {"reason": "x", "name": "x"}).status_code == 403, route


def test_practitioner_reads_the_catalogue_but_cannot_change_it(
    practitioner: User, client: Client
) -> None:
    reads, edits = all_routes()
    sign_in(client, practitioner)
    for route in reads:
        response = client.get(route)
        assert response.status_code == 200, route
        body = response.content.decode()
        for marker in ("add-", "edit-", "recall-form", "recall-csv"):
            assert f'data-testid="{marker}' not in body, (route, marker)
    before = (Batch.objects.filter(status=BatchStatus.RECALLED).count(), Product.objects.count())
    for route in edits:
        assert client.get(route).status_code == 403, route
        assert client.post(route, {"reason": "x", "name": "x"}).status_code == 403, route
    after = (Batch.objects.filter(status=BatchStatus.RECALLED).count(), Product.objects.count())
    assert before == after


def test_manager_sees_the_edit_buttons(manager: User, client: Client) -> None:
    batch = BatchFactory()
    sign_in(client, manager)
    body = client.get(url("product_detail", product=batch.product.uuid)).content.decode()
    assert 'data-testid="add-batch"' in body
    assert (
        'data-testid="recall-form"'
        in client.get(url("batch_detail", batch=batch.uuid)).content.decode()
    )


def test_an_unknown_uuid_is_not_found(manager: User, client: Client) -> None:
    sign_in(client, manager)
    missing = "00000000-0000-4000-8000-0000000000ff"
    for route in (
        url("product_detail", product=missing),
        url("batch_detail", batch=missing),
        url("protocol_edit", protocol=missing),
        url("sheet_detail", sheet=missing),
    ):
        assert client.get(route).status_code == 404


# --- Landing page and query budgets -------------------------------------------------------


def test_landing_page_counts_batches_expiring_within_60_days_and_recalled(
    manager: User, client: Client
) -> None:
    BatchFactory(received_on=date(2026, 1, 1), expiry_date=TODAY + timedelta(days=60))
    BatchFactory(received_on=date(2026, 1, 1), expiry_date=TODAY + timedelta(days=61))
    BatchFactory(received_on=date(2025, 1, 1), expiry_date=TODAY - timedelta(days=1))
    batch_recall(batch=BatchFactory(), recalled_by=manager, reason="Notice")
    body = sign_in(client, manager).get(url("catalogue")).content.decode()
    assert 'data-testid="count-expiring">1<' in body
    assert 'data-testid="count-recalled">1<' in body


def make_rows(n: int) -> None:
    form = ConsentFormFactory()
    sheet = AftercareSheetFactory()
    for i in range(n):
        product = ProductFactory(ingredients=[IngredientFactory(), IngredientFactory()])
        BatchFactory(product=product)
        BatchFactory(product=product)
        protocol = ProtocolFactory(consent_form=form, aftercare_sheet=sheet)
        ProtocolCocktailLine.objects.create(protocol=protocol, product=product, amount="1.5")
        AftercareSheetFactory(title=f"Sheet {i}")


LIST_PAGES = ["catalogue", "ingredient_list", "product_list", "protocol_list", "sheet_list"]


@pytest.mark.parametrize("rows", [1, 30])
@pytest.mark.parametrize("page", LIST_PAGES)
def test_lists_keep_their_query_budget(
    page: str,
    rows: int,
    manager: User,
    client: Client,
    django_assert_max_num_queries: Callable[..., Any],
) -> None:
    make_rows(rows)
    sign_in(client, manager)
    with django_assert_max_num_queries(14):
        response = client.get(url(page))
    assert response.status_code == 200


@pytest.mark.parametrize("rows", [1, 30])
def test_product_and_protocol_pages_keep_their_query_budget(
    rows: int,
    manager: User,
    client: Client,
    django_assert_max_num_queries: Callable[..., Any],
) -> None:
    product = ProductFactory(ingredients=[IngredientFactory() for _ in range(rows)])
    for _ in range(rows):
        BatchFactory(product=product)
    protocol = ProtocolFactory()
    for i in range(rows):
        ProtocolCocktailLine.objects.create(
            protocol=protocol, product=ProductFactory(), amount="1", position=i
        )
    sign_in(client, manager)
    with django_assert_max_num_queries(12):
        assert client.get(url("product_detail", product=product.uuid)).status_code == 200
    with django_assert_max_num_queries(12):
        assert client.get(url("protocol_detail", protocol=protocol.uuid)).status_code == 200
    with django_assert_max_num_queries(16):
        assert client.get(url("protocol_edit", protocol=protocol.uuid)).status_code == 200


# --- Aftercare sheets ---------------------------------------------------------------


def test_manager_writes_an_aftercare_sheet_one_item_per_line(manager: User, client: Client) -> None:
    response = sign_in(client, manager).post(
        url("sheet_create"),
        {
            "title": "Face, neck and hands",
            "introduction": "Some redness is normal.",
            "do_advice": "Use a cold compress.\n\n  Wear sunscreen.  ",
            "avoid_advice": "No make-up for 12 hours.",
            "warning_signs": "Spreading redness or pus.",
        },
    )
    assert response.status_code == 302
    sheet = AftercareSheet.objects.get()
    assert sheet.do_lines == ["Use a cold compress.", "Wear sunscreen."]
    body = client.get(response["Location"]).content.decode()
    assert "<li>Wear sunscreen.</li>" in body


def test_a_sheet_title_is_unique(manager: User, client: Client) -> None:
    AftercareSheetFactory(title="Body")
    response = sign_in(client, manager).post(
        url("sheet_create"),
        {
            "title": "Body",
            "introduction": "x",
            "do_advice": "x",
            "avoid_advice": "x",
            "warning_signs": "x",
        },
    )
    assert response.status_code == 400
    assert "already exists" in response.content.decode()


# --- Protocols ----------------------------------------------------------------------


def protocol_data(
    form_uuid: Any, sheet_pk: int, lines: list[tuple[str, str, str]], **overrides: Any
) -> dict[str, Any]:
    from consent.models import ConsentForm

    data: dict[str, Any] = {
        "name": "Revitalising",
        "indication": "Dull, dehydrated skin.",
        "default_areas": ["face", "neck"],
        "default_sessions": "6",
        "interval": "fortnightly",
        "session_minutes": "45",
        "maintenance_months": "6",
        "consent_form": str(ConsentForm.objects.get(uuid=form_uuid).pk),
        "aftercare_sheet": str(sheet_pk),
        "active": "on",
        "cocktail-TOTAL_FORMS": str(len(lines) + 1),
        "cocktail-INITIAL_FORMS": "0",
        "cocktail-MIN_NUM_FORMS": "0",
        "cocktail-MAX_NUM_FORMS": "20",
    }
    for i, (product, amount, unit) in enumerate(lines):
        data[f"cocktail-{i}-product"] = product
        data[f"cocktail-{i}-amount"] = amount
        data[f"cocktail-{i}-unit"] = unit
    data[f"cocktail-{len(lines)}-unit"] = "ml"  # an empty extra row
    data.update(overrides)
    return data


def test_manager_saves_a_protocol_with_its_cocktail(manager: User, client: Client) -> None:
    form, sheet = ConsentFormFactory(), AftercareSheetFactory()
    a, b = ProductFactory(), ProductFactory()
    response = sign_in(client, manager).post(
        url("protocol_create"),
        protocol_data(form.uuid, sheet.pk, [(str(a.pk), "2", "ml"), (str(b.pk), "20", "mg")]),
    )
    assert response.status_code == 302
    protocol = Protocol.objects.get()
    assert protocol.default_areas == ["face", "neck"]
    assert [(line.product, line.amount, line.unit) for line in protocol.cocktail.all()] == [
        (a, Decimal("2.00"), "ml"),
        (b, Decimal("20.00"), "mg"),
    ]
    event = AuditEvent.objects.get(action=AuditAction.CREATE, object_type="treatments.protocol")
    assert "cocktail" in event.changed_fields
    body = client.get(response["Location"]).content.decode()
    assert "Face, Neck" in body


def test_a_protocol_with_the_same_product_twice_is_refused(manager: User, client: Client) -> None:
    form, sheet, a = ConsentFormFactory(), AftercareSheetFactory(), ProductFactory()
    response = sign_in(client, manager).post(
        url("protocol_create"),
        protocol_data(form.uuid, sheet.pk, [(str(a.pk), "2", "ml"), (str(a.pk), "1", "ml")]),
    )
    assert response.status_code == 400
    assert "Each product appears once in the cocktail." in response.content.decode()
    assert not Protocol.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"default_areas": []}, "Choose at least one area."),
        ({"default_sessions": "30"}, "between 1 and 20 sessions"),
        ({"cocktail-0-amount": ""}, "Give the amount."),
        ({"cocktail-0-amount": "-1"}, "greater than or equal to 0.01"),
    ],
)
def test_bad_protocol_input_saves_nothing(
    manager: User, client: Client, overrides: dict[str, Any], message: str
) -> None:
    form, sheet, a = ConsentFormFactory(), AftercareSheetFactory(), ProductFactory()
    response = sign_in(client, manager).post(
        url("protocol_create"),
        protocol_data(form.uuid, sheet.pk, [(str(a.pk), "2", "ml")], **overrides),
    )
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Protocol.objects.exists()
    assert not ProtocolCocktailLine.objects.exists()


def test_protocol_update_replaces_the_cocktail_in_one_transaction(manager: User) -> None:
    a, b, c = ProductFactory(), ProductFactory(), ProductFactory()
    protocol = protocol_create(
        created_by=manager,
        lines=[CocktailLine(a, Decimal("2"), "ml"), CocktailLine(b, Decimal("1"), "ml")],
        name="Hands",
        indication="Thin skin on the back of the hands.",
        default_areas=["hands"],
        default_sessions=4,
        interval="fortnightly",
        session_minutes=30,
        maintenance_months=12,
        consent_form=ConsentFormFactory(),
        aftercare_sheet=AftercareSheetFactory(),
    )
    protocol_update(
        protocol=protocol,
        updated_by=manager,
        lines=[CocktailLine(c, Decimal("3"), "mg"), CocktailLine(a, Decimal("2"), "ml")],
        expected_version=1,
    )
    assert [(line.product, line.unit) for line in protocol.cocktail.all()] == [
        (c, "mg"),
        (a, "ml"),
    ]
    # A bad line leaves the previous cocktail untouched.
    with pytest.raises(ValidationError):
        protocol_update(
            protocol=protocol,
            updated_by=manager,
            lines=[CocktailLine(b, Decimal("1"), "ml"), CocktailLine(b, Decimal("2"), "ml")],
            expected_version=2,
        )
    assert [line.product for line in protocol.cocktail.all()] == [c, a]
    event = AuditEvent.objects.filter(action=AuditAction.UPDATE).get()
    assert event.changed_fields == ["cocktail", "version=2"]


def test_a_protocol_saved_unchanged_is_no_change_whatever_the_order_of_its_areas(
    manager: User,
) -> None:
    """The edit form lists the areas in the choices' order; the protocol was
    saved with them in another. Saving it unchanged changes nothing: no new
    version (a colleague's open page stays valid), no audit event."""
    a = ProductFactory()
    protocol = protocol_create(
        created_by=manager,
        lines=[CocktailLine(a, Decimal("2"), "ml")],
        name="Hands",
        indication="Thin skin on the back of the hands.",
        default_areas=["neck", "hands"],
        default_sessions=4,
        interval="fortnightly",
        session_minutes=30,
        maintenance_months=12,
        consent_form=ConsentFormFactory(),
        aftercare_sheet=AftercareSheetFactory(),
    )
    protocol_update(
        protocol=protocol,
        updated_by=manager,
        lines=[CocktailLine(a, Decimal("2"), "ml")],
        expected_version=1,
        default_areas=["hands", "neck"],
    )
    protocol.refresh_from_db()
    assert protocol.version == 1
    assert not AuditEvent.objects.filter(action=AuditAction.UPDATE).exists()
    # A real change of areas still counts.
    protocol_update(
        protocol=protocol,
        updated_by=manager,
        lines=[CocktailLine(a, Decimal("2"), "ml")],
        expected_version=1,
        default_areas=["hands"],
    )
    protocol.refresh_from_db()
    assert (protocol.version, protocol.default_areas) == (2, ["hands"])


def test_editing_a_protocol_shows_its_lines_and_removes_a_ticked_one(
    manager: User, client: Client
) -> None:
    a, b = ProductFactory(), ProductFactory()
    protocol = ProtocolFactory()
    ProtocolCocktailLine.objects.create(protocol=protocol, product=a, amount="2", position=0)
    ProtocolCocktailLine.objects.create(protocol=protocol, product=b, amount="1", position=1)
    sign_in(client, manager)
    page = client.get(url("protocol_edit", protocol=protocol.uuid)).content.decode()
    assert page.count('data-testid="cocktail-row"') == 5  # two lines and three empty rows
    data = protocol_data(
        protocol.consent_form.uuid,
        protocol.aftercare_sheet.pk,
        [(str(a.pk), "2", "ml"), (str(b.pk), "1", "ml")],
        name=protocol.name,
        version=str(protocol.version),
        **{"cocktail-INITIAL_FORMS": "2", "cocktail-1-DELETE": "on"},
    )
    response = client.post(url("protocol_edit", protocol=protocol.uuid), data)
    assert response.status_code == 302
    assert [line.product for line in protocol.cocktail.all()] == [a]


@pytest.mark.parametrize("total", ["21", "1000", "1000000"])
def test_a_forged_cocktail_count_is_refused_without_building_the_forms(
    manager: User, client: Client, total: str
) -> None:
    """A post claiming 1,000 cocktail rows once took 94 s and answered 12.7 MB."""
    form, sheet, product = ConsentFormFactory(), AftercareSheetFactory(), ProductFactory()
    data = protocol_data(form.uuid, sheet.pk, [(str(product.pk), "2", "ml")])
    data["cocktail-TOTAL_FORMS"] = total
    with CaptureQueriesContext(connection) as queries:
        response = sign_in(client, manager).post(url("protocol_create"), data)
    assert response.status_code == 400
    assert len(response.content) < 300_000
    # Django checks each of the protocol's eight check constraints with a query of its own.
    assert len(queries) < 70
    assert not Protocol.objects.exists()

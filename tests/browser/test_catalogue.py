"""The catalogue in a real browser: the manager adds a product and its batch,
is refused a duplicate lot, recalls a batch and sees who received it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from clinic.models import User
from tests.browser.conftest import screenshot
from tests.browser.test_journeys import NewPage, sign_in
from tests.factories import (
    BatchFactory,
    IngredientFactory,
    PatientFactory,
    ProductFactory,
    ProtocolFactory,
)
from treatments.models import (
    ALLERGY_READING_DELAY,
    AllergyTest,
    Batch,
    BatchStatus,
    Product,
    ProtocolCocktailLine,
)

pytestmark = pytest.mark.browser


def test_manager_adds_a_product_and_batch_then_recalls_it(
    live_server, new_page: NewPage, manager: User, practitioner: User
) -> None:
    IngredientFactory(name="Vitamin C (ascorbic acid)")
    IngredientFactory(name="Non-cross-linked hyaluronic acid", category="hyaluronic_acid")
    IngredientFactory(name="Glutathione", category="antioxidant")
    tab = new_page("desktop")
    page = tab.page
    sign_in(tab, live_server.url, manager)

    page.goto(live_server.url + "/treatments/catalogue/")
    expect(page.get_by_role("heading", name="Catalogue", level=1)).to_be_visible()
    screenshot(page, "catalogue-journey-home-desktop.png")

    # A product made of two ingredients.
    page.get_by_test_id("catalogue-tabs").get_by_role("link", name="Products and batches").click()
    page.get_by_test_id("add-product").click()
    page.get_by_label("Name").fill("Radiance cocktail")
    page.get_by_label("Maker").fill("Alba Dermaceutics")
    page.get_by_label("Concentration").fill("5 mL vial")
    page.get_by_label("Vitamin C (ascorbic acid)").check()
    page.get_by_label("Non-cross-linked hyaluronic acid").check()
    screenshot(page, "catalogue-product-form-desktop.png")
    page.get_by_test_id("save-product").click()
    expect(page.get_by_test_id("product-name")).to_have_text("Radiance cocktail")
    expect(page.get_by_test_id("product-ingredients").locator("li")).to_have_count(2)
    product = Product.objects.get(name="Radiance cocktail")

    # A batch, then the same lot again: refused, with what was typed kept.
    expiry = (timezone.localdate() + timedelta(days=300)).strftime("%d/%m/%Y")

    def add_batch() -> None:
        page.get_by_test_id("add-batch").click()
        page.get_by_label("Lot number").fill("RC-2026-01")
        page.get_by_label("Quantity received").fill("24")
        page.get_by_label("Expiry date").fill(expiry)
        page.get_by_test_id("save-batch").click()

    add_batch()
    expect(page.get_by_text("Lot RC-2026-01 is added.")).to_be_visible()
    add_batch()
    expect(
        page.get_by_text("This product already has a batch with this lot number.")
    ).to_be_visible()
    expect(page.get_by_label("Lot number")).to_have_value("RC-2026-01")
    expect(page.get_by_label("Quantity received")).to_have_value("24")
    expect(page.get_by_label("Expiry date")).to_have_value(expiry)
    screenshot(page, "catalogue-batch-duplicate-desktop.png")
    assert product.batches.count() == 1

    # Someone had an allergy test with this batch; then the batch is recalled.
    batch = Batch.objects.get(product=product)
    patient = PatientFactory(first_name="Amelia", last_name="Hart", phone="+447911123456")
    given = timezone.now() - timedelta(days=2)
    test = AllergyTest.objects.create(
        patient=patient,
        batch=batch,
        site="inner left forearm",
        given_at=given,
        given_by=practitioner,
        entered_at=given,
        read_due_at=given + ALLERGY_READING_DELAY,
    )
    test.ingredients.set(product.ingredients.all())

    page.goto(live_server.url + batch.get_absolute_url())
    expect(page.get_by_test_id("batch-usable")).to_contain_text("may be used")
    screenshot(page, "catalogue-journey-batch-desktop.png")
    page.get_by_test_id("recall-batch").click()
    expect(page.get_by_text("Give the reason for the recall.")).to_be_visible()
    page.get_by_label("Reason for the recall").fill("Maker's recall notice: sealing fault.")
    page.get_by_test_id("recall-batch").click()
    expect(page.get_by_text("Lot RC-2026-01 is recalled.")).to_be_visible()
    expect(page.get_by_test_id("batch-status")).to_have_text("Recalled")
    expect(page.get_by_test_id("batch-usable")).to_contain_text("sealing fault")
    recall_list = page.get_by_test_id("recall-list")
    expect(recall_list).to_contain_text("Amelia Hart")
    expect(recall_list).to_contain_text("07911 123456")
    expect(page.get_by_test_id("recall-csv")).to_be_visible()
    screenshot(page, "catalogue-batch-recalled-desktop.png")
    batch.refresh_from_db()
    assert batch.status == BatchStatus.RECALLED

    with page.expect_download() as download:
        page.get_by_test_id("recall-csv").click()
    assert "Hart" in download.value.path().read_text(encoding="utf-8-sig")

    page.goto(live_server.url + product.get_absolute_url())
    screenshot(page, "catalogue-journey-product-desktop.png")
    # The refused posts answer 400 on purpose; nothing else may complain.
    refused = (
        live_server.url + f"/treatments/catalogue/products/{product.uuid}/batches/new/",
        live_server.url + f"/treatments/catalogue/batches/{batch.uuid}/recall/",
    )
    assert tab.errors_except(*refused) == []


@pytest.mark.parametrize("viewport", ["desktop", "tablet"])
def test_catalogue_pages_render_on_desktop_and_tablet(
    live_server, new_page: NewPage, manager: User, viewport: str
) -> None:
    product = ProductFactory(
        name="Poly-revitalising solution",
        maker="Alba Dermaceutics",
        ingredients=[IngredientFactory(name="Vitamin C"), IngredientFactory(name="Coenzyme Q10")],
    )
    batch = BatchFactory(product=product, lot_number="AD-2611-04")
    BatchFactory(
        product=product,
        lot_number="AD-2502-01",
        received_on=timezone.localdate() - timedelta(days=400),
        expiry_date=timezone.localdate() - timedelta(days=10),
    )
    protocol = ProtocolFactory(name="Revitalising", default_areas=["face", "neck", "decolletage"])
    ProtocolCocktailLine.objects.create(protocol=protocol, product=product, amount="3")

    tab = new_page(viewport)
    page = tab.page
    sign_in(tab, live_server.url, manager)
    for name, path in (
        ("home", "/treatments/catalogue/"),
        ("products", "/treatments/catalogue/products/"),
        ("product", product.get_absolute_url()),
        ("batch", batch.get_absolute_url()),
        ("protocol", protocol.get_absolute_url()),
        ("protocol-form", f"/treatments/catalogue/protocols/{protocol.uuid}/edit/"),
    ):
        response = page.goto(live_server.url + path)
        assert response is not None
        assert response.status == 200, path
        screenshot(page, f"catalogue-{name}-{viewport}.png")
    expect(page.get_by_test_id("cocktail-row")).to_have_count(4)
    assert tab.errors == []

"""An allergy test in a real browser: recorded, refused 3 hours later with the
time it opens, read as negative the next day from the task list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.utils import timezone
from playwright.sync_api import expect

from clinic import dates
from clinic.models import User
from tests.browser.conftest import screenshot
from tests.browser.test_journeys import NewPage, assert_styled, sign_in
from tests.conftest import frozen_at
from tests.factories import BatchFactory, IngredientFactory, PatientFactory, ProductFactory
from treatments.models import AllergyResult, AllergyTest
from treatments.selectors.allergy import format_local
from treatments.services.allergy import allergy_test_give

pytestmark = pytest.mark.browser

# A Tuesday morning in London, away from midnight and the clocks changing;
# the clock ticks on from there (for the sign-in code and the pages) and the
# tests travel on from it, whatever day and hour the suite runs.
NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
frozen = frozen_at(NOW, tick=True)


def test_practitioner_records_an_allergy_test_and_reads_it_the_next_day(
    live_server, new_page: NewPage, practitioner: User
) -> None:
    patient = PatientFactory(first_name="Amelia", last_name="Hart")
    hyaluronic = IngredientFactory(name="Hyaluronic acid")
    silicon = IngredientFactory(name="Organic silicon")
    IngredientFactory(name="Vitamin C")
    product = ProductFactory(name="Glow cocktail", ingredients=[hyaluronic, silicon])
    batch = BatchFactory(product=product, lot_number="GC2611")

    # Today: record the test.
    tab = new_page("tablet")
    page = tab.page
    sign_in(tab, live_server.url, practitioner)
    page.goto(live_server.url + f"/treatments/patients/{patient.uuid}/allergy-tests/")
    expect(page.get_by_text("No allergy test yet.")).to_be_visible()
    page.get_by_test_id("new-allergy-test").click()
    page.get_by_label("Vitamin C").check()
    page.get_by_label("Glow cocktail").check()
    page.get_by_label("Batch of the test substance").select_option(
        label=f"Glow cocktail, lot GC2611 (expires {dates.day(batch.expiry_date)})"
    )
    page.get_by_label("Site").fill("Inner left forearm")
    assert_styled(page)
    screenshot(page, "allergy-test-form-tablet.png")
    page.get_by_test_id("save-allergy-test").click()
    expect(page.get_by_text("Allergy test recorded.")).to_be_visible()
    test = AllergyTest.objects.get(patient=patient)
    assert {i.name for i in test.ingredients.all()} == {
        "Hyaluronic acid",
        "Organic silicon",
        "Vitamin C",
    }
    assert tab.errors == []

    # Three hours later: too early, refused with the time it may be read.
    with time_machine.travel(test.given_at + timedelta(hours=3)):
        tab = new_page("tablet")
        page = tab.page
        sign_in(tab, live_server.url, practitioner)
        page.goto(live_server.url + test.get_absolute_url())
        page.get_by_label("Negative: no reaction").check()
        page.get_by_test_id("save-reading").click()
        refusal = page.get_by_test_id("reading-refused")
        expect(refusal).to_have_text(
            f"This test can be read from {format_local(test.read_due_at)}."
        )
        expect(page.get_by_label("Negative: no reaction")).to_be_checked()
        screenshot(page, "allergy-reading-refused-tablet.png")
        # The refusal answered 409 on purpose; nothing else may fail.
        assert [e for e in tab.errors if "status of 409" not in e] == []
    test.refresh_from_db()
    assert test.read_at is None

    # 25 hours after: the task list shows it; read it as negative.
    with time_machine.travel(test.given_at + timedelta(hours=25)):
        tab = new_page("tablet")
        page = tab.page
        sign_in(tab, live_server.url, practitioner)
        page.goto(live_server.url + "/treatments/tasks/")
        due = page.get_by_test_id("tasks-due")
        expect(due.get_by_test_id("task")).to_have_count(1)
        expect(due).to_contain_text("Amelia Hart")
        expect(due).to_contain_text("Inner left forearm")
        assert_styled(page)
        screenshot(page, "allergy-tasks-tablet.png")
        due.get_by_role("link", name="Read").click()
        page.get_by_label("Negative: no reaction").check()
        page.get_by_test_id("save-reading").click()
        expect(page.get_by_text("Negative reading saved.")).to_be_visible()
        expect(page.get_by_test_id("test-status")).to_contain_text("Negative: read by")
        screenshot(page, "allergy-patient-page-tablet.png")
        assert tab.errors == []
    test.refresh_from_db()
    assert test.result == AllergyResult.NEGATIVE
    assert test.read_by == practitioner
    assert test.read_at is not None
    assert test.read_at >= test.read_due_at
    assert test.read_at <= timezone.now() + timedelta(hours=26)


def test_a_positive_reading_lists_the_allergies_on_the_patients_page(
    live_server, new_page: NewPage, practitioner: User
) -> None:
    patient = PatientFactory(first_name="Theo", last_name="Fairbairn")
    hyaluronic = IngredientFactory(name="Hyaluronic acid")
    vitamin_c = IngredientFactory(name="Vitamin C")
    with time_machine.travel(timezone.now() - timedelta(hours=26)):
        test = allergy_test_give(
            patient=patient,
            given_by=practitioner,
            ingredients=[hyaluronic, vitamin_c],
            products=[],
            site="Behind the right ear",
            given_at=timezone.now(),
        )
    tab = new_page("desktop")
    page = tab.page
    sign_in(tab, live_server.url, practitioner)
    page.goto(live_server.url + test.get_absolute_url())
    page.get_by_label("Positive: reaction").check()
    page.get_by_test_id("save-reading").click()
    expect(page.get_by_text("Describe the reaction seen.")).to_be_visible()
    expect(page.get_by_label("Positive: reaction")).to_be_checked()
    page.get_by_label("Description of the reaction").fill("Raised red wheal, 8 mm, itching")
    page.get_by_test_id("save-reading").click()
    expect(page.get_by_text("Positive reading saved.")).to_be_visible()
    allergies = page.get_by_test_id("allergy")
    expect(allergies).to_have_count(2)
    expect(allergies.first).to_contain_text("Hyaluronic acid")
    expect(page.get_by_test_id("test-status")).to_contain_text("Positive: read by")
    screenshot(page, "allergy-positive-patient-page-desktop.png")
    assert [e for e in tab.errors if "status of 400" not in e] == []

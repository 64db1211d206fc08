"""The clinic settings page in a real browser, at 1366x768 and 768x1024: a
manager opens it from the menu, reads each bound's reason beside its field,
gets a refusal for a history valid 400 days with what she typed kept,
renames the clinic with a reason, sees the new name in the header and the
change in the history; both pages pass the accessibility check."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import time_machine
from playwright.sync_api import expect

from clinic.models import ClinicSettings, User
from tests.browser.axe import axe_violations, describe
from tests.browser.conftest import BrowserPage, screenshot
from tests.browser.test_journeys import (
    NewPage,
    assert_styled,
    open_manage_menu,
    open_navigation,
    sign_in,
)

pytestmark = pytest.mark.browser

SIZES = {"desktop": {"width": 1366, "height": 768}, "tablet": {"width": 768, "height": 1024}}
NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=True):
        yield


def _tab(new_page: NewPage, viewport: str) -> BrowserPage:
    tab = new_page(viewport)
    tab.page.set_viewport_size(SIZES[viewport])
    return tab


def _no_horizontal_scroll(tab: BrowserPage) -> None:
    widths = tab.page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], widths


@pytest.mark.parametrize("viewport", ["desktop", "tablet"])
def test_a_manager_changes_the_clinic_settings_and_reads_the_history(
    live_server, new_page: NewPage, manager: User, viewport: str
) -> None:
    base = live_server.url
    tab = _tab(new_page, viewport)
    page = tab.page
    sign_in(tab, base, manager)
    open_navigation(page)
    open_manage_menu(page)
    page.get_by_test_id("main-nav").get_by_role("link", name="Clinic settings").click()
    expect(page.get_by_role("heading", name="Clinic settings", exact=True)).to_be_visible()
    assert_styled(page)
    expect(page.get_by_test_id("reason-medical_history_valid_days")).to_contain_text(
        "At most 365 days"
    )
    expect(page.get_by_test_id("reason-adult_record_retention_years")).to_contain_text(
        "UK Records Management Code of Practice"
    )
    _no_horizontal_scroll(tab)
    assert axe_violations(page) == [], describe("settings", axe_violations(page))
    screenshot(page, f"clinic_settings_{viewport}.png")
    versions_before = ClinicSettings.objects.count()

    # Looser than the safe maximum: refused, what was typed kept.
    page.get_by_label("Clinic name").fill("Harley Row Aesthetics")
    page.get_by_label("A medical history is valid for (days)").fill("400")
    page.get_by_test_id("settings-save").click()
    expect(page.get_by_test_id("settings-errors")).to_be_visible()
    expect(page.get_by_label("Clinic name")).to_have_value("Harley Row Aesthetics")
    expect(page.get_by_label("A medical history is valid for (days)")).to_have_value("400")
    expect(page.get_by_text("Give a number from 30 to 365.")).to_be_visible()
    assert axe_violations(page) == [], describe("settings refused", axe_violations(page))
    screenshot(page, f"clinic_settings_refused_{viewport}.png")
    assert ClinicSettings.objects.count() == versions_before

    page.get_by_label("A medical history is valid for (days)").fill("180")
    page.get_by_label("Reason for the change (optional)").fill("New name over the door")
    page.get_by_test_id("settings-save").click()
    expect(page.get_by_text("Settings saved.")).to_be_visible()
    expect(page.locator(".navbar-brand")).to_have_text("Harley Row Aesthetics")
    newest = ClinicSettings.objects.order_by("-id").first()
    assert newest is not None
    assert newest.medical_history_valid_days == 180

    page.get_by_test_id("settings-history-link").click()
    expect(page.get_by_role("heading", name="History of the clinic settings")).to_be_visible()
    versions = page.get_by_test_id("settings-version")
    expect(versions).to_have_count(2)
    expect(versions.first).to_contain_text("New name over the door")
    expect(versions.first).to_contain_text("Meso Clinic")
    expect(versions.first).to_contain_text("Harley Row Aesthetics")
    expect(versions.first).to_contain_text("365")
    assert_styled(page)
    _no_horizontal_scroll(tab)
    assert axe_violations(page) == [], describe("settings history", axe_violations(page))
    screenshot(page, f"clinic_settings_history_{viewport}.png")

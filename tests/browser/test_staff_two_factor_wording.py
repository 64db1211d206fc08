"""With two-factor optional (the demo), a staff member's page and the message
after "Reset the authenticator" say they sign in with their password until
they set one up from "Your account", not that a sign-in will ask them to."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from clinic.models import User
from clinic.roles import Role
from tests.browser.conftest import screenshot
from tests.browser.test_journeys import NewPage, assert_styled, sign_in
from tests.browser.test_staff import SIZES

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("viewport", ["desktop", "tablet"])
def test_a_reset_with_two_factor_optional_promises_no_prompt_at_sign_in(
    live_server,
    new_page: NewPage,
    manager: User,
    make_staff: Callable[..., User],
    settings: object,
    viewport: str,
) -> None:
    settings.REQUIRE_STAFF_2FA = False  # type: ignore[attr-defined]
    rosa = make_staff("rosa", Role.RECEPTIONIST, first_name="Rosa", last_name="Lind")
    tab = new_page(viewport)
    tab.page.set_viewport_size(SIZES[viewport])
    page = tab.page
    sign_in(tab, live_server.url, manager)
    page.goto(f"{live_server.url}/staff/{rosa.uuid}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Rosa Lind")
    page.get_by_test_id("member-reset-ask").locator("summary").click()
    expect(page.get_by_test_id("member-reset-ask")).to_contain_text(
        "until they set up the app again from “Your account”"
    )
    screenshot(page, f"staff-member-reset-optional-{viewport}.png")
    page.get_by_test_id("member-reset").click()
    expect(page.get_by_role("alert")).to_contain_text("They sign in with their password alone")
    expect(page.get_by_test_id("member-no-authenticator")).to_contain_text(
        "they can set one up from “Your account”, and once set up it is asked for at every sign-in"
    )
    assert_styled(page)
    screenshot(page, f"staff-member-reset-done-optional-{viewport}.png")
    assert not tab.errors

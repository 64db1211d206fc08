"""The page that asks a person to confirm it is them before changing a
second factor or a colleague's roles, at both sizes: its wording, a wrong
password said on the form, and the way on to the page they were going to."""

from __future__ import annotations

import re

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import expect

from clinic.models import User
from tests.browser.conftest import screenshot
from tests.browser.test_journeys import NewPage, assert_styled, sign_in
from tests.browser.test_staff import SIZES
from tests.conftest import totp_code
from tests.factories import PASSWORD

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("viewport", ["desktop", "tablet"])
def test_confirming_it_is_you_leads_back_to_the_account_page(
    live_server, new_page: NewPage, receptionist: User, viewport: str
) -> None:
    tab = new_page(viewport)
    tab.page.set_viewport_size(SIZES[viewport])
    page = tab.page
    sign_in(tab, live_server.url, receptionist)
    page.goto(f"{live_server.url}/accounts/confirm/?next=/accounts/me/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm it is you")
    expect(page.get_by_test_id("step-up-why")).to_contain_text("It lasts 10 minutes")
    assert_styled(page)
    screenshot(page, f"step-up-{viewport}.png")
    page.get_by_label("Your password").fill("not my password")
    page.locator("input[name=otp_token]").fill("123456")
    page.get_by_test_id("step-up-confirm").click()
    expect(page.locator("form[novalidate]")).to_contain_text("That is not your password")
    screenshot(page, f"step-up-wrong-{viewport}.png")
    page.get_by_label("Your password").fill(PASSWORD)
    page.locator("input[name=otp_token]").fill(totp_code(TOTPDevice.objects.get(user=receptionist)))
    page.get_by_test_id("step-up-confirm").click()
    expect(page).to_have_url(re.compile(r"/accounts/me/$"))
    # The wrong password is answered 400, on purpose.
    assert not tab.errors_except(f"{live_server.url}/accounts/confirm/?next=/accounts/me/")

"""The page that asks a person to confirm it is them before changing a
second factor or a colleague's roles, at both sizes: its wording, a wrong
password said on the form, and the way on to the page they were going to."""

from __future__ import annotations

import re
from importlib import import_module

import pytest
from django.conf import settings
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import expect
from pytest_django.live_server_helper import LiveServer

from clinic.models import StaffInvitation, User
from clinic.staff import backup_codes_issue
from clinic.stepup import STEP_UP_SESSION
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


@pytest.mark.parametrize("viewport", ["desktop", "tablet"])
def test_an_invitation_sent_late_asks_the_confirmation_on_its_own_form(
    live_server: LiveServer, new_page: NewPage, manager: User, viewport: str
) -> None:
    """Past the confirmation's ten minutes, the invitation comes back with
    what was typed and the password and code asked within it."""
    tab = new_page(viewport)
    size = SIZES[viewport]
    tab.page.set_viewport_size({"width": size["width"], "height": size["height"]})
    page = tab.page
    backup = backup_codes_issue(user=manager)
    sign_in(tab, live_server.url, manager)
    invite = f"{live_server.url}/staff/invite/"
    page.goto(invite)
    page.get_by_label("First name").fill("Nadia")
    page.get_by_label("Email").fill("nadia@clinic.example")
    page.get_by_label("Manager").check()
    # The manager took longer than the confirmation lasts.
    cookie = next(c for c in page.context.cookies() if c["name"] == settings.SESSION_COOKIE_NAME)
    session = import_module(settings.SESSION_ENGINE).SessionStore(cookie["value"])
    session[STEP_UP_SESSION] = 0
    session.save()
    page.get_by_test_id("staff-invite-send").click()
    block = page.get_by_test_id("staff-invite-step-up")
    expect(block).to_contain_text("Nothing is sent yet")
    expect(page.get_by_label("First name")).to_have_value("Nadia")
    expect(page.get_by_label("Email")).to_have_value("nadia@clinic.example")
    expect(page.get_by_label("Manager")).to_be_checked()
    assert_styled(page)
    screenshot(page, f"staff-invite-step-up-{viewport}.png")
    page.get_by_label("Your password").fill(PASSWORD)
    # A backup code: the app's code of the sign-in may still be the one shown.
    page.locator("input[name=otp_token]").fill(backup[0])
    page.get_by_test_id("staff-invite-send").click()
    expect(page).to_have_url(re.compile(r"/staff/$"))
    assert StaffInvitation.objects.get().email == "nadia@clinic.example"
    # The form sent late is answered 403, on purpose.
    assert not tab.errors_except(invite)

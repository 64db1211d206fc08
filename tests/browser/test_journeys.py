"""First user journeys in a real browser: sign in with two factors, see your dashboard."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Page, expect

from clinic.models import User
from tests.browser.conftest import BrowserPage, screenshot
from tests.conftest import PERSONAS, totp_code
from tests.factories import PASSWORD

pytestmark = pytest.mark.browser

VIEWPORT_NAMES = ("desktop", "tablet")

# What each persona should see: the main-navigation entries, in order, and the
# dashboard panels. Every role also sees "panel-account"; "panel-security"
# (recent failed sign-ins) belongs with the manager's panel.
EXPECTED: dict[str, tuple[list[str], set[str]]] = {
    "receptionist": (["Home", "Calendar", "Patients", "Follow-up"], {"panel-reception"}),
    "practitioner": (
        ["Home", "Calendar", "Patients", "Tasks", "Follow-up", "Catalogue", "Consent forms"],
        {"panel-practitioner"},
    ),
    "manager": (
        [
            "Home",
            "Calendar",
            "Patients",
            "Catalogue",
            "Consent forms",
            "Reports",
        ],
        {"panel-manager", "panel-security"},
    ),
}
ROLE_PANELS = {"panel-reception", "panel-practitioner", "panel-manager", "panel-security"}
ROLE_LABELS = {"receptionist": "Receptionist", "practitioner": "Practitioner", "manager": "Manager"}

# Background colour of <body> set by static/css/clinic.css: proof the stylesheet applied.
CLINIC_BACKGROUND = "rgb(245, 247, 248)"

NewPage = Callable[[str], BrowserPage]


def assert_styled(page: Page) -> None:
    """Bootstrap and the clinic's own stylesheet both applied (no 404, no CSP block).

    Waits for the load event first: after a form post the page's elements can
    be found (and pass a visibility check) while its stylesheets are still
    being fetched, and computed styles read then lack them.
    """
    page.wait_for_load_state("load")
    styles = page.evaluate(
        """() => {
          const body = getComputedStyle(document.body);
          return {
            bootstrap: body.getPropertyValue("--bs-body-font-family").trim(),
            background: body.backgroundColor,
          };
        }"""
    )
    assert styles["bootstrap"], "Bootstrap's CSS did not load"
    assert styles["background"] == CLINIC_BACKGROUND, "static/css/clinic.css did not load"


def sign_in(tab: BrowserPage, base_url: str, user: User) -> None:
    """Sign in as a person would: open the site, password, then the authenticator code."""
    page = tab.page
    page.goto(base_url + "/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    expect(page).to_have_url(re.compile(r"/accounts/two-factor/"))
    expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
    device = TOTPDevice.objects.get(user=user)
    page.locator("input[name=otp_token]").fill(totp_code(device))
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(base_url + "/")


def open_navigation(page: Page) -> None:
    """Where the navbar is collapsed (narrow screens), open it with the toggler.
    After the page's load event: until the stylesheet applies, the toggler
    shows at every width, and a click would wait for it after it has gone."""
    page.wait_for_load_state("load")
    toggler = page.locator("button.navbar-toggler")
    if toggler.is_visible():
        toggler.click()
        # Opened, not still sliding open: a click meanwhile can miss its target.
        expect(page.locator("#main-nav")).to_have_class(re.compile(r"\bshow\b"))
    expect(page.get_by_test_id("main-nav")).to_be_visible()


def open_manage_menu(page: Page) -> None:
    """Open the manager's "Manage" menu (the navigation already open)."""
    menu = page.get_by_test_id("manage-menu")
    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")


@pytest.mark.parametrize("viewport", VIEWPORT_NAMES)
@pytest.mark.parametrize("role", PERSONAS)
def test_sign_in_shows_role_dashboard(
    live_server, new_page: NewPage, request: pytest.FixtureRequest, role: str, viewport: str
) -> None:
    persona: User = request.getfixturevalue(role)  # the receptionist/practitioner/manager fixture
    nav_entries, own_panels = EXPECTED[role]
    tab = new_page(viewport)
    page = tab.page

    sign_in(tab, live_server.url, persona)

    expect(page.get_by_role("heading", level=1)).to_have_text(f"Hello, {persona.first_name}")
    expect(page.get_by_test_id("role-badge")).to_have_text([ROLE_LABELS[role]])
    open_navigation(page)
    expect(page.get_by_test_id("main-nav").get_by_role("link")).to_have_text(nav_entries)
    # The manager's occasional pages are in the "Manage" menu; nobody else has one.
    menu = page.get_by_test_id("manage-menu")
    expect(menu).to_have_count(1 if role == "manager" else 0)
    if role == "manager":
        open_manage_menu(page)
        expect(page.get_by_test_id("main-nav").get_by_role("link")).to_have_text(
            [*nav_entries, "Staff", "Clinic settings", "Import patients", "Audit log"]
        )
        menu.click()
    expect(page.get_by_test_id("panel-account")).to_be_visible()
    for panel in ROLE_PANELS:
        expect(page.get_by_test_id(panel)).to_have_count(1 if panel in own_panels else 0)
    assert_styled(page)
    screenshot(page, f"dashboard-{role}-{viewport}.png")
    assert tab.errors == []


def test_manager_sees_own_sign_in_in_audit_log(
    live_server, new_page: NewPage, manager: User
) -> None:
    tab = new_page("desktop")
    page = tab.page
    sign_in(tab, live_server.url, manager)

    open_manage_menu(page)
    page.get_by_test_id("main-nav").get_by_role("link", name="Audit log").click()

    expect(page).to_have_url(live_server.url + "/audit/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Audit log")
    sign_ins = page.get_by_test_id("audit-table").locator("tbody tr").filter(has_text="signed in")
    expect(sign_ins).to_have_count(1)
    # Columns: When, Who, Role, Action, What, From. "Who" is the username.
    expect(sign_ins.locator("td").nth(1)).to_have_text(manager.username)
    expect(sign_ins.locator("td").nth(3)).to_have_text("signed in")
    assert_styled(page)
    screenshot(page, "audit-log-desktop.png")
    assert tab.errors == []


def test_unknown_page_is_a_styled_404(live_server, new_page: NewPage) -> None:
    tab = new_page("desktop")
    page = tab.page
    url = live_server.url + "/no/such/page"

    response = page.goto(url)

    assert response is not None
    assert response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("This page does not exist")
    expect(page.get_by_role("link", name="Go to the dashboard")).to_be_visible()
    assert_styled(page)
    screenshot(page, "404-desktop.png")
    # Chromium reports the 404 of the page itself on the console; nothing else may fail.
    assert tab.errors_except(url) == []


@pytest.mark.parametrize("viewport", VIEWPORT_NAMES)
def test_login_page(live_server, new_page: NewPage, viewport: str) -> None:
    tab = new_page(viewport)
    page = tab.page

    page.goto(live_server.url + "/accounts/login/")

    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_label("Username")).to_be_visible()
    expect(page.get_by_label("Password")).to_be_visible()
    expect(page.get_by_role("link", name="Forgotten your password?")).to_be_visible()
    # Nobody is signed in: no navigation, no user menu.
    expect(page.get_by_test_id("main-nav")).to_have_count(0)
    expect(page.get_by_test_id("user-menu")).to_have_count(0)
    assert_styled(page)
    screenshot(page, f"login-{viewport}.png")
    assert tab.errors == []


def sign_out(tab: BrowserPage) -> None:
    tab.page.get_by_test_id("user-menu").click()
    tab.page.get_by_test_id("logout").click()


def test_sign_out_from_user_menu_says_so_and_ends_the_session(
    live_server, new_page: NewPage, receptionist: User
) -> None:
    tab = new_page("desktop")
    page = tab.page
    sign_in(tab, live_server.url, receptionist)

    sign_out(tab)

    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    expect(page.get_by_text("You have signed out.")).to_be_visible(timeout=2_000)
    expect(page.get_by_test_id("user-menu")).to_have_count(0)
    screenshot(page, "signed-out-desktop.png")
    # Signed out for real: the dashboard asks for a password again.
    page.goto(live_server.url + "/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    assert tab.errors == []

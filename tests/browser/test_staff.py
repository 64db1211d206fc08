"""The staff page in a real browser, at 1366x768 and 768x1024: a manager
invites a receptionist, who joins from the emailed link, sets up two-factor
authentication (the code computed from the key the page shows) and keeps
her backup codes; then five wrong passwords lock her out, the manager
unlocks her from her page, and she signs in with a backup code."""

from __future__ import annotations

import base64
import re
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Page, expect

from clinic.models import AuditAction, AuditEvent, StaffInvitation, User
from clinic.roles import Role
from tests.browser.conftest import BrowserPage, screenshot
from tests.browser.test_journeys import NewPage, assert_styled, open_navigation, sign_in
from tests.conftest import totp_code

pytestmark = pytest.mark.browser

SIZES = {"desktop": {"width": 1366, "height": 768}, "tablet": {"width": 768, "height": 1024}}
NEW_PASSWORD = "bright lantern harbour 42"


def _tab(new_page: NewPage, viewport: str) -> BrowserPage:
    tab = new_page(viewport)
    tab.page.set_viewport_size(SIZES[viewport])
    return tab


def _sign_in_with_password(page: Page, base_url: str, username: str, password: str) -> None:
    page.goto(base_url + "/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def _no_horizontal_scroll(page: Page) -> None:
    """The page fits the window's width (a wide table scrolls inside its card)."""
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], widths


@pytest.mark.parametrize("viewport", ["desktop", "tablet"])
def test_a_manager_invites_a_receptionist_who_joins_then_unlocks_her(
    live_server, new_page: NewPage, manager: User, practitioner: User, viewport: str
) -> None:
    base = live_server.url
    boss_tab = _tab(new_page, viewport)
    boss = boss_tab.page
    sign_in(boss_tab, base, manager)

    # The staff page, from the main navigation.
    open_navigation(boss)
    boss.get_by_test_id("main-nav").get_by_role("link", name="Staff").click()
    expect(boss.get_by_role("heading", level=1)).to_have_text("Staff")
    expect(boss.get_by_test_id("staff-row")).to_have_count(2)

    # Invite Nadia as a receptionist.
    boss.get_by_test_id("staff-invite").click()
    expect(boss.get_by_role("heading", level=1)).to_have_text("Invite a member of staff")
    boss.get_by_label("First name").fill("Nadia")
    boss.get_by_label("Last name").fill("Novak")
    boss.get_by_label("Email").fill("nadia@clinic.example")
    boss.get_by_label("Receptionist").check()
    assert_styled(boss)
    screenshot(boss, f"staff-invite-{viewport}.png")
    boss.get_by_test_id("staff-invite-send").click()
    expect(boss.get_by_text("The invitation was emailed to nadia@clinic.example.")).to_be_visible()
    expect(boss.get_by_test_id("invitation")).to_contain_text("nadia@clinic.example")
    expect(boss.get_by_test_id("invitation")).to_contain_text("Receptionist")
    assert_styled(boss)
    _no_horizontal_scroll(boss)
    screenshot(boss, f"staff-list-invited-{viewport}.png")

    link = re.search(r"https?://\S+/staff/join/\S+/", mail.outbox[-1].body)
    assert link, mail.outbox[-1].body
    path = urlsplit(link.group(0)).path

    # Nadia joins: username, password, then the authenticator and her codes.
    nadia_tab = _tab(new_page, viewport)
    nadia = nadia_tab.page
    nadia.goto(base + path)
    expect(nadia.get_by_role("heading", level=1)).to_have_text("Welcome, Nadia")
    expect(nadia.get_by_label("Username")).to_have_value("nadia")
    nadia.locator("input[name=password1]").fill(NEW_PASSWORD)
    nadia.locator("input[name=password2]").fill(NEW_PASSWORD)
    assert_styled(nadia)
    screenshot(nadia, f"staff-join-{viewport}.png")
    nadia.get_by_test_id("staff-join").click()

    expect(nadia).to_have_url(re.compile(r"/accounts/two-factor/setup/"))
    expect(nadia.get_by_text("One more step: set up two-factor authentication")).to_be_visible()
    secret = nadia.get_by_test_id("totp-secret").inner_text().replace(" ", "")
    phone = TOTPDevice(key=base64.b32decode(secret).hex())
    nadia.locator("input[name=otp_token]").fill(totp_code(phone))
    screenshot(nadia, f"staff-two-factor-setup-{viewport}.png")
    nadia.get_by_role("button", name="Turn on two-factor authentication").click()

    expect(nadia.get_by_role("heading", level=1)).to_have_text("Your backup codes")
    codes = [c.replace(" ", "") for c in nadia.get_by_test_id("backup-code").all_inner_texts()]
    assert len(codes) == 10
    assert all(re.fullmatch(r"[a-z2-7]{8}", code) for code in codes)
    assert_styled(nadia)
    screenshot(nadia, f"staff-backup-codes-{viewport}.png")
    nadia.get_by_test_id("backup-codes-done").click()
    expect(nadia).to_have_url(base + "/")
    expect(nadia.get_by_test_id("role-badge")).to_have_text(["Receptionist"])
    expect(nadia.get_by_test_id("two-factor-state")).to_have_text("on: a code at every sign-in")

    # She is on the staff page now, set up, with no invitation waiting.
    boss.reload()
    row = boss.get_by_test_id("staff-row").filter(has_text="Nadia Novak")
    expect(row.get_by_test_id("staff-two-factor")).to_contain_text("set up")
    expect(row.get_by_test_id("staff-two-factor")).to_contain_text("10 backup codes left")
    expect(boss.get_by_text("No invitation is waiting.")).to_be_visible()

    # Signed out, she mistypes her password five times: locked.
    _menu(nadia)
    nadia.get_by_test_id("logout").click()
    for _ in range(5):
        _sign_in_with_password(nadia, base, "nadia", "not my password")
    expect(nadia.get_by_role("heading", level=1)).to_have_text("Account locked for now")
    expect(nadia.get_by_text("Ask your clinic manager to unlock it")).to_be_visible()
    assert_styled(nadia)
    screenshot(nadia, f"staff-locked-out-{viewport}.png")

    # The manager sees the lock and lifts it from her page.
    boss.reload()
    row = boss.get_by_test_id("staff-row").filter(has_text="Nadia Novak")
    expect(row.get_by_test_id("staff-state")).to_contain_text("locked")
    _no_horizontal_scroll(boss)
    screenshot(boss, f"staff-list-locked-{viewport}.png")
    row.get_by_test_id("staff-open").click()
    expect(boss.get_by_role("heading", level=1)).to_have_text("Nadia Novak")
    expect(boss.get_by_test_id("member-locked")).to_be_visible()
    assert_styled(boss)
    screenshot(boss, f"staff-member-locked-{viewport}.png")
    boss.get_by_test_id("member-unlock").click()
    expect(boss.get_by_text("Nadia Novak can sign in again.")).to_be_visible()
    expect(boss.get_by_test_id("member-locked")).to_have_count(0)
    expect(boss.get_by_test_id("member-history")).to_contain_text("lifted the sign-in lock of")
    _no_horizontal_scroll(boss)
    screenshot(boss, f"staff-member-unlocked-{viewport}.png")

    # She signs in again, with a backup code for the second step.
    _sign_in_with_password(nadia, base, "nadia", NEW_PASSWORD)
    expect(nadia).to_have_url(re.compile(r"/accounts/two-factor/"))
    expect(nadia.get_by_test_id("backup-code-hint")).to_be_visible()
    nadia.locator("input[name=otp_token]").fill(f"{codes[0][:4]} {codes[0][4:]}")
    nadia.get_by_role("button", name="Continue").click()
    expect(nadia).to_have_url(base + "/")
    expect(nadia.get_by_text("9 backup codes are left")).to_be_visible()
    # Her own account page counts them, and makes new ones.
    nadia.goto(base + "/accounts/me/")
    expect(nadia.get_by_test_id("account-codes-left")).to_contain_text("9 backup codes left.")
    assert_styled(nadia)
    screenshot(nadia, f"staff-account-{viewport}.png")

    joined = User.objects.get(username="nadia")
    assert joined.roles == {Role.RECEPTIONIST}
    assert StaffInvitation.objects.get().user == joined
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {
        AuditAction.INVITATION_SENT,
        AuditAction.INVITATION_ACCEPTED,
        AuditAction.TWO_FACTOR_ENROLLED,
        AuditAction.BACKUP_CODES_MADE,
        AuditAction.SIGN_IN_UNLOCKED,
    } <= actions
    assert boss_tab.errors == []
    # The lockout page is answered 429, which the browser reports once per try.
    assert [e for e in nadia_tab.errors if "429" not in e] == []


def _menu(page: Page) -> None:
    """Open the user menu (behind the navigation toggler on a tablet)."""
    open_navigation(page)
    page.get_by_test_id("user-menu").click()

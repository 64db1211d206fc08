"""The staff page in a real browser, at 1366x768 and 768x1024: a manager
invites a receptionist, who joins from the emailed link, sets up two-factor
authentication (the code computed from the key the page shows) and keeps
her backup codes; then five wrong passwords lock her out, the manager
unlocks her from her page, and she signs in with a backup code."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
import time_machine
from django.core import mail
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Page, expect

from clinic.models import AuditAction, AuditEvent, StaffInvitation, User
from clinic.roles import Role
from clinic.staff import staff_deactivate, staff_invite
from tests.browser.axe import axe_violations, describe
from tests.browser.conftest import BrowserPage, screenshot
from tests.browser.test_journeys import (
    NewPage,
    assert_styled,
    open_manage_menu,
    open_navigation,
    sign_in,
)
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
    open_manage_menu(boss)
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


@pytest.fixture
def morning() -> Iterator[None]:
    """A fixed Tuesday morning, ticking (codes last their 30 seconds)."""
    with time_machine.travel(datetime(2026, 11, 24, 9, 30, tzinfo=UTC), tick=True):
        yield


@pytest.mark.parametrize("viewport", ["desktop", "tablet"])
def test_the_pages_of_a_returning_person_a_withdrawn_link_and_a_new_phone(
    morning: None,
    live_server,
    new_page: NewPage,
    manager: User,
    receptionist: User,
    make_staff: Callable[..., User],
    viewport: str,
) -> None:
    """A second manager who invited someone is deactivated: the link says it
    was withdrawn. The receptionist who left is invited again: the form says
    her account is deactivated and leads to reactivating it. She sets up a
    new phone: the page says the old one works until then. A look-alike
    username is refused on the joining page."""
    base = live_server.url
    second = make_staff("second-boss", Role.MANAGER, first_name="Bea", last_name="Baker")
    issued = staff_invite(
        invited_by=second, email="omar@clinic.example", first_name="Omar", roles=["manager"]
    )
    look_alike = staff_invite(
        invited_by=manager, email="mimic@clinic.example", first_name="Mimi", roles=["receptionist"]
    )
    staff_deactivate(actor=manager, member=receptionist)

    boss_tab = _tab(new_page, viewport)
    boss = boss_tab.page
    sign_in(boss_tab, base, manager)
    boss.goto(base + f"/staff/{second.uuid}/")
    boss.get_by_test_id("member-deactivate-ask").locator("summary").click()
    boss.get_by_test_id("member-deactivate").click()
    expect(
        boss.get_by_text("The invitation they sent to omar@clinic.example is withdrawn")
    ).to_be_visible()
    assert_styled(boss)
    _no_horizontal_scroll(boss)
    screenshot(boss, f"staff-member-deactivated-withdrawn-{viewport}.png")
    assert describe("staff-member-deactivated-withdrawn", axe_violations(boss)) == []

    visitor_tab = _tab(new_page, viewport)
    visitor = visitor_tab.page
    visitor.goto(base + urlsplit(issued.url).path)
    expect(visitor.get_by_test_id("staff-join-refused")).to_contain_text(
        "This invitation was withdrawn"
    )
    assert_styled(visitor)
    screenshot(visitor, f"staff-join-withdrawn-{viewport}.png")
    assert describe("staff-join-withdrawn", axe_violations(visitor)) == []
    visitor.goto(base + urlsplit(look_alike.url).path)
    visitor.get_by_label("Username").fill("m\u0430nager")
    visitor.locator("input[name=password1]").fill(NEW_PASSWORD)
    visitor.locator("input[name=password2]").fill(NEW_PASSWORD)
    visitor.get_by_test_id("staff-join").click()
    expect(visitor.get_by_text("may hold only the letters a to z")).to_be_visible()
    visitor.get_by_label("Username").fill("rnanager")
    visitor.locator("input[name=password1]").fill(NEW_PASSWORD)
    visitor.locator("input[name=password2]").fill(NEW_PASSWORD)
    visitor.get_by_test_id("staff-join").click()
    expect(visitor.get_by_text("That username reads like another account")).to_be_visible()
    assert_styled(visitor)
    _no_horizontal_scroll(visitor)
    screenshot(visitor, f"staff-join-look-alike-{viewport}.png")
    assert describe("staff-join-look-alike", axe_violations(visitor)) == []

    boss.goto(base + "/staff/invite/")
    boss.get_by_label("First name").fill("Rosa")
    boss.get_by_label("Email").fill(receptionist.email)
    boss.get_by_label("Receptionist").check()
    boss.get_by_test_id("staff-invite-send").click()
    expect(boss.get_by_text("which is deactivated")).to_be_visible()
    assert_styled(boss)
    _no_horizontal_scroll(boss)
    screenshot(boss, f"staff-invite-deactivated-{viewport}.png")
    assert describe("staff-invite-deactivated", axe_violations(boss)) == []
    boss.get_by_test_id("staff-invite-reactivate").get_by_role("link").click()
    boss.get_by_test_id("member-reactivate").click()
    expect(boss.get_by_text("can sign in again, with the roles they held")).to_be_visible()

    rosa_tab = _tab(new_page, viewport)
    rosa = rosa_tab.page
    sign_in(rosa_tab, base, receptionist)
    rosa.goto(base + "/accounts/me/")
    rosa.get_by_test_id("account-new-phone").click()
    expect(rosa.get_by_test_id("setup-replacing")).to_contain_text("keeps working until")
    assert_styled(rosa)
    screenshot(rosa, f"staff-two-factor-new-phone-{viewport}.png")
    assert describe("staff-two-factor-new-phone", axe_violations(rosa)) == []
    assert TOTPDevice.objects.filter(user=receptionist).count() == 1
    for tab in (visitor_tab, boss_tab, rosa_tab):
        assert [e for e in tab.errors if "410" not in e and "400" not in e and "409" not in e] == []

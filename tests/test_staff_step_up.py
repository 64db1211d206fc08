"""Confirming it is you again (clinic/stepup.py) before changing a second
factor (a new authenticator or phone, new backup codes) or a colleague's
roles or authenticator: asked once the last confirmation (signing in
counts) is over ten minutes old; the password and, for whoever has set up
two-factor, a code; then back to the page they were going to. A wrong
password counts towards the sign-in lock, and every try is audited."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
import time_machine
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from clinic.models import AuditAction, AuditEvent, StaffInvitation, User
from clinic.roles import Role
from clinic.staff import backup_codes_issue, staff_deactivate
from clinic.stepup import STEP_UP_VALID
from clinic.views import SETUP_KEY_SESSION
from tests.conftest import sign_in, totp_code
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

MORNING = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
# Past the confirmation, within the 15 minutes of the idle sign-out.
LATER = MORNING + STEP_UP_VALID + timedelta(minutes=1)
ACCOUNT = "/accounts/me/"
CONFIRM = "/accounts/confirm/"
SETUP = "/accounts/two-factor/setup/"
INVITE = "/staff/invite/"
STAFF = "/staff/"


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    # Ticking: a code from the app is for the 30 seconds it is shown in.
    with time_machine.travel(MORNING, tick=True):
        yield


def confirm_page(next_url: str, back: str = "") -> str:
    query = {"next": next_url} | ({"back": back} if back else {})
    return f"{CONFIRM}?{urlencode(query)}"


def confirm(
    client: Client,
    user: User,
    *,
    password: str = PASSWORD,
    code: str | None = None,
    next_url: str = ACCOUNT,
) -> Any:
    data = {"password": password, "next": next_url}
    device = TOTPDevice.objects.filter(user=user).first()
    if code is None and device is not None:
        code = totp_code(device)
    if code:
        data["otp_token"] = code
    return client.post(CONFIRM, data)


def test_a_fresh_sign_in_counts_as_confirmed(receptionist: User) -> None:
    desk = sign_in(Client(), receptionist)
    response = desk.post(ACCOUNT, {"action": "backup_codes"})
    assert response.status_code == 200
    assert StaticToken.objects.filter(device__user=receptionist).count() == 10


def test_new_backup_codes_ten_minutes_after_sign_in_ask_for_the_password_and_code_first(
    receptionist: User,
) -> None:
    desk = sign_in(Client(), receptionist)
    with time_machine.travel(LATER, tick=True):
        response = desk.post(ACCOUNT, {"action": "backup_codes"}, follow=True)
        assert response.redirect_chain == [(confirm_page(ACCOUNT), 302)]
        page = response.content.decode()
        assert "Nothing was changed yet" in page
        assert 'name="password"' in page
        assert 'name="otp_token"' in page
        assert not StaticToken.objects.filter(device__user=receptionist).exists()
        assert not AuditEvent.objects.filter(action=AuditAction.BACKUP_CODES_MADE).exists()

        done = confirm(desk, receptionist)
        assert done.status_code == 302
        assert done["Location"] == ACCOUNT
        event = AuditEvent.objects.get(action=AuditAction.REAUTHENTICATED)
        assert (event.actor, event.object_id) == (receptionist, "reception")
        assert sorted(event.changed_fields) == ["authenticator", "password"]
        assert desk.post(ACCOUNT, {"action": "backup_codes"}).status_code == 200
        assert StaticToken.objects.filter(device__user=receptionist).count() == 10
    # Ten minutes on, asked again.
    with time_machine.travel(LATER + STEP_UP_VALID + timedelta(seconds=1), tick=True):
        assert desk.get(ACCOUNT).status_code == 200  # reading the page asks nothing
        assert desk.post(ACCOUNT, {"action": "replace_authenticator"})["Location"] == (
            confirm_page(ACCOUNT)
        )


def test_a_new_phone_later_is_set_up_only_after_confirming_and_lands_on_the_setup_page(
    receptionist: User,
) -> None:
    desk = sign_in(Client(), receptionist)
    with time_machine.travel(LATER, tick=True):
        assert desk.post(ACCOUNT, {"action": "replace_authenticator"})["Location"] == (
            confirm_page(ACCOUNT)
        )
        # The setup page itself, opened directly with its query, asks too and keeps it.
        target = f"{SETUP}?{urlencode({'next': '/patients/'})}"
        session = desk.session
        session["_clinic_totp_replacing"] = True
        session.save()
        assert desk.get(target)["Location"] == confirm_page(target, back=ACCOUNT)
        done = confirm(desk, receptionist, next_url=target)
        assert done["Location"] == target
        assert desk.get(target).status_code == 200


def test_a_wrong_password_is_said_audited_and_counted_towards_the_sign_in_lock(
    receptionist: User,
) -> None:
    desk = sign_in(Client(), receptionist)
    with time_machine.travel(LATER, tick=True):
        response = confirm(desk, receptionist, password="not my password at all")
        assert response.status_code == 400
        assert "That is not your password" in response.content.decode()
        assert AccessAttempt.objects.get(username="reception").failures_since_start == 1
        failed = AuditEvent.objects.filter(action=AuditAction.LOGIN_FAILED)
        assert failed.count() == 1
        assert not AuditEvent.objects.filter(action=AuditAction.REAUTHENTICATED).exists()
        # Not confirmed: still asked.
        assert desk.post(ACCOUNT, {"action": "backup_codes"}).status_code == 302
        for _try in range(settings.AXES_FAILURE_LIMIT - 1):
            last = confirm(desk, receptionist, password="still not it")
        assert last.status_code == 429
        # Locked: the right password is refused too, as at sign-in.
        assert confirm(desk, receptionist).status_code == 429
        assert not AuditEvent.objects.filter(action=AuditAction.REAUTHENTICATED).exists()
        signing_in = Client().post(
            reverse("login"), {"username": "reception", "password": PASSWORD}
        )
        assert signing_in.status_code == 429


def test_the_right_password_with_a_wrong_or_replayed_code_confirms_nothing(
    receptionist: User,
) -> None:
    desk = sign_in(Client(), receptionist)
    with time_machine.travel(LATER, tick=False):
        wrong = confirm(desk, receptionist, code="000000")
        assert wrong.status_code == 400
        assert "That code is not right" in wrong.content.decode()
        event = AuditEvent.objects.get(action=AuditAction.LOGIN_FAILED)
        assert (event.actor, event.object_id) == (receptionist, "step_up")
        # At once again: the app's wrong codes slow the next try down.
        hurried = confirm(desk, receptionist)
        assert hurried.status_code == 429
        assert "Wait a minute" in hurried.content.decode()
    with time_machine.travel(LATER + timedelta(seconds=5), tick=False):
        code = totp_code(TOTPDevice.objects.get(user=receptionist))
        assert confirm(desk, receptionist, code=code).status_code == 302
        # The same code again, from another session of the same person: refused.
        other = sign_in(Client(), receptionist)
        session = other.session
        session["_clinic_step_up_at"] = 0
        session.save()
        replayed = confirm(other, receptionist, code=code)
        assert replayed.status_code == 400
        assert AuditEvent.objects.filter(action=AuditAction.REAUTHENTICATED).count() == 1
        # No code at all: the form asks for it.
        missing = other.post(CONFIRM, {"password": PASSWORD, "next": ACCOUNT})
        assert missing.status_code == 400
        assert "Enter the 6 digits" in missing.content.decode()
        assert other.post(ACCOUNT, {"action": "backup_codes"}).status_code == 302


def test_a_backup_code_confirms_and_is_spent(receptionist: User) -> None:
    codes = backup_codes_issue(user=receptionist)
    desk = sign_in(Client(), receptionist)
    with time_machine.travel(LATER, tick=True):
        assert confirm(desk, receptionist, code=codes[0]).status_code == 302
        assert not StaticToken.objects.filter(token=codes[0]).exists()
        event = AuditEvent.objects.get(action=AuditAction.REAUTHENTICATED)
        assert sorted(event.changed_fields) == ["backup_code", "password"]


def test_without_two_factor_the_password_alone_is_asked(make_staff: Any, settings: Any) -> None:
    settings.REQUIRE_STAFF_2FA = False
    solo = make_staff("solo", Role.MANAGER, two_factor=False)
    desk = sign_in(Client(), solo)
    with time_machine.travel(LATER, tick=True):
        target = INVITE
        assert desk.get(target)["Location"] == confirm_page(target, back=STAFF)
        page = desk.get(confirm_page(target)).content.decode()
        assert 'name="password"' in page
        assert 'name="otp_token"' not in page
        assert confirm(desk, solo, next_url=target)["Location"] == target
        assert desk.get(target).status_code == 200


@pytest.mark.parametrize(
    ("action", "role"),
    [("give_role", "practitioner"), ("take_role", "receptionist"), ("reset_authenticator", "")],
)
def test_a_manager_confirms_before_changing_roles_or_resetting_an_authenticator(
    manager: User, receptionist: User, action: str, role: str
) -> None:
    boss = sign_in(Client(), manager)
    page = reverse("staff_member", kwargs={"member": receptionist.uuid})
    data = {"action": action, "role": role}
    with time_machine.travel(LATER, tick=True):
        response = boss.post(page, data)
        assert response["Location"] == confirm_page(page)
        receptionist.refresh_from_db()
        assert User.objects.get(pk=receptionist.pk).roles == {Role.RECEPTIONIST}
        assert TOTPDevice.objects.filter(user=receptionist).exists()
        assert confirm(boss, manager, next_url=page)["Location"] == page
        assert boss.post(page, data).status_code == 302
        assert boss.post(page, data)["Location"] == page


def test_deactivating_needs_no_fresh_confirmation(manager: User, receptionist: User) -> None:
    """Taking access away is never what someone at a stolen screen is after."""
    boss = sign_in(Client(), manager)
    page = reverse("staff_member", kwargs={"member": receptionist.uuid})
    with time_machine.travel(LATER, tick=True):
        assert boss.post(page, {"action": "deactivate"})["Location"] == page


def test_the_confirmation_page_takes_a_fixed_number_of_queries(
    receptionist: User, django_assert_max_num_queries: Any
) -> None:
    desk = sign_in(Client(), receptionist)
    desk.get(confirm_page(ACCOUNT))
    with django_assert_max_num_queries(8):
        assert desk.get(confirm_page(ACCOUNT)).status_code == 200


def test_a_next_to_another_site_leads_to_the_account_page(receptionist: User) -> None:
    desk = sign_in(Client(), receptionist)
    with time_machine.travel(LATER, tick=True):
        done = confirm(desk, receptionist, next_url="https://elsewhere.example/")
        assert done["Location"] == ACCOUNT


@pytest.mark.parametrize(
    "back", ["https://elsewhere.example/", "//elsewhere.example", "javascript:alert(1)"]
)
def test_a_cancel_to_another_site_is_not_offered(receptionist: User, back: str) -> None:
    desk = sign_in(Client(), receptionist)
    page = desk.get(f"{CONFIRM}?{urlencode({'next': ACCOUNT, 'back': back})}")
    assert page.status_code == 200
    assert "elsewhere" not in page.content.decode()
    assert "javascript" not in page.content.decode()


def test_reactivating_a_manager_asks_for_the_confirmation_first(
    manager: User, make_staff: Any
) -> None:
    """A closed account opened again reaches the patients' records again."""
    other = make_staff("deputy", Role.MANAGER)
    staff_deactivate(actor=manager, member=other)
    boss = sign_in(Client(), manager)
    page = reverse("staff_member", kwargs={"member": other.uuid})
    with time_machine.travel(LATER, tick=True):
        response = boss.post(page, {"action": "reactivate"})
        assert response["Location"] == confirm_page(page)
        assert not User.objects.get(pk=other.pk).is_active
        assert confirm(boss, manager, next_url=page)["Location"] == page
        assert boss.post(page, {"action": "reactivate"})["Location"] == page
        assert User.objects.get(pk=other.pk).is_active


def test_unlocking_needs_no_fresh_confirmation(manager: User, receptionist: User) -> None:
    """Unlocking only lets the owner try their own password and code again."""
    boss = sign_in(Client(), manager)
    page = reverse("staff_member", kwargs={"member": receptionist.uuid})
    with time_machine.travel(LATER, tick=True):
        assert boss.post(page, {"action": "unlock"})["Location"] == page


def test_opening_the_invitation_form_asks_for_the_confirmation_then_shows_the_empty_form(
    manager: User,
) -> None:
    boss = sign_in(Client(), manager)
    assert boss.get(INVITE).status_code == 200
    with time_machine.travel(LATER, tick=True):
        asked = boss.get(INVITE)["Location"]
        assert asked == confirm_page(INVITE, back=STAFF)
        # Cancel leads to the staff list: the form would only ask again.
        assert f'href="{STAFF}"' in boss.get(asked).content.decode()
        assert confirm(boss, manager, next_url=INVITE)["Location"] == INVITE
        page = boss.get(INVITE)
        assert page.status_code == 200
        assert 'data-testid="staff-invite-step-up"' not in page.content.decode()


INVITATION = {
    "first_name": "Nadia",
    "last_name": "Okafor",
    "email": "nadia@clinic.example",
    "roles": ["manager", "practitioner"],
}


def test_an_invitation_sent_late_keeps_what_was_typed_and_asks_the_confirmation_on_the_form(
    manager: User,
) -> None:
    boss = sign_in(Client(), manager)
    with time_machine.travel(LATER, tick=True):
        late = boss.post(INVITE, INVITATION)
        assert late.status_code == 403
        assert not StaffInvitation.objects.exists()
        page = late.content.decode()
        assert 'data-testid="staff-invite-step-up"' in page
        assert 'name="password"' in page
        assert 'name="otp_token"' in page
        for typed in ("Nadia", "Okafor", "nadia@clinic.example"):
            assert f'value="{typed}"' in page
        checked = late.context["form"]["roles"].value()
        assert sorted(checked) == ["manager", "practitioner"]

        wrong = boss.post(
            INVITE,
            {**INVITATION, "password": "not my password at all", "otp_token": "123456"},
        )
        assert wrong.status_code == 400
        assert "That is not your password" in wrong.content.decode()
        assert 'value="nadia@clinic.example"' in wrong.content.decode()
        # Counted towards the sign-in lock and audited as at the confirmation page.
        assert AccessAttempt.objects.get(username="manager").failures_since_start == 1
        assert AuditEvent.objects.filter(action=AuditAction.LOGIN_FAILED).count() == 1
        assert not StaffInvitation.objects.exists()

        code = totp_code(TOTPDevice.objects.get(user=manager))
        sent = boss.post(INVITE, {**INVITATION, "password": PASSWORD, "otp_token": code})
        assert sent.status_code == 302
        assert sent["Location"] == reverse("staff_list")
        invitation = StaffInvitation.objects.get()
        assert (invitation.email, sorted(invitation.roles)) == (
            "nadia@clinic.example",
            ["manager", "practitioner"],
        )
        event = AuditEvent.objects.get(action=AuditAction.REAUTHENTICATED)
        assert sorted(event.changed_fields) == ["authenticator", "password"]


def test_a_late_invitation_with_the_password_alone_is_refused_when_a_code_is_set_up(
    manager: User,
) -> None:
    boss = sign_in(Client(), manager)
    with time_machine.travel(LATER, tick=True):
        response = boss.post(INVITE, {**INVITATION, "password": PASSWORD})
        assert response.status_code == 400
        assert "Enter the 6 digits" in response.content.decode()
        assert not StaffInvitation.objects.exists()


def test_first_setting_up_an_authenticator_late_in_the_sign_in_asks_no_confirmation(
    make_staff: Any,
) -> None:
    """With two-factor required, the setup page is the only one a newcomer
    may open: sending them to the confirmation page sent them back, for ever,
    and dropped the code they typed."""
    make_staff("newbie", Role.RECEPTIONIST, two_factor=False)
    newbie = Client()
    signed = newbie.post(reverse("login"), {"username": "newbie", "password": PASSWORD})
    assert signed.status_code == 302
    assert newbie.get(SETUP).status_code == 200
    key = newbie.session[SETUP_KEY_SESSION]
    with time_machine.travel(LATER, tick=True):
        code = totp_code(TOTPDevice(key=key))
        done = newbie.post(SETUP, {"otp_token": code})
        assert done.status_code == 200
        assert "registration/backup_codes.html" in [t.name for t in done.templates]
        assert TOTPDevice.objects.filter(user__username="newbie", confirmed=True).exists()


def _walk(client: Client, response: Any) -> list[tuple[str, int]]:
    """The redirects from `response` followed, as a browser would."""
    seen: list[tuple[str, int]] = []
    for _hop in range(8):
        if response.status_code != 302:
            return seen
        url = response["Location"]
        assert url not in [where for where, _status in seen], f"a loop: {seen} then {url}"
        response = client.get(url)
        seen.append((url, response.status_code))
    raise AssertionError(f"still redirected after 8 pages: {seen}")


@pytest.mark.parametrize(
    ("device", "verified", "required"),
    [
        pytest.param(False, False, True, id="no-device-2fa-required"),
        pytest.param(False, False, False, id="no-device-2fa-optional"),
        pytest.param(True, False, True, id="device-not-verified"),
        pytest.param(True, True, True, id="verified"),
    ],
)
def test_no_page_asking_the_confirmation_loops_with_the_two_factor_step(
    make_staff: Any, receptionist: User, settings: Any, device: bool, verified: bool, required: bool
) -> None:
    settings.REQUIRE_STAFF_2FA = required
    boss = make_staff("boss", Role.MANAGER, two_factor=device)
    client = Client()
    if verified:
        sign_in(client, boss)
    else:
        client.force_login(boss)
        session = client.session
        session["_clinic_step_up_at"] = MORNING.timestamp()
        session.save()
    member = reverse("staff_member", kwargs={"member": receptionist.uuid})
    with time_machine.travel(LATER, tick=True):
        asked = [
            client.get(SETUP),
            client.get(INVITE),
            client.get(confirm_page(INVITE)),
            client.post(INVITE, INVITATION),
            client.post(ACCOUNT, {"action": "backup_codes"}),
            client.post(member, {"action": "give_role", "role": "practitioner"}),
        ]
        for response in asked:
            seen = _walk(client, response)
            final = seen[-1][1] if seen else response.status_code
            assert final in {200, 403, 409}, (response.request["PATH_INFO"], seen)
    assert not StaffInvitation.objects.exists()
    assert User.objects.get(pk=receptionist.pk).roles == {Role.RECEPTIONIST}


def test_after_confirming_the_page_says_whether_the_change_sent_still_waits(
    manager: User, receptionist: User
) -> None:
    """A change stopped to ask for the confirmation was not made: the page
    the person comes back to says to choose it again. Opening a page that
    asked first only says the confirmation holds, and for how long."""
    boss = sign_in(Client(), manager)
    page = reverse("staff_member", kwargs={"member": receptionist.uuid})
    with time_machine.travel(LATER, tick=True):
        boss.post(page, {"action": "give_role", "role": Role.PRACTITIONER})
        back = boss.get(confirm(boss, manager, next_url=page)["Location"])
        text = back.content.decode()
        assert "The change you chose was not made: choose it again now" in text
        assert "within 10 minutes" in text
        assert Role.PRACTITIONER not in User.objects.get(pk=receptionist.pk).roles
    with time_machine.travel(LATER + STEP_UP_VALID + timedelta(seconds=1), tick=True):
        boss.get(INVITE)
        form = boss.get(confirm(boss, manager, next_url=INVITE)["Location"]).content.decode()
        assert "that is confirmed for the next 10 minutes" in form
        assert "choose it again" not in form


def test_the_new_phone_page_speaks_of_a_new_phone_and_offers_to_keep_the_old_one(
    receptionist: User,
) -> None:
    desk = sign_in(Client(), receptionist)
    setup = desk.post(ACCOUNT, {"action": "replace_authenticator"})["Location"]
    assert setup.startswith(SETUP)
    page = desk.get(setup).content.decode()
    assert "<h1" in page
    assert "Set up a new phone</h1>" in page
    assert "Use the new phone" in page
    assert f'href="{ACCOUNT}" data-testid="setup-cancel"' in page
    # Not the first set-up's words: two-factor is on already, its codes exist.
    assert "Turn on two-factor authentication" not in page
    assert "does not require it" not in page
    assert "Then you get ten backup codes" not in page

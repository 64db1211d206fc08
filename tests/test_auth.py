"""Signing in: passwords, lockout, two-factor, session timeouts, sign-out."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
import time_machine
from django.conf import settings as django_settings
from django.contrib.auth.hashers import Argon2PasswordHasher
from django.contrib.auth.password_validation import validate_password
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clinic import settings as clinic_settings
from clinic.models import AuditAction, AuditEvent, User
from clinic.roles import Role
from tests.conftest import deliver_sign_in_mail, sign_in, totp_code
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"


def post_login(client: Client, username: str, password: str, **extra: str):
    return client.post(
        LOGIN, {"username": username, "password": password}, REMOTE_ADDR="10.0.0.7", **extra
    )


# --- Passwords ---------------------------------------------------------------------


def test_passwords_are_stored_with_argon2id(practitioner: User) -> None:
    assert practitioner.password.startswith("argon2$argon2id$")


def test_the_clinics_own_hasher_stores_argon2id_at_its_full_cost(
    practitioner: User, client: Client
) -> None:
    """The suite hashes at argon2's least cost (tests/settings.py); the
    clinic's settings hash at Argon2PasswordHasher's own, and a password
    stored at the suite's cost is checked and stored again at the full one."""
    full = Argon2PasswordHasher()
    cost = f"m={full.memory_cost},t={full.time_cost},p={full.parallelism}"
    assert clinic_settings.PASSWORD_HASHERS[0] == "django.contrib.auth.hashers.Argon2PasswordHasher"
    assert f"${cost}$" not in practitioner.password
    with override_settings(PASSWORD_HASHERS=clinic_settings.PASSWORD_HASHERS):
        assert post_login(client, "practitioner", PASSWORD).status_code == 302
        practitioner.refresh_from_db()
        assert practitioner.password.startswith(f"argon2$argon2id$v=19${cost}$")
        practitioner.set_password("another long pass phrase")
        assert practitioner.password.startswith(f"argon2$argon2id$v=19${cost}$")
        assert practitioner.check_password("another long pass phrase")
        assert not practitioner.check_password(PASSWORD)


@pytest.mark.parametrize("weak", ["password1234", "short-pw", "123456789012"])
def test_weak_passwords_are_refused(weak: str) -> None:
    with pytest.raises(ValidationError):
        validate_password(weak)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=64, max_size=128))
def test_long_passwords_of_any_characters_work(practitioner: User, password: str) -> None:
    practitioner.set_password(password)
    assert practitioner.check_password(password)


# --- Sign-in and lockout ---------------------------------------------------------


def test_sign_in_then_two_factor_code_reaches_the_dashboard(
    practitioner: User, client: Client
) -> None:
    response = post_login(client, "practitioner", PASSWORD)
    assert response.status_code == 302
    # With the password alone, every page sends the user to the code prompt.
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("two_factor"))
    device = TOTPDevice.objects.get(user=practitioner)
    response = client.post(reverse("two_factor"), {"otp_token": totp_code(device)})
    assert response.status_code == 302
    assert client.get(reverse("home")).status_code == 200


def test_the_same_totp_code_cannot_be_used_twice(practitioner: User) -> None:
    device = TOTPDevice.objects.get(user=practitioner)
    code = totp_code(device)
    first, second = Client(), Client()
    post_login(first, "practitioner", PASSWORD)
    assert first.post(reverse("two_factor"), {"otp_token": code}).status_code == 302
    post_login(second, "practitioner", PASSWORD)
    response = second.post(reverse("two_factor"), {"otp_token": code})
    assert response.status_code == 200
    assert "not valid" in response.content.decode()
    assert second.get(reverse("home")).status_code == 302


def test_staff_without_a_device_must_enrol_before_anything_else(make_staff, client: Client) -> None:
    make_staff("newbie", Role.RECEPTIONIST, two_factor=False)
    post_login(client, "newbie", PASSWORD)
    response = client.get(reverse("home"))
    assert response["Location"].startswith(reverse("two_factor_setup"))
    page = client.get(reverse("two_factor_setup"))
    assert page.status_code == 200
    assert TOTPDevice.objects.count() == 0  # looking at the page saves nothing
    secret = page.context["secret"].replace(" ", "")
    device = TOTPDevice(key=__import__("base64").b32decode(secret).hex())
    response = client.post(reverse("two_factor_setup"), {"otp_token": totp_code(device)})
    # The confirmation shows the backup codes, once, then leads on.
    assert response.status_code == 200
    assert len(response.context["codes"]) == 10
    assert TOTPDevice.objects.filter(user__username="newbie", confirmed=True).count() == 1
    assert client.get(reverse("home")).status_code == 200
    assert AuditEvent.objects.filter(action=AuditAction.TWO_FACTOR_ENROLLED).count() == 1


def test_a_wrong_enrolment_code_saves_nothing(make_staff, client: Client) -> None:
    make_staff("newbie", Role.RECEPTIONIST, two_factor=False)
    post_login(client, "newbie", PASSWORD)
    response = client.post(reverse("two_factor_setup"), {"otp_token": "000000"})
    assert response.status_code == 200
    assert "does not match" in response.content.decode()
    assert TOTPDevice.objects.count() == 0


def test_five_wrong_passwords_lock_the_account_with_a_clear_message(
    practitioner: User, client: Client
) -> None:
    for _ in range(4):
        response = post_login(client, "practitioner", "wrong password")
        assert response.status_code == 200
        assert "Please enter a correct username and password" in response.content.decode()
    response = post_login(client, "practitioner", "wrong password")
    assert response.status_code == 429
    assert "locked for 15 minutes" in response.content.decode()
    # While locked, even the right password is refused.
    response = post_login(client, "practitioner", PASSWORD)
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action=AuditAction.LOGIN_FAILED).count() >= 5


def test_the_lock_lifts_after_the_cool_off(practitioner: User, client: Client) -> None:
    for _ in range(5):
        post_login(client, "practitioner", "wrong password")
    with time_machine.travel(timezone.now() + timedelta(minutes=16)):
        response = post_login(client, "practitioner", PASSWORD)
        assert response.status_code == 302


def test_credential_stuffing_from_many_names_never_signs_in(practitioner: User) -> None:
    client = Client()
    successes = 0
    statuses = []
    for i in range(60):
        response = post_login(client, f"practitioner{i % 3 or ''}", f"guess-{i}")
        successes += "_auth_user_id" in client.session
        statuses.append(response.status_code)
    assert successes == 0
    # Three names in turn: each is refused as a wrong guess four times (200,
    # the form again), then locked from this address (429) at its fifth.
    assert statuses == [200 if i // 3 < 4 else 429 for i in range(60)]
    # The account stays locked from the address that guessed it.
    assert post_login(Client(), "practitioner", PASSWORD).status_code == 429


def test_control_characters_in_a_username_do_not_forge_audit_lines(client: Client) -> None:
    post_login(client, "eve\r\nINFO admin signed in", "x")
    event = AuditEvent.objects.get(action=AuditAction.LOGIN_FAILED)
    assert "\n" not in event.actor_label
    assert "\r" not in event.actor_label


def test_session_key_changes_at_sign_in(practitioner: User, client: Client) -> None:
    client.get(LOGIN)
    client.session.save()
    before = client.session.session_key
    post_login(client, "practitioner", PASSWORD)
    assert client.session.session_key != before


# --- Sessions ------------------------------------------------------------------------


def test_idle_session_signs_out_after_15_minutes(practitioner: User, client: Client) -> None:
    sign_in(client, practitioner)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        assert client.get(reverse("home")).status_code == 200
    with time_machine.travel(start + timedelta(minutes=14), tick=False):
        assert client.get(reverse("home")).status_code == 200
    with time_machine.travel(start + timedelta(minutes=29, seconds=30), tick=False):
        response = client.get(reverse("home"))
        # Signed out for good: the next page, at the same moment, asks again.
        again = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN)
    assert again.status_code == 302


def test_activity_cannot_keep_a_session_beyond_10_hours(practitioner: User, client: Client) -> None:
    sign_in(client, practitioner)
    start = timezone.now()
    for minutes in range(0, 10 * 60, 10):
        with time_machine.travel(start + timedelta(minutes=minutes), tick=False):
            assert client.get(reverse("home")).status_code == 200
    with time_machine.travel(start + timedelta(hours=10, minutes=5), tick=False):
        assert client.get(reverse("home")).status_code == 302


def test_sign_out_ends_the_session_and_clears_the_browser(
    practitioner: User, client: Client
) -> None:
    sign_in(client, practitioner)
    old_cookie = client.cookies["sessionid"].value
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert "cache" in response["Clear-Site-Data"]
    replay = Client()
    replay.cookies["sessionid"] = old_cookie
    assert replay.get(reverse("home")).status_code == 302


def test_deactivating_a_user_ends_their_sessions(practitioner: User, client: Client) -> None:
    sign_in(client, practitioner)
    assert client.get(reverse("home")).status_code == 200
    User.objects.filter(pk=practitioner.pk).update(is_active=False)
    assert client.get(reverse("home")).status_code == 302


def test_password_change_signs_out_other_sessions(practitioner: User) -> None:
    here, elsewhere = sign_in(Client(), practitioner), sign_in(Client(), practitioner)
    new = "a much longer new passphrase 2026"
    response = here.post(
        reverse("password_change"),
        {"old_password": PASSWORD, "new_password1": new, "new_password2": new},
    )
    assert response.status_code == 302
    assert here.get(reverse("home")).status_code == 200
    assert elsewhere.get(reverse("home")).status_code == 302


def test_password_reset_still_asks_for_the_two_factor_code(
    practitioner: User, client: Client
) -> None:
    client.post(reverse("password_reset"), {"email": practitioner.email})
    deliver_sign_in_mail()
    assert len(mail.outbox) == 1
    link = next(line for line in mail.outbox[0].body.splitlines() if "/password/reset/" in line)
    assert link.startswith(django_settings.SITE_URL)
    path = urlsplit(link.strip()).path
    response = client.get(path)
    assert response.status_code == 302
    new = "a brand new passphrase for 2026"
    response = client.post(response["Location"], {"new_password1": new, "new_password2": new})
    assert response.status_code == 302
    post_login(client, "practitioner", new)
    response = client.get(reverse("home"))
    assert response["Location"].startswith(reverse("two_factor"))


def test_unknown_email_for_reset_gives_the_same_answer(client: Client) -> None:
    response = client.post(reverse("password_reset"), {"email": "nobody@example.org"})
    assert response.status_code == 302
    assert response["Location"] == reverse("password_reset_done")
    assert deliver_sign_in_mail() == 1
    assert mail.outbox == []


def test_open_redirect_after_two_factor_is_refused(practitioner: User, client: Client) -> None:
    post_login(client, "practitioner", PASSWORD)
    device = TOTPDevice.objects.get(user=practitioner)
    response = client.post(
        reverse("two_factor"), {"otp_token": totp_code(device), "next": "https://evil.example/"}
    )
    assert response["Location"] == reverse("home")


def test_staff_page_sends_a_stranger_to_the_login_page(client: Client) -> None:
    response = client.get(reverse("audit_log"))
    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN}?next=/audit/"


@pytest.mark.parametrize(
    ("username", "role"),
    [
        ("reception", Role.RECEPTIONIST),
        ("practitioner", Role.PRACTITIONER),
        ("manager", Role.MANAGER),
    ],
)
def test_each_role_sees_only_its_own_dashboard_panels(
    make_staff: Callable[..., User], client: Client, username: str, role: Role
) -> None:
    user = make_staff(username, role)
    body = sign_in(client, user).get(reverse("home")).content.decode()
    panels = {
        "reception": "panel-reception",
        "practitioner": "panel-practitioner",
        "manager": "panel-manager",
    }
    for name, marker in panels.items():
        assert (marker in body) == (name == username)
    assert ("Audit log" in body) == (role == Role.MANAGER)


def test_a_user_with_two_roles_sees_both_panels(
    make_staff: Callable[..., User], client: Client
) -> None:
    user = make_staff("both", Role.RECEPTIONIST, Role.PRACTITIONER)
    body = sign_in(client, user).get(reverse("home")).content.decode()
    assert "panel-reception" in body
    assert "panel-practitioner" in body
    assert "panel-manager" not in body


def _full_sign_in(client: Client, user: User) -> None:
    """Password, then the code the user's authenticator shows."""
    post_login(client, user.get_username(), PASSWORD)
    device = TOTPDevice.objects.get(user=user)
    response = client.post(reverse("two_factor"), {"otp_token": totp_code(device)})
    assert response.status_code == 302


def test_dashboard_shows_the_sign_in_before_this_one(practitioner: User) -> None:
    first_at = datetime(2026, 11, 8, 9, 0, tzinfo=UTC)
    with time_machine.travel(first_at, tick=False):
        _full_sign_in(Client(), practitioner)
    with time_machine.travel(first_at + timedelta(days=2), tick=False):
        client = Client()
        _full_sign_in(client, practitioner)  # this sign-in is the newest
        response = client.get(reverse("home"))
    assert response.context["previous_login"] == first_at


def test_the_password_alone_is_not_a_sign_in_in_the_trail(practitioner: User) -> None:
    """A staff member who gave the right password but no code has not signed
    in: "login" is written once the second factor is confirmed."""
    with time_machine.travel(datetime(2026, 11, 10, 9, 0, tzinfo=UTC), tick=False):
        client = Client()
        assert post_login(client, "practitioner", PASSWORD).status_code == 302
        assert not AuditEvent.objects.filter(action=AuditAction.LOGIN).exists()
        device = TOTPDevice.objects.get(user=practitioner)
        client.post(reverse("two_factor"), {"otp_token": totp_code(device)}, REMOTE_ADDR="10.0.0.7")
    [event] = AuditEvent.objects.filter(action=AuditAction.LOGIN)
    assert event.actor == practitioner
    assert event.ip == "10.0.0.7"


def test_each_wrong_two_factor_code_is_audited_with_its_address(practitioner: User) -> None:
    with time_machine.travel(datetime(2026, 11, 10, 9, 0, tzinfo=UTC), tick=False):
        client = Client()
        post_login(client, "practitioner", PASSWORD)
        for code in ("000000", "123456", "not-a-code"):
            response = client.post(
                reverse("two_factor"), {"otp_token": code}, REMOTE_ADDR="198.51.100.23"
            )
            assert response.status_code == 200
    failures = AuditEvent.objects.filter(action=AuditAction.LOGIN_FAILED)
    assert failures.count() == 3
    assert {(e.actor, e.ip, e.object_id) for e in failures} == {
        (practitioner, "198.51.100.23", "second_factor")
    }
    assert not AuditEvent.objects.filter(action=AuditAction.LOGIN).exists()


def test_enrolling_the_authenticator_completes_the_sign_in_in_the_trail(
    make_staff: Callable[..., User],
) -> None:
    make_staff("newbie", Role.RECEPTIONIST, two_factor=False)
    with time_machine.travel(datetime(2026, 11, 10, 9, 0, tzinfo=UTC), tick=False):
        client = Client()
        post_login(client, "newbie", PASSWORD)
        client.post(reverse("two_factor_setup"), {"otp_token": "000000"})
        secret = client.get(reverse("two_factor_setup")).context["secret"].replace(" ", "")
        device = TOTPDevice(key=base64.b32decode(secret).hex())
        client.post(reverse("two_factor_setup"), {"otp_token": totp_code(device)})
    actions = list(
        AuditEvent.objects.filter(actor_label="newbie")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == [
        AuditAction.LOGIN_FAILED,
        AuditAction.TWO_FACTOR_ENROLLED,
        AuditAction.BACKUP_CODES_MADE,
        AuditAction.LOGIN,
    ]

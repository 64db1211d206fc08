"""Two-factor sign-in for staff: asked whenever a person has set up an
authenticator, whatever REQUIRE_STAFF_2FA; ten backup codes with it, shown
once, each working once at the two-factor step, made again from the
person's own account page; and what the dashboard says about it."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from clinic.models import AuditAction, AuditEvent, User
from clinic.roles import Role
from clinic.staff import BACKUP_CODE_COUNT, backup_code_use, backup_codes_issue
from tests.conftest import sign_in, totp_code
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

MORNING = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
OFFICE = "10.0.0.7"
SETUP = "/accounts/two-factor/setup/"
CODE = "/accounts/two-factor/"
ACCOUNT = "/accounts/me/"


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    # Ticking: a TOTP code is for the 30 seconds it is shown in.
    with time_machine.travel(MORNING, tick=True):
        yield


def password_sign_in(username: str) -> tuple[Client, object]:
    client = Client()
    response = client.post(
        reverse("login"), {"username": username, "password": PASSWORD}, REMOTE_ADDR=OFFICE
    )
    return client, response


def codes_on(page: str) -> list[str]:
    return [c.replace(" ", "") for c in re.findall(r'data-testid="backup-code">([^<]+)<', page)]


# --- Asked whenever a device is set up ----------------------------------------------------


@pytest.mark.parametrize("required", [True, False])
def test_an_enrolled_person_is_asked_for_a_code_whatever_the_clinic_setting(
    receptionist: User, settings: object, required: bool
) -> None:
    settings.REQUIRE_STAFF_2FA = required  # type: ignore[attr-defined]
    client, response = password_sign_in("reception")
    assert response.status_code == 302
    home = client.get("/")
    assert home.status_code == 302
    assert home["Location"].startswith(CODE)
    # No "signed in" in the trail until the code is confirmed.
    assert not AuditEvent.objects.filter(action=AuditAction.LOGIN).exists()
    device = TOTPDevice.objects.get(user=receptionist)
    done = client.post(CODE, {"otp_token": totp_code(device), "next": "/"})
    assert done["Location"] == "/"
    assert client.get("/").status_code == 200
    assert AuditEvent.objects.filter(action=AuditAction.LOGIN, actor=receptionist).count() == 1


def test_without_the_clinic_setting_someone_not_enrolled_goes_straight_in(
    make_staff: Callable[..., User], settings: object
) -> None:
    settings.REQUIRE_STAFF_2FA = False  # type: ignore[attr-defined]
    make_staff("newcomer", Role.RECEPTIONIST, two_factor=False)
    client, _response = password_sign_in("newcomer")
    page = client.get("/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "not set up: set it up" in text
    assert AuditEvent.objects.filter(action=AuditAction.LOGIN).count() == 1


def test_with_the_clinic_setting_someone_not_enrolled_sets_up_first(
    make_staff: Callable[..., User],
) -> None:
    make_staff("newcomer", Role.RECEPTIONIST, two_factor=False)
    client, _response = password_sign_in("newcomer")
    assert client.get("/")["Location"].startswith(SETUP)


def test_the_dashboard_says_two_factor_is_on_only_when_it_is_asked(
    receptionist: User, settings: object
) -> None:
    settings.REQUIRE_STAFF_2FA = False  # type: ignore[attr-defined]
    backup_codes_issue(user=receptionist)
    page = sign_in(Client(), receptionist).get("/").content.decode()
    assert "on: a code at every sign-in" in page
    assert re.search(r'data-testid="backup-codes-left">\s*10 left', page)


# --- Enrolling: backup codes, shown once ------------------------------------------------------


def test_enrolling_shows_ten_backup_codes_once(make_staff: Callable[..., User]) -> None:
    user = make_staff("newcomer", Role.RECEPTIONIST, two_factor=False)
    client, _response = password_sign_in("newcomer")
    page = client.get(SETUP + "?next=/").content.decode()
    secret = re.search(r'data-testid="totp-secret">([A-Z2-7 ]+)<', page).group(1)  # type: ignore[union-attr]
    device = TOTPDevice(user=user, key=_hex_of(secret))
    response = client.post(SETUP, {"otp_token": totp_code(device), "next": "/"})
    assert response.status_code == 200
    shown = response.content.decode()
    codes = codes_on(shown)
    assert len(codes) == BACKUP_CODE_COUNT == len(set(codes))
    assert all(re.fullmatch(r"[a-z2-7]{8}", code) for code in codes)
    assert "They are shown only now" in shown
    stored = set(StaticToken.objects.filter(device__user=user).values_list("token", flat=True))
    assert stored == set(codes)
    # Not shown again anywhere: the account page counts them only.
    account = client.get(ACCOUNT).content.decode()
    assert "10 backup codes left." in account
    assert not any(code[:4] in account for code in codes)
    actions = set(AuditEvent.objects.filter(actor=user).values_list("action", flat=True))
    assert {AuditAction.TWO_FACTOR_ENROLLED, AuditAction.BACKUP_CODES_MADE} <= actions


def _hex_of(secret: str) -> str:
    import base64

    return base64.b32decode(secret.replace(" ", "")).hex()


# --- Using a backup code --------------------------------------------------------------------


def test_a_backup_code_signs_in_once(receptionist: User) -> None:
    codes = backup_codes_issue(user=receptionist)
    client, _response = password_sign_in("reception")
    page = client.get(CODE).content.decode()
    assert "Type one of your backup codes instead" in page
    typed = f"{codes[3][:4].upper()} {codes[3][4:].upper()}"
    response = client.post(CODE, {"otp_token": typed, "next": "/"})
    assert response["Location"] == "/"
    home = client.get("/").content.decode()
    assert "9 backup codes are left" in home
    event = AuditEvent.objects.get(action=AuditAction.LOGIN, actor=receptionist)
    assert event.changed_fields == ["backup_code"]

    again, _response = password_sign_in("reception")
    refused = again.post(CODE, {"otp_token": codes[3], "next": "/"})
    assert refused.status_code == 200
    assert "not one of yours, or it was used already" in refused.content.decode()
    assert again.get("/")["Location"].startswith(CODE)
    assert StaticToken.objects.filter(device__user=receptionist).count() == 9


def test_a_backup_code_is_ones_own(receptionist: User, practitioner: User) -> None:
    theirs = backup_codes_issue(user=practitioner)
    backup_codes_issue(user=receptionist)
    client, _response = password_sign_in("reception")
    refused = client.post(CODE, {"otp_token": theirs[0], "next": "/"})
    assert "not one of yours" in refused.content.decode()
    assert backup_code_use(user=practitioner, code=theirs[0]) is not None


def test_wrong_codes_slow_the_next_tries(receptionist: User) -> None:
    codes = backup_codes_issue(user=receptionist)
    client, _response = password_sign_in("reception")
    # Held still: the wait after one wrong code is a second.
    with time_machine.travel(MORNING, tick=False) as clock:
        client.post(CODE, {"otp_token": "aaaaaaaa", "next": "/"})
        slowed = client.post(CODE, {"otp_token": codes[0], "next": "/"})
        assert "Too many wrong codes" in slowed.content.decode()
        assert StaticToken.objects.filter(device__user=receptionist).count() == BACKUP_CODE_COUNT
        clock.shift(2)
        done = client.post(CODE, {"otp_token": codes[0], "next": "/"})
    assert done["Location"] == "/"


@pytest.mark.parametrize(
    "typed", ["", "12345", "1234567", "abcd", "abcdefgh1", "<script>", "é" * 8]
)
def test_what_is_neither_a_code_nor_a_backup_code_is_asked_again(
    receptionist: User, typed: str
) -> None:
    client, _response = password_sign_in("reception")
    response = client.post(CODE, {"otp_token": typed, "next": "/"})
    assert response.status_code == 200
    assert "Enter the 6 digits shown in your authenticator app" in response.content.decode()


# --- Making new ones, a new phone --------------------------------------------------------------


def test_new_backup_codes_from_the_account_page_replace_the_old(receptionist: User) -> None:
    old = backup_codes_issue(user=receptionist)
    client = sign_in(Client(), receptionist)
    page = client.get(ACCOUNT).content.decode()
    assert "10 backup codes left." in page
    response = client.post(ACCOUNT, {"action": "backup_codes"})
    assert response.status_code == 200
    new = codes_on(response.content.decode())
    assert len(new) == BACKUP_CODE_COUNT
    assert "These replace your earlier backup codes" in response.content.decode()
    assert backup_code_use(user=receptionist, code=new[0]) is not None
    assert backup_code_use(user=receptionist, code=old[0]) is None
    # The session confirmed with the old device stays confirmed.
    assert client.get("/").status_code == 200
    assert (
        AuditEvent.objects.filter(action=AuditAction.BACKUP_CODES_MADE, actor=receptionist).count()
        == 2
    )


def test_backup_codes_need_an_authenticator_first(
    make_staff: Callable[..., User], settings: object
) -> None:
    settings.REQUIRE_STAFF_2FA = False  # type: ignore[attr-defined]
    user = make_staff("newcomer", Role.RECEPTIONIST, two_factor=False)
    client = sign_in(Client(), user)
    response = client.post(ACCOUNT, {"action": "backup_codes"})
    assert response.status_code == 409
    assert "Set up two-factor authentication first" in response.content.decode()
    assert not StaticDevice.objects.filter(user=user).exists()
    for data in ({}, {"action": "everything"}):
        assert client.post(ACCOUNT, data).status_code == 400


def _secret_on(page: str) -> str:
    return re.search(r'data-testid="totp-secret">([A-Z2-7 ]+)<', page).group(1)  # type: ignore[union-attr]


def test_a_new_phone_after_a_lost_one_needs_no_manager(receptionist: User) -> None:
    codes = backup_codes_issue(user=receptionist)
    client, _response = password_sign_in("reception")
    client.post(CODE, {"otp_token": codes[0], "next": "/"})
    response = client.post(ACCOUNT, {"action": "replace_authenticator"})
    assert response["Location"].startswith(SETUP)
    page = client.get(response["Location"]).content.decode()
    assert "keeps working until a code from the new phone confirms it" in page
    device = TOTPDevice(user=receptionist, key=_hex_of(_secret_on(page)))
    done = client.post(SETUP, {"otp_token": totp_code(device), "next": ACCOUNT})
    fresh = codes_on(done.content.decode())
    assert len(fresh) == BACKUP_CODE_COUNT
    assert "These replace your earlier backup codes" in done.content.decode()
    assert TOTPDevice.objects.filter(user=receptionist, confirmed=True).count() == 1
    assert backup_code_use(user=receptionist, code=codes[1]) is None
    reset = AuditEvent.objects.get(action=AuditAction.TWO_FACTOR_RESET)
    assert (reset.actor, reset.changed_fields) == (receptionist, ["authenticator", "own"])


def test_the_old_phone_works_until_the_new_one_is_confirmed(receptionist: User) -> None:
    old = TOTPDevice.objects.get(user=receptionist)
    client = sign_in(Client(), receptionist)
    response = client.post(ACCOUNT, {"action": "replace_authenticator"})
    assert response["Location"].startswith(SETUP)
    page = client.get(response["Location"]).content.decode()
    # Pressed, not yet confirmed: the old app still signs in, nothing removed.
    assert TOTPDevice.objects.filter(pk=old.pk).exists()
    assert not AuditEvent.objects.filter(action=AuditAction.TWO_FACTOR_RESET).exists()
    elsewhere, _response = password_sign_in("reception")
    with time_machine.travel(MORNING.replace(minute=31), tick=False):
        assert elsewhere.post(CODE, {"otp_token": totp_code(old), "next": "/"})["Location"] == "/"
        new = TOTPDevice(user=receptionist, key=_hex_of(_secret_on(page)))
        client.post(SETUP, {"otp_token": totp_code(new), "next": ACCOUNT})
    assert not TOTPDevice.objects.filter(pk=old.pk).exists()
    assert TOTPDevice.objects.get(user=receptionist).key == new.key


def test_someone_signed_in_with_both_factors_is_sent_to_the_account_page_to_replace(
    receptionist: User,
) -> None:
    client = sign_in(Client(), receptionist)
    assert client.get(SETUP)["Location"] == ACCOUNT
    assert TOTPDevice.objects.filter(user=receptionist).count() == 1


def _password_alone_tries_to_enrol(user: User) -> tuple[int, str]:
    """Sign in as `user` with the password only, then open the setup page
    and post a code of a phone of one's own, as someone who knows only the
    password would: the setup page's status and where it leads."""
    attacker, _response = password_sign_in(user.username)
    page = attacker.get(SETUP)
    own_phone = TOTPDevice(user=user, key="3132333435363738393031323334353637383930")
    attacker.post(SETUP, {"otp_token": totp_code(own_phone), "next": "/"})
    home = attacker.get("/")
    assert home.status_code == 302
    assert home["Location"].startswith(CODE)
    return page.status_code, page.get("Location", "")


def test_a_password_alone_cannot_set_up_a_phone_over_backup_codes(receptionist: User) -> None:
    """The authenticator gone (a manager or an older version removed it)
    while backup codes are left: the backup code is asked first, and the
    owner's codes stay theirs."""
    codes = backup_codes_issue(user=receptionist)
    TOTPDevice.objects.filter(user=receptionist).delete()
    status, location = _password_alone_tries_to_enrol(receptionist)
    assert status == 302
    assert location.startswith(CODE)
    assert not TOTPDevice.objects.filter(user=receptionist).exists()
    stored = set(
        StaticToken.objects.filter(device__user=receptionist).values_list("token", flat=True)
    )
    assert stored == set(codes)
    assert not AuditEvent.objects.filter(action=AuditAction.TWO_FACTOR_ENROLLED).exists()


def test_a_password_alone_cannot_replace_a_phone_being_replaced(receptionist: User) -> None:
    """The owner pressed "Set up a new phone" and has not confirmed it yet:
    someone with the password alone is still asked for a code."""
    old = TOTPDevice.objects.get(user=receptionist)
    owner = sign_in(Client(), receptionist)
    owner.post(ACCOUNT, {"action": "replace_authenticator"})
    status, location = _password_alone_tries_to_enrol(receptionist)
    assert (status, location.split("?")[0]) == (302, CODE)
    assert list(TOTPDevice.objects.filter(user=receptionist)) == [old]


def test_backup_codes_lead_to_the_setup_page_when_the_authenticator_is_gone(
    receptionist: User,
) -> None:
    codes = backup_codes_issue(user=receptionist)
    TOTPDevice.objects.filter(user=receptionist).delete()
    client, _response = password_sign_in("reception")
    asked = client.get(SETUP)
    assert asked["Location"].startswith(CODE)
    client.post(CODE, {"otp_token": codes[0], "next": SETUP})
    page = client.get(SETUP)
    assert page.status_code == 200
    device = TOTPDevice(user=receptionist, key=_hex_of(_secret_on(page.content.decode())))
    done = client.post(SETUP, {"otp_token": totp_code(device), "next": "/"})
    assert len(codes_on(done.content.decode())) == BACKUP_CODE_COUNT
    assert client.get("/").status_code == 200


def test_a_password_alone_makes_no_backup_codes_and_starts_no_new_phone(
    receptionist: User,
) -> None:
    codes = backup_codes_issue(user=receptionist)
    attacker, _response = password_sign_in("reception")
    for action in ("backup_codes", "replace_authenticator"):
        response = attacker.post(ACCOUNT, {"action": action})
        assert response.status_code == 302
        assert response["Location"].startswith(CODE)
    assert attacker.get(SETUP)["Location"].startswith(CODE)
    stored = set(
        StaticToken.objects.filter(device__user=receptionist).values_list("token", flat=True)
    )
    assert stored == set(codes)
    assert TOTPDevice.objects.filter(user=receptionist).count() == 1

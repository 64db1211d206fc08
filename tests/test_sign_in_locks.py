"""Sign-in locks people can act on: a warning before the last try, when the
lock ends, a manager lifting it, a password reset lifting it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
import time_machine
from axes.models import AccessAttempt
from django.core import mail
from django.test import Client
from django.urls import reverse

from clinic.models import AuditAction, AuditEvent, User
from clinic.roles import Role
from clinic.signin import lock_lifts_at, sign_in_locks
from tests.conftest import deliver_sign_in_mail, sign_in
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
LOCKS = "/accounts/locks/"
OFFICE = "10.0.0.7"
# 09:00 UTC on a summer day: 10:00 in the clinic (Europe/London, BST).
MORNING = datetime(2026, 7, 10, 9, 0, tzinfo=UTC)
# Queries for the dashboard and the locks page, however many locks there are.
QUERY_BUDGET = 12


def post_login(client: Client, username: str, password: str, address: str = OFFICE):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


def lock_out(username: str, address: str = OFFICE) -> None:
    client = Client()
    for _ in range(5):
        response = post_login(client, username, "wrong password", address)
    assert response.status_code == 429


# --- Before the lock ----------------------------------------------------------------


def test_the_wrong_password_before_the_last_try_warns_that_one_more_locks(
    practitioner: User,
) -> None:
    client = Client()
    with time_machine.travel(MORNING, tick=False):
        for _ in range(3):
            page = post_login(client, "practitioner", "wrong password").content.decode()
            assert "One more wrong password" not in page
        response = post_login(client, "practitioner", "wrong password")
    assert response.status_code == 200
    page = response.content.decode()
    assert "One more wrong password locks this account for 15 minutes." in page
    assert "Please enter a correct username and password" in page
    # A colleague at the same desk has all their tries.
    assert "One more" not in post_login(Client(), "reception", "typo").content.decode()


# --- The lockout page -----------------------------------------------------------------


def test_the_lockout_page_says_in_clinic_time_when_signing_in_works_again(
    practitioner: User,
) -> None:
    client = Client()
    with time_machine.travel(MORNING, tick=False):
        for _ in range(5):
            response = post_login(client, "practitioner", "wrong password")
    assert response.status_code == 429
    page = response.content.decode()
    # 09:00 UTC + 15 minutes, in the clinic's summer time.
    assert "You can sign in again from 10:15." in page
    assert f'href="{LOGIN}"' in page
    assert "Back to sign in" in page
    assert "a new password lifts the lock" in page
    # Another try while locked counts, and moves the end with it.
    with time_machine.travel(MORNING + timedelta(minutes=5), tick=False):
        response = post_login(client, "practitioner", PASSWORD)
    assert response.status_code == 429
    assert "You can sign in again from 10:20." in response.content.decode()


def test_a_paused_connection_is_told_when_it_may_sign_in_again(
    practitioner: User, settings
) -> None:
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 6
    client = Client()
    with time_machine.travel(MORNING, tick=False):
        for i in range(6):
            response = post_login(client, f"guess{i}", "wrong password", "203.0.113.9")
    assert response.status_code == 429
    page = response.content.decode()
    assert "signing in from it is paused" in page
    assert "You can sign in again from 10:15." in page


def test_a_lock_ends_when_the_failures_still_counted_fall_below_the_limit() -> None:
    start = MORNING
    minutes = timedelta(minutes=15)
    # Three failures at 09:00 and two at 09:05: five, a lock until the 09:00
    # row stops counting at 09:15 (two left).
    rows = [(start + timedelta(minutes=5), 2), (start, 3)]
    assert lock_lifts_at(rows, limit=5, cool_off=minutes) == start + minutes
    # Four at 09:00 and two at 09:05, limit 2: it holds until 09:20.
    rows = [(start, 4), (start + timedelta(minutes=5), 2)]
    assert lock_lifts_at(rows, limit=2, cool_off=minutes) == start + timedelta(minutes=20)
    assert lock_lifts_at([(start, 4)], limit=5, cool_off=minutes) is None


# --- A manager lifts a lock -------------------------------------------------------------


def test_a_manager_unlocks_an_account_and_the_trail_says_so(
    practitioner: User, manager: User, django_assert_max_num_queries
) -> None:
    with time_machine.travel(MORNING, tick=False):
        lock_out("practitioner")
        lock_out("practitioner", "198.51.100.4")
        desk = sign_in(Client(), manager)
        with django_assert_max_num_queries(QUERY_BUDGET):
            page = desk.get(LOCKS)
        assert page.status_code == 200
        body = page.content.decode()
        assert "<code>practitioner</code>" in body
        assert "5 wrong passwords from 10.0.0.7; unlocks at 10:15" in body
        assert "5 wrong passwords from 198.51.100.4; unlocks at 10:15" in body
        response = desk.post(LOCKS, {"username": "practitioner"}, REMOTE_ADDR="10.0.0.2")
        assert response.status_code == 302
        followed = desk.get(response["Location"]).content.decode()
        assert "practitioner can sign in again." in followed
        assert "No account is locked." in followed
        # Within the 15 minutes, the right password works again.
        assert post_login(Client(), "practitioner", PASSWORD).status_code == 302
    [event] = AuditEvent.objects.filter(action=AuditAction.SIGN_IN_UNLOCKED)
    assert (event.actor, event.object_type, event.object_id, event.ip) == (
        manager,
        "auth.account",
        "practitioner",
        "10.0.0.2",
    )
    assert event.object_label == "account practitioner"


def test_the_dashboard_tells_a_manager_of_locked_accounts_and_leads_to_them(
    practitioner: User, manager: User, django_assert_max_num_queries
) -> None:
    with time_machine.travel(MORNING, tick=False):
        desk = sign_in(Client(), manager)
        assert "locked now" not in desk.get(reverse("home")).content.decode()
        lock_out("practitioner")
        lock_out("someone-else", "198.51.100.4")
        with django_assert_max_num_queries(QUERY_BUDGET):
            body = desk.get(reverse("home")).content.decode()
    assert "2 accounts are locked now." in body
    assert f'href="{LOCKS}"' in body


def test_a_lock_already_ended_is_said_and_nothing_is_recorded(
    practitioner: User, manager: User
) -> None:
    with time_machine.travel(MORNING, tick=False):
        desk = sign_in(Client(), manager)
        response = desk.post(LOCKS, {"username": "practitioner"}, follow=True)
    assert "That lock had already ended" in response.content.decode()
    assert not AuditEvent.objects.filter(action=AuditAction.SIGN_IN_UNLOCKED).exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "Choose one lock to lift"),
        ({"username": "practitioner", "network": "10.0.0.7"}, "Choose one lock to lift"),
        ({"network": "not an address"}, "That is not an address or a network."),
    ],
)
def test_a_lift_that_names_no_lock_is_a_clear_400_and_lifts_nothing(
    practitioner: User, manager: User, data: dict[str, str], message: str
) -> None:
    with time_machine.travel(MORNING, tick=False):
        lock_out("practitioner")
        response = sign_in(Client(), manager).post(LOCKS, data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert AccessAttempt.objects.filter(username="practitioner").exists()


@pytest.mark.parametrize("persona", ["receptionist", "practitioner"], indirect=True)
def test_only_managers_lift_locks(persona: User, make_staff) -> None:
    make_staff("colleague", Role.RECEPTIONIST)
    with time_machine.travel(MORNING, tick=False):
        lock_out("colleague")
        client = sign_in(Client(), persona)
        assert client.get(LOCKS).status_code == 403
        assert client.post(LOCKS, {"username": "colleague"}).status_code == 403
        assert Client().post(LOCKS, {"username": "colleague"}).status_code == 302
        assert post_login(Client(), "colleague", PASSWORD).status_code == 429
    assert not AuditEvent.objects.filter(action=AuditAction.SIGN_IN_UNLOCKED).exists()


def test_a_manager_lifts_the_pause_on_a_connection(
    practitioner: User, manager: User, settings
) -> None:
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 6
    home = "203.0.113.9"
    with time_machine.travel(MORNING, tick=False):
        guesses = Client()
        for i in range(6):
            post_login(guesses, f"guess{i}", "wrong password", home)
        # A colleague at home is paused too (and the try counts).
        assert post_login(Client(), "practitioner", PASSWORD, home).status_code == 429
        [pause] = sign_in_locks().addresses
        assert (pause.network, pause.failures, pause.accounts) == (home, 7, 7)
        desk = sign_in(Client(), manager)
        assert "7 wrong passwords for 7 accounts" in desk.get(LOCKS).content.decode()
        assert desk.post(LOCKS, {"network": home}).status_code == 302
        assert post_login(Client(), "practitioner", PASSWORD, home).status_code == 302
    [event] = AuditEvent.objects.filter(action=AuditAction.SIGN_IN_UNLOCKED)
    assert (event.object_type, event.object_id) == ("auth.address", home)


# --- A password reset lifts the lock ------------------------------------------------------


def test_a_completed_password_reset_lifts_the_accounts_lock(practitioner: User) -> None:
    with time_machine.travel(MORNING, tick=False):
        lock_out("practitioner")
        client = Client()
        client.post(reverse("password_reset"), {"email": practitioner.email})
        deliver_sign_in_mail()
        link = next(line for line in mail.outbox[0].body.splitlines() if "/password/reset/" in line)
        form = client.get(urlsplit(link.strip()).path)
        new = "a brand new passphrase for 2026"
        done = client.post(form["Location"], {"new_password1": new, "new_password2": new})
        assert done.status_code == 302
        # Still within the 15 minutes, from the address that was locked.
        assert post_login(Client(), "practitioner", new).status_code == 302
    [event] = AuditEvent.objects.filter(action=AuditAction.SIGN_IN_UNLOCKED)
    assert (event.actor, event.object_id) == (practitioner, "practitioner")


def test_a_password_reset_link_not_completed_lifts_nothing(practitioner: User) -> None:
    with time_machine.travel(MORNING, tick=False):
        lock_out("practitioner")
        client = Client()
        client.post(reverse("password_reset"), {"email": practitioner.email})
        deliver_sign_in_mail()
        link = next(line for line in mail.outbox[0].body.splitlines() if "/password/reset/" in line)
        form = client.get(urlsplit(link.strip()).path)
        # Passwords that do not match: no new password, the lock holds.
        client.post(
            form["Location"], {"new_password1": "one passphrase 2026", "new_password2": "x"}
        )
        assert post_login(Client(), "practitioner", PASSWORD).status_code == 429

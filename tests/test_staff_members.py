"""The manager's staff page and each person's page: roles given and taken,
deactivating (sessions end at once, the name stays), unlocking, resetting a
lost authenticator, the last sign-in; every change audited, the last
manager kept, and forged posts answered with a 4xx, never a 500."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from axes.models import AccessAttempt
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from clinic.audit import audit_log
from clinic.models import AuditAction, AuditEvent, User
from clinic.roles import Role
from clinic.staff import StaffRefusedError, backup_codes_issue, staff_role_take
from tests.conftest import frozen_at, sign_in
from tests.factories import PASSWORD, PatientFactory, UserFactory

pytestmark = pytest.mark.django_db

MORNING = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
frozen = frozen_at(MORNING)
STAFF = "/staff/"
OFFICE = "10.0.0.7"


def page_of(user: User) -> str:
    return reverse("staff_member", kwargs={"member": user.uuid})


def act(client: Client, user: User, action: str, role: str = "") -> object:
    data = {"action": action}
    if role:
        data["role"] = role
    return client.post(page_of(user), data)


def password_sign_in(username: str, password: str = PASSWORD) -> Client:
    client = Client()
    client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=OFFICE)
    return client


@pytest.fixture
def boss(manager: User) -> Client:
    return sign_in(Client(), manager)


# --- The list ---------------------------------------------------------------------------


def test_the_staff_page_lists_everyone_but_patients_with_roles_two_factor_and_last_sign_in(
    boss: Client,
    manager: User,
    receptionist: User,
    make_staff: Callable[..., User],
) -> None:
    make_staff("newcomer", Role.PRACTITIONER, two_factor=False, first_name="Nia")
    with time_machine.travel(MORNING - timedelta(days=1), tick=False):
        audit_log(actor=receptionist, action=AuditAction.LOGIN, obj=receptionist)
    backup_codes_issue(user=receptionist)
    portal_user = UserFactory(username="patient-portal-1")
    from treatments.models import PortalAccount

    PortalAccount.objects.create(patient=PatientFactory(), user=portal_user)

    response = boss.get(STAFF)
    assert response.status_code == 200
    page = response.content.decode()
    assert "patient-portal-1" not in page
    rows = {row.user.username: row for row in response.context["rows"]}
    assert set(rows) == {"manager", "reception", "newcomer"}
    assert rows["reception"].roles == [Role.RECEPTIONIST]
    assert rows["reception"].two_factor
    assert rows["reception"].backup_codes_left == 10
    assert rows["reception"].last_sign_in == MORNING - timedelta(days=1)
    assert not rows["newcomer"].two_factor
    assert rows["newcomer"].last_sign_in is None
    assert "not set up" in page
    assert "never" in page
    assert "10 backup codes left" in page


def test_the_staff_page_takes_the_same_queries_for_three_people_or_thirty(
    boss: Client, make_staff: Callable[..., User]
) -> None:
    boss.get(STAFF)
    with CaptureQueriesContext(connection) as few:
        boss.get(STAFF)
    for index in range(27):
        make_staff(f"extra{index}", Role.RECEPTIONIST)
    with CaptureQueriesContext(connection) as many:
        assert boss.get(STAFF).status_code == 200
    assert len(many) == len(few)


# --- Roles --------------------------------------------------------------------------------


def test_a_manager_gives_and_takes_roles_and_each_change_is_audited(
    boss: Client, manager: User, receptionist: User
) -> None:
    response = act(boss, receptionist, "give_role", "practitioner")
    assert response.status_code == 302
    receptionist = User.objects.get(pk=receptionist.pk)
    assert receptionist.roles == {Role.RECEPTIONIST, Role.PRACTITIONER}
    # Given again: nothing to do, said so.
    act(boss, receptionist, "give_role", "practitioner")
    page = boss.get(page_of(receptionist)).content.decode()
    assert "already holds the role Practitioner" in page
    assert act(boss, receptionist, "take_role", "receptionist").status_code == 302
    receptionist = User.objects.get(pk=receptionist.pk)
    assert receptionist.roles == {Role.PRACTITIONER}
    events = AuditEvent.objects.filter(
        action__in=[AuditAction.ROLE_GIVEN, AuditAction.ROLE_TAKEN]
    ).order_by("id")
    assert [(e.action, e.actor, e.object_type, e.object_id, e.changed_fields) for e in events] == [
        (AuditAction.ROLE_GIVEN, manager, "auth.account", "reception", ["role=practitioner"]),
        (AuditAction.ROLE_TAKEN, manager, "auth.account", "reception", ["role=receptionist"]),
    ]
    # The person's page lists the changes in words.
    page = boss.get(page_of(receptionist)).content.decode()
    assert "gave a role to account reception: Practitioner" in page
    assert "took a role from account reception: Receptionist" in page


def test_a_role_taken_counts_from_the_persons_next_page(boss: Client, receptionist: User) -> None:
    desk = sign_in(Client(), receptionist)
    assert desk.get(reverse("treatments:calendar")).status_code == 200
    act(boss, receptionist, "take_role", "receptionist")
    assert desk.get(reverse("treatments:calendar")).status_code == 403


def test_a_manager_cannot_take_the_manager_role_of_the_last_manager_nor_their_own(
    boss: Client, manager: User, make_staff: Callable[..., User]
) -> None:
    response = act(boss, manager, "take_role", "manager")
    assert response.status_code == 409
    assert "is the clinic&#x27;s last active manager" in response.content.decode()
    second = make_staff("second", Role.MANAGER)
    own = act(boss, manager, "take_role", "manager")
    assert own.status_code == 403
    assert "You cannot take away your own manager role" in own.content.decode()
    assert act(boss, second, "take_role", "manager").status_code == 302
    assert Role.MANAGER not in User.objects.get(pk=second.pk).roles
    assert Role.MANAGER in User.objects.get(pk=manager.pk).roles


def test_a_deactivated_manager_does_not_count_as_the_clinic_still_having_one(
    manager: User, make_staff: Callable[..., User]
) -> None:
    second = make_staff("second", Role.MANAGER, is_active=False)
    with pytest.raises(StaffRefusedError) as refused:
        staff_role_take(actor=manager, member=manager, role=Role.MANAGER)
    assert refused.value.code == "last_manager"
    # Taking the role of a deactivated manager leaves the active one.
    assert staff_role_take(actor=manager, member=second, role=Role.MANAGER)


# --- Deactivating -----------------------------------------------------------------------------


def test_deactivating_ends_the_persons_sessions_at_once_and_keeps_their_name(
    boss: Client, manager: User, practitioner: User
) -> None:
    patient = PatientFactory()
    audit_log(actor=practitioner, action=AuditAction.VIEW, obj=patient, patient_ref=patient.uuid)
    there = sign_in(Client(), practitioner)
    elsewhere = sign_in(Client(), practitioner)
    assert there.get("/").status_code == 200
    colleague = sign_in(Client(), manager)
    colleague.get("/")
    sessions_before = Session.objects.count()

    response = act(boss, practitioner, "deactivate")
    assert response.status_code == 302
    practitioner = User.objects.get(pk=practitioner.pk)
    assert not practitioner.is_active
    # Both of their sessions are gone from the store, nobody else's.
    assert Session.objects.count() == sessions_before - 2
    for client in (there, elsewhere):
        answer = client.get("/")
        assert answer.status_code == 302
        assert answer["Location"].startswith(reverse("login"))
    assert colleague.get("/").status_code == 200
    # They cannot sign in again.
    refused = Client().post(
        reverse("login"), {"username": "practitioner", "password": PASSWORD}, REMOTE_ADDR=OFFICE
    )
    assert refused.status_code == 200
    # Their name stays: the account, the trail.
    assert practitioner.get_full_name()
    assert AuditEvent.objects.filter(actor=practitioner, action=AuditAction.VIEW).exists()
    page = boss.get(STAFF).content.decode()
    assert practitioner.get_full_name() in page
    assert "deactivated" in page
    event = AuditEvent.objects.get(action=AuditAction.DEACTIVATED)
    assert (event.actor, event.object_id) == (manager, "practitioner")
    assert "sessions_ended=2" in event.changed_fields


def test_a_deactivated_account_is_reactivated_with_its_roles(
    boss: Client, practitioner: User
) -> None:
    act(boss, practitioner, "deactivate")
    assert act(boss, practitioner, "deactivate").status_code == 302  # already: nothing to do
    assert AuditEvent.objects.filter(action=AuditAction.DEACTIVATED).count() == 1
    assert act(boss, practitioner, "reactivate").status_code == 302
    practitioner = User.objects.get(pk=practitioner.pk)
    assert practitioner.is_active
    assert practitioner.roles == {Role.PRACTITIONER}
    assert AuditEvent.objects.filter(action=AuditAction.REACTIVATED).count() == 1


def test_a_manager_cannot_deactivate_themselves_nor_the_last_manager(
    boss: Client, manager: User
) -> None:
    response = act(boss, manager, "deactivate")
    assert response.status_code == 403
    assert "You cannot deactivate your own account" in response.content.decode()
    assert User.objects.get(pk=manager.pk).is_active
    assert not AuditEvent.objects.filter(action=AuditAction.DEACTIVATED).exists()


def test_a_manager_deactivated_meanwhile_can_change_nothing(
    manager: User, make_staff: Callable[..., User]
) -> None:
    other = make_staff("other", Role.MANAGER)
    desk = make_staff("desk", Role.RECEPTIONIST)
    boss = sign_in(Client(), manager)
    User.objects.filter(pk=manager.pk).update(is_active=False)
    # Their session is refused on its next request (Django checks the account).
    assert boss.post(page_of(desk), {"action": "deactivate"}).status_code == 302
    assert User.objects.get(pk=desk.pk).is_active
    assert User.objects.get(pk=other.pk).is_active


# --- Unlocking ---------------------------------------------------------------------------


def test_a_manager_unlocks_a_locked_account_from_the_persons_page(
    boss: Client, manager: User, receptionist: User
) -> None:
    for _ in range(5):
        locked = Client().post(
            reverse("login"),
            {"username": "Reception", "password": "wrong password"},
            REMOTE_ADDR=OFFICE,
        )
    assert locked.status_code == 429
    assert "Ask your clinic manager to unlock it" in locked.content.decode()
    rows = {row.user.username: row for row in boss.get(STAFF).context["rows"]}
    assert rows["reception"].locked_until == MORNING + timedelta(minutes=15)
    page = boss.get(page_of(receptionist)).content.decode()
    assert "Unlock now" in page

    assert act(boss, receptionist, "unlock").status_code == 302
    assert not AccessAttempt.objects.exists()
    response = Client().post(
        reverse("login"), {"username": "reception", "password": PASSWORD}, REMOTE_ADDR=OFFICE
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(action=AuditAction.SIGN_IN_UNLOCKED)
    assert (event.actor, event.object_type) == (manager, "auth.account")
    # Nothing left to unlock: said so, nothing written.
    act(boss, receptionist, "unlock")
    assert "was not locked" in boss.get(page_of(receptionist)).content.decode()
    assert AuditEvent.objects.filter(action=AuditAction.SIGN_IN_UNLOCKED).count() == 1


# --- A lost authenticator ---------------------------------------------------------------------


def test_resetting_a_lost_authenticator_removes_it_and_the_codes_and_signs_them_out(
    boss: Client, manager: User, receptionist: User
) -> None:
    backup_codes_issue(user=receptionist)
    desk = sign_in(Client(), receptionist)
    assert desk.get("/").status_code == 200

    assert act(boss, receptionist, "reset_authenticator").status_code == 302
    assert not TOTPDevice.objects.filter(user=receptionist).exists()
    assert not StaticDevice.objects.filter(user=receptionist).exists()
    assert desk.get("/")["Location"].startswith(reverse("login"))
    event = AuditEvent.objects.get(action=AuditAction.TWO_FACTOR_RESET)
    assert (event.actor, event.object_id) == (manager, "reception")
    assert "sessions_ended=1" in event.changed_fields
    # At the next sign-in, they set up a new one: the old codes open nothing.
    client = password_sign_in("reception")
    setup = client.get("/")
    assert setup["Location"].startswith(reverse("two_factor_setup"))
    assert client.get(reverse("two_factor_setup")).status_code == 200
    assert client.get(reverse("two_factor"))["Location"] == reverse("two_factor_setup")
    # Nothing left to reset: said so, nothing written.
    act(boss, receptionist, "reset_authenticator")
    assert AuditEvent.objects.filter(action=AuditAction.TWO_FACTOR_RESET).count() == 1


@pytest.mark.parametrize("required", [True, False])
def test_the_reset_wording_promises_only_the_sign_in_the_clinic_setting_gives(
    boss: Client, receptionist: User, settings: object, required: bool
) -> None:
    # The demo runs with two-factor optional: a page saying "they are asked
    # to set one up when they sign in" would be untrue there.
    settings.REQUIRE_STAFF_2FA = required  # type: ignore[attr-defined]
    backup_codes_issue(user=receptionist)
    page = boss.get(page_of(receptionist)).content.decode()
    assert ("at their next sign-in they set up the app again" in page) is required
    assert ("until they set up the app again from “Your account”" in page) is not required

    after = boss.post(page_of(receptionist), {"action": "reset_authenticator"}, follow=True)
    text = after.content.decode()
    assert ("They set up a new authenticator at their next sign-in." in text) is required
    assert (
        "They sign in with their password alone until they set up a new authenticator" in text
    ) is (not required)
    assert ("they are asked to set one up when they sign in" in text) is required
    assert (
        "they can set one up from “Your account”, and once set up it is asked for at every sign-in"
        in text
    ) is not required

    # What the page said is what happens at their next sign-in.
    client = password_sign_in("reception")
    home = client.get("/")
    if required:
        assert home["Location"].startswith(reverse("two_factor_setup"))
    else:
        assert home.status_code == 200


# --- Forged and wrong posts -------------------------------------------------------------------


def test_a_receptionist_or_practitioner_is_refused_every_staff_endpoint(
    make_staff: Callable[..., User], manager: User
) -> None:
    desk = sign_in(Client(), make_staff("desk", Role.RECEPTIONIST, Role.PRACTITIONER))
    before = AuditEvent.objects.filter(action=AuditAction.DENIED).count()
    for url, data in (
        (STAFF, {}),
        (page_of(manager), {"action": "deactivate"}),
        (page_of(manager), {"action": "take_role", "role": "manager"}),
        (STAFF, {"invitation": "00000000-0000-4000-8000-000000000000", "action": "cancel"}),
    ):
        assert desk.get(url).status_code == 403
        assert desk.post(url, data).status_code == 403
    assert User.objects.get(pk=manager.pk).is_active
    assert Role.MANAGER in User.objects.get(pk=manager.pk).roles
    assert AuditEvent.objects.filter(action=AuditAction.DENIED).count() == before + 8


def test_unknown_or_patient_ids_are_404_and_bad_values_400(
    boss: Client, receptionist: User
) -> None:
    from treatments.models import PortalAccount

    account = PortalAccount.objects.create(patient=PatientFactory(), user=UserFactory())
    for url in (
        "/staff/00000000-0000-4000-8000-000000000000/",
        page_of(account.user),
        "/staff/not-a-uuid/",
    ):
        assert boss.get(url).status_code == 404
        assert boss.post(url, {"action": "deactivate"}).status_code == 404
    for data, words in (
        ({}, "Choose what to do."),
        ({"action": "delete"}, "That is not something the staff page does."),
        ({"action": "give_role"}, "Choose the role to give or take away."),
        ({"action": "give_role", "role": "owner"}, "That is not one of the clinic&#x27;s roles."),
    ):
        response = boss.post(page_of(receptionist), data)
        assert response.status_code == 400, data
        assert words in response.content.decode()
    for data in (
        {"invitation": "00000000-0000-4000-8000-000000000000", "action": "cancel"},
        {"invitation": "1", "action": "cancel"},
        {"invitation": "00000000-0000-4000-8000-000000000000", "action": "approve"},
    ):
        assert boss.post(STAFF, data).status_code in {400, 404}
    assert User.objects.get(pk=receptionist.pk).roles == {Role.RECEPTIONIST}

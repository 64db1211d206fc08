"""Inviting a member of staff: the manager's form, the emailed link that works
once and expires, joining with it (username, password, then two-factor),
and every way a link or a post can be wrong answered with a 4xx and a
sentence, never a server error."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from io import StringIO
from urllib.parse import urlsplit

import pytest
import time_machine
from django.core import mail, signing
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from clinic.models import AuditAction, AuditEvent, StaffInvitation, User
from clinic.roles import Role
from clinic.staff import INVITATION_SALT, StaffRefusedError, staff_deactivate, staff_invite
from tests.conftest import frozen_at, sign_in
from tests.factories import PASSWORD
from tests.races import hidden_value

pytestmark = pytest.mark.django_db

MORNING = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
frozen = frozen_at(MORNING)

INVITE = "/staff/invite/"
STAFF = "/staff/"
NEW_PASSWORD = "bright lantern harbour 42"


def invite_form(client: Client, **fields: object) -> dict[str, object]:
    """The invitation form as the page gives it, filled in."""
    page = client.get(INVITE).content.decode()
    data: dict[str, object] = {
        "first_name": "Nadia",
        "last_name": "Novak",
        "email": "nadia@clinic.example",
        "roles": [Role.RECEPTIONIST.value],
        "submission_token": hidden_value(page, "submission_token"),
    }
    data.update(fields)
    return data


def link_in_mail() -> str:
    """The path of the invitation link in the last email sent."""
    found = re.search(r"https?://\S+/staff/join/\S+/", mail.outbox[-1].body)
    assert found, mail.outbox[-1].body
    return urlsplit(found.group(0)).path


def join(client: Client, path: str, username: str = "nadia", password: str = NEW_PASSWORD):
    return client.post(path, {"username": username, "password1": password, "password2": password})


@pytest.fixture
def boss(manager: User) -> Client:
    return sign_in(Client(), manager)


@pytest.fixture
def invited(boss: Client) -> str:
    """A receptionist invited by the manager: the link's path."""
    response = boss.post(INVITE, invite_form(boss))
    assert response.status_code == 302
    return link_in_mail()


# --- Inviting ---------------------------------------------------------------------------


def test_a_manager_invites_by_email_and_the_invitation_waits_on_the_staff_page(
    boss: Client, manager: User
) -> None:
    response = boss.post(INVITE, invite_form(boss, roles=["receptionist", "practitioner"]))
    assert response.status_code == 302
    assert response["Location"] == STAFF
    message = mail.outbox[-1]
    assert message.to == ["nadia@clinic.example"]
    assert "Your invitation to join" in message.subject
    assert "as Receptionist, Practitioner" in message.body
    assert "works once, within 3 days" in message.body
    invitation = StaffInvitation.objects.get()
    assert invitation.roles == ["receptionist", "practitioner"]
    assert invitation.invited_by == manager
    assert invitation.expires_at == MORNING + timedelta(days=3)
    # Nobody has an account until they join.
    assert not User.objects.filter(email="nadia@clinic.example").exists()
    page = boss.get(STAFF).content.decode()
    assert "nadia@clinic.example" in page
    assert "The invitation was emailed to nadia@clinic.example." in page
    event = AuditEvent.objects.get(action=AuditAction.INVITATION_SENT)
    assert (event.actor, event.object_type, event.object_id) == (
        manager,
        "auth.invitation",
        "nadia@clinic.example",
    )
    assert "role=receptionist" in event.changed_fields
    assert event.object_label == "invitation to nadia@clinic.example"


def test_the_invitation_form_sent_twice_invites_once(boss: Client) -> None:
    data = invite_form(boss)
    assert boss.post(INVITE, data).status_code == 302
    again = boss.post(INVITE, data)
    assert again.status_code == 302
    assert StaffInvitation.objects.count() == 1
    assert len(mail.outbox) == 1
    assert "This was already saved" in boss.get(STAFF).content.decode()


def test_an_address_that_already_has_an_account_is_refused_with_whose_it_is(
    boss: Client, receptionist: User
) -> None:
    response = boss.post(INVITE, invite_form(boss, email=receptionist.email.upper()))
    assert response.status_code == 409
    page = response.content.decode()
    assert "is already the email of" in page
    assert f"username {receptionist.username}" in page
    # What was typed stays on the form.
    assert 'value="Nadia"' in page
    assert not StaffInvitation.objects.exists()
    assert mail.outbox == []


def test_the_address_of_a_deactivated_account_leads_to_reactivating_it(
    boss: Client, manager: User, receptionist: User
) -> None:
    """Someone who left comes back: the manager is told their account is
    deactivated and led to the page that reactivates it."""
    staff_deactivate(actor=manager, member=receptionist)
    response = boss.post(INVITE, invite_form(boss, email=receptionist.email))
    assert response.status_code == 409
    page = response.content.decode()
    assert "which is deactivated" in page
    assert "reactivate that account on their page" in page
    assert "give that account the roles it needs" not in page
    assert 'value="Nadia"' in page
    person = reverse("staff_member", kwargs={"member": receptionist.uuid})
    link = re.search(
        r'data-testid="staff-invite-reactivate">\s*<p[^>]*>[^<]*</p>\s*<a [^>]*href="([^"]+)"', page
    )
    assert link is not None
    assert link.group(1) == person
    assert boss.post(person, {"action": "reactivate"}).status_code == 302
    assert User.objects.get(pk=receptionist.pk).roles == {Role.RECEPTIONIST}
    again = boss.post(INVITE, invite_form(boss, email=receptionist.email))
    assert "is already the email of" in again.content.decode()
    assert 'data-testid="staff-invite-reactivate"' not in again.content.decode()
    assert not StaffInvitation.objects.exists()


def test_an_address_with_an_invitation_waiting_is_refused_until_it_is_cancelled(
    boss: Client,
) -> None:
    assert boss.post(INVITE, invite_form(boss)).status_code == 302
    response = boss.post(INVITE, invite_form(boss, email="Nadia@Clinic.example"))
    assert response.status_code == 409
    assert "An invitation to nadia@clinic.example is already waiting" in response.content.decode()
    invitation = StaffInvitation.objects.get()
    boss.post(STAFF, {"invitation": str(invitation.uuid), "action": "cancel"})
    assert boss.post(INVITE, invite_form(boss)).status_code == 302
    assert StaffInvitation.objects.count() == 2


def test_an_invitation_without_a_role_or_an_address_is_the_form_again_with_the_reasons(
    boss: Client,
) -> None:
    response = boss.post(INVITE, invite_form(boss, roles=[], email="not an address"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Choose at least one role." in page
    assert "Enter a valid email address." in page
    response = boss.post(INVITE, invite_form(boss, roles=["owner"]))
    assert "Select a valid choice." in response.content.decode()
    assert not StaffInvitation.objects.exists()


def test_only_a_manager_invites(make_staff: Callable[..., User]) -> None:
    desk = sign_in(Client(), make_staff("desk", Role.RECEPTIONIST, Role.PRACTITIONER))
    assert desk.get(INVITE).status_code == 403
    response = desk.post(
        INVITE, {"first_name": "Eve", "email": "eve@example.org", "roles": ["manager"]}
    )
    assert response.status_code == 403
    assert not StaffInvitation.objects.exists()
    with pytest.raises(StaffRefusedError) as refused:
        staff_invite(
            invited_by=User.objects.get(username="desk"),
            email="eve@example.org",
            first_name="Eve",
            roles=[Role.MANAGER],
        )
    assert refused.value.code == "not_manager"


# --- Joining ----------------------------------------------------------------------------------


def test_joining_makes_the_account_with_its_roles_then_asks_for_two_factor(
    invited: str, manager: User
) -> None:
    client = Client()
    page = client.get(invited)
    assert page.status_code == 200
    text = page.content.decode()
    assert "Welcome, Nadia" in text
    assert "as Receptionist" in text
    assert 'value="nadia"' in text  # the address's name offered as the username

    response = join(client, invited)
    assert response.status_code == 302
    assert response["Location"] == "/accounts/two-factor/setup/?next=%2F"
    user = User.objects.get(username="nadia")
    assert (user.first_name, user.last_name, user.email) == (
        "Nadia",
        "Novak",
        "nadia@clinic.example",
    )
    assert user.roles == {Role.RECEPTIONIST}
    assert user.check_password(NEW_PASSWORD)
    invitation = StaffInvitation.objects.get()
    assert invitation.user == user
    assert invitation.accepted_at == MORNING
    # Signed in, and sent to set up the authenticator before anything else.
    assert client.get("/").status_code == 302
    setup = client.get(response["Location"])
    assert setup.status_code == 200
    assert "Set up two-factor authentication" in setup.content.decode()
    event = AuditEvent.objects.get(action=AuditAction.INVITATION_ACCEPTED)
    assert event.actor == user
    assert "account=nadia" in event.changed_fields
    # The staff page lists them, without the invitation.
    page = sign_in(Client(), manager).get(STAFF).content.decode()
    assert "No invitation is waiting." in page
    assert "Nadia Novak" in page


def test_a_link_works_once(invited: str) -> None:
    assert join(Client(), invited).status_code == 302
    for replay in (Client().get(invited), join(Client(), invited, username="nadia2")):
        assert replay.status_code == 410
        assert "already used to join" in replay.content.decode()
    assert User.objects.filter(email="nadia@clinic.example").count() == 1


def test_a_link_expires_after_three_days(invited: str) -> None:
    with time_machine.travel(MORNING + timedelta(days=3, seconds=1), tick=False):
        response = Client().get(invited)
        assert response.status_code == 410
        assert "This invitation has expired." in response.content.decode()
        assert join(Client(), invited).status_code == 410
    assert not User.objects.filter(username="nadia").exists()


def test_sending_again_makes_a_new_link_and_the_old_one_stops_working(
    invited: str, manager: User
) -> None:
    invitation = StaffInvitation.objects.get()
    with time_machine.travel(MORNING + timedelta(days=2), tick=False):
        boss = sign_in(Client(), manager)
        response = boss.post(STAFF, {"invitation": str(invitation.uuid), "action": "resend"})
        assert response.status_code == 302
        fresh = link_in_mail()
    assert fresh != invited
    old = Client().get(invited)
    assert old.status_code == 410
    assert "A newer invitation was sent" in old.content.decode()
    # The new link works three days from when it was sent.
    with time_machine.travel(MORNING + timedelta(days=4), tick=False):
        assert join(Client(), fresh).status_code == 302
    assert AuditEvent.objects.filter(action=AuditAction.INVITATION_RESENT).count() == 1


def test_a_cancelled_invitation_no_longer_works(boss: Client, invited: str) -> None:
    invitation = StaffInvitation.objects.get()
    response = boss.post(STAFF, {"invitation": str(invitation.uuid), "action": "cancel"})
    assert response.status_code == 302
    refused = Client().get(invited)
    assert refused.status_code == 410
    assert "This invitation was cancelled." in refused.content.decode()
    # Cancelled again: nothing to do; sent again: refused with the reason.
    boss.post(STAFF, {"invitation": str(invitation.uuid), "action": "cancel"})
    again = boss.post(STAFF, {"invitation": str(invitation.uuid), "action": "resend"})
    assert again.status_code == 409
    assert "accepted or cancelled meanwhile" in again.content.decode()
    assert AuditEvent.objects.filter(action=AuditAction.INVITATION_CANCELLED).count() == 1


@pytest.mark.parametrize(
    "mangle",
    [
        lambda path: path.replace("/join/", "/join/x"),
        lambda path: path[:-12] + "/",
        lambda path: "/staff/join/" + "A" * 300 + "/",
        lambda path: "/staff/join/%00%ff/",
    ],
    ids=["altered", "cut short", "made up", "bytes"],
)
def test_a_link_altered_or_cut_short_is_a_400_with_a_sentence(
    invited: str, mangle: Callable[[str], str]
) -> None:
    for response in (Client().get(mangle(invited)), join(Client(), mangle(invited))):
        assert response.status_code in {400, 404}
        if response.status_code == 400:
            assert "not a complete invitation link" in response.content.decode()
    assert not User.objects.filter(username="nadia").exists()


def test_a_link_signed_for_another_purpose_or_naming_no_invitation_is_refused() -> None:
    for value in (["00000000-0000-4000-8000-000000000000", 1], ["not a uuid", 1], "text"):
        token = signing.dumps(value, salt=INVITATION_SALT)
        response = Client().get(reverse("staff_join", kwargs={"token": token}))
        assert response.status_code == 400
    other = signing.dumps(["x", 1], salt="another.purpose")
    assert Client().get(reverse("staff_join", kwargs={"token": other})).status_code == 400


def test_a_taken_username_or_a_weak_password_keeps_the_link_working(
    invited: str, receptionist: User
) -> None:
    client = Client()
    taken = join(client, invited, username=receptionist.username.upper())
    assert taken.status_code == 400
    assert "That username is taken" in taken.content.decode()
    weak = join(client, invited, password="password")
    assert weak.status_code == 200
    assert "This password is too short" in weak.content.decode()
    differ = client.post(
        invited, {"username": "nadia", "password1": NEW_PASSWORD, "password2": "other one"}
    )
    assert "The two passwords differ" in differ.content.decode()
    assert join(client, invited).status_code == 302


CHARACTERS = "may hold only the letters a to z (small or capital), the digits 0 to 9"
LOOK_ALIKE = "That username reads like another account"


@pytest.mark.parametrize(
    ("username", "said"),
    [
        ("m\u0430nager", CHARACTERS),  # a Cyrillic a
        ("\uff4danager", "That username is taken"),  # a full-width m: NFKC, "manager"
        ("n\u00e1dia", CHARACTERS),
        ("nadia novak", CHARACTERS),
        ("rnanager", LOOK_ALIKE),
        ("practitloner", LOOK_ALIKE),
        ("PRACTITI0NER", LOOK_ALIKE),
    ],
)
def test_a_username_that_reads_like_one_in_use_or_of_other_letters_is_refused(
    invited: str, manager: User, practitioner: User, username: str, said: str
) -> None:
    client = Client()
    response = join(client, invited, username=username)
    assert response.status_code == 400
    assert said in response.content.decode()
    assert User.objects.count() == 2
    # The link still works, with a name of one's own.
    assert join(client, invited, username="nadia").status_code == 302


def test_a_username_reading_like_an_older_one_of_other_letters_is_refused(
    invited: str, make_staff: Callable[..., User]
) -> None:
    """An account named before the letters were restricted, with a Cyrillic
    a: the Latin spelling is refused as its look-alike."""
    make_staff("n\u0430dia", Role.RECEPTIONIST)
    response = join(Client(), invited, username="nadia")
    assert response.status_code == 400
    assert LOOK_ALIKE in response.content.decode()
    assert not User.objects.filter(username="nadia").exists()


def test_the_look_alike_check_takes_the_same_queries_for_three_accounts_or_thirty(
    invited: str, make_staff: Callable[..., User]
) -> None:
    client = Client()
    join(client, invited, username="rnanager")
    with CaptureQueriesContext(connection) as few:
        assert join(client, invited, username="rnanager").status_code == 400
    for index in range(27):
        make_staff(f"extra{index}", Role.RECEPTIONIST)
    with CaptureQueriesContext(connection) as many:
        assert join(client, invited, username="rnanager").status_code == 400
    assert len(many) == len(few)


def test_someone_signed_in_is_asked_to_sign_out_before_joining(invited: str, boss: Client) -> None:
    response = boss.get(invited)
    assert response.status_code == 409
    assert "Sign out first" in response.content.decode()
    assert join(boss, invited).status_code == 409
    assert not User.objects.filter(username="nadia").exists()


def test_an_account_made_for_the_address_meanwhile_refuses_the_link(
    invited: str, make_staff: Callable[..., User]
) -> None:
    make_staff("nadia.n", Role.PRACTITIONER, email="NADIA@clinic.example")
    response = join(Client(), invited)
    assert response.status_code == 409
    assert "is already the email of" in response.content.decode()


# --- The manager who sent it deactivated ------------------------------------------------------


def test_deactivating_a_manager_withdraws_the_invitations_they_sent(
    boss: Client, manager: User, make_staff: Callable[..., User]
) -> None:
    """Manager A invites a manager; manager B deactivates A: the link stops
    working, said so, and the withdrawal is in the trail under B."""
    boss.post(INVITE, invite_form(boss, email="newboss@clinic.example", roles=["manager"]))
    path = link_in_mail()
    other = make_staff("second-boss", Role.MANAGER, first_name="Bea")
    colleague = sign_in(Client(), other)
    done = colleague.post(
        reverse("staff_member", kwargs={"member": manager.uuid}),
        {"action": "deactivate"},
        follow=True,
    )
    said = done.content.decode()
    assert "The invitation they sent to newboss@clinic.example is withdrawn" in said
    for response in (Client().get(path), join(Client(), path, username="newboss")):
        assert response.status_code == 410
        assert "This invitation was withdrawn" in response.content.decode()
    assert not User.objects.filter(username="newboss").exists()
    invitation = StaffInvitation.objects.get()
    assert invitation.cancelled_at == MORNING
    event = AuditEvent.objects.get(action=AuditAction.INVITATION_CANCELLED)
    assert (event.actor, event.object_id) == (other, "newboss@clinic.example")
    assert "withdrawn" in event.changed_fields
    assert "newboss@clinic.example" not in colleague.get(STAFF).content.decode()
    # Reactivating the manager gives the account back, not the invitation.
    colleague.post(
        reverse("staff_member", kwargs={"member": manager.uuid}), {"action": "reactivate"}
    )
    assert Client().get(path).status_code == 410


def test_taking_the_manager_role_withdraws_the_invitations_they_sent(
    boss: Client, manager: User, make_staff: Callable[..., User]
) -> None:
    """Manager A invites two people; manager B takes A's manager role: A may
    no longer invite, so both links stop working, said so and audited under
    B. Taking another role withdraws nothing."""
    boss.post(INVITE, invite_form(boss, email="newboss@clinic.example", roles=["manager"]))
    path = link_in_mail()
    boss.post(INVITE, invite_form(boss, email="desk@clinic.example"))
    other = make_staff("second-boss", Role.MANAGER, first_name="Bea")
    colleague = sign_in(Client(), other)
    page = reverse("staff_member", kwargs={"member": manager.uuid})
    colleague.post(page, {"action": "give_role", "role": "receptionist"})
    colleague.post(page, {"action": "take_role", "role": "receptionist"})
    assert not StaffInvitation.objects.filter(cancelled_at__isnull=False).exists()
    done = colleague.post(page, {"action": "take_role", "role": "manager"}, follow=True)
    said = done.content.decode()
    assert "no longer holds the role Manager" in said
    assert "The invitations they sent to newboss@clinic.example, desk@clinic.example" in said
    response = join(Client(), path, username="newboss")
    assert response.status_code == 410
    assert "This invitation was cancelled" in response.content.decode()
    assert not User.objects.filter(username="newboss").exists()
    assert StaffInvitation.objects.filter(cancelled_at=MORNING).count() == 2
    events = AuditEvent.objects.filter(action=AuditAction.INVITATION_CANCELLED)
    assert {(e.actor, e.object_id) for e in events} == {
        (other, "newboss@clinic.example"),
        (other, "desk@clinic.example"),
    }
    assert all("withdrawn" in e.changed_fields for e in events)


def test_an_invitation_from_a_manager_deactivated_without_withdrawing_it_is_refused(
    manager: User,
) -> None:
    """Sent by someone deactivated before deactivating withdrew invitations:
    the link is refused all the same."""
    issued = staff_invite(
        invited_by=manager, email="late@clinic.example", first_name="Late", roles=["manager"]
    )
    User.objects.filter(pk=manager.pk).update(is_active=False)
    path = urlsplit(issued.url).path
    response = join(Client(), path, username="late")
    assert response.status_code == 410
    assert "This invitation was withdrawn" in response.content.decode()
    assert not User.objects.filter(username="late").exists()


# --- The first manager, from the server's command line --------------------------------------


def test_the_first_manager_is_invited_from_the_command_line() -> None:
    out = StringIO()
    call_command("staff_invite", "owner@clinic.example", "--first-name", "Olive", stdout=out)
    text = out.getvalue()
    assert "owner@clinic.example (Manager)" in text
    assert "Emailed to them." in text
    path = urlsplit(re.search(r"https?://\S+", text).group(0)).path  # type: ignore[union-attr]
    assert join(Client(), path, username="olive").status_code == 302
    olive = User.objects.get(username="olive")
    assert olive.roles == {Role.MANAGER}
    assert not olive.is_superuser
    assert not olive.is_staff
    assert AuditEvent.objects.get(action=AuditAction.INVITATION_SENT).actor_label == "system"
    with pytest.raises(CommandError, match="is already the email of"):
        call_command("staff_invite", "owner@clinic.example", "--first-name", "Olive")


def test_a_password_sign_in_works_after_joining(invited: str) -> None:
    join(Client(), invited)
    response = Client().post(
        reverse("login"), {"username": "nadia", "password": NEW_PASSWORD}, REMOTE_ADDR="10.0.0.9"
    )
    assert response.status_code == 302
    assert PASSWORD != NEW_PASSWORD

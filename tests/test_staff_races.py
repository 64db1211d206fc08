"""Two managers changing the staff at the same moment, over real concurrent
connections: removing each other (deactivating, taking the manager role)
leaves one manager, never none; and one backup code sent twice at once signs
in once.

Most tests hold the first change after it is made and before it commits,
then send the second and check that it waits for the first (the managers'
rows are locked) and is refused once the first has committed. Without the
lock the second would read the managers from before the first and go
ahead."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from django.db import connection, connections, transaction
from django.test import Client
from django.urls import reverse

from clinic.models import AuditAction, AuditEvent, User
from clinic.roles import Role
from clinic.staff import (
    StaffRefusedError,
    backup_code_use,
    backup_codes_issue,
    staff_deactivate,
    staff_invitation_accept,
    staff_invite,
    staff_role_take,
)
from tests.conftest import sign_in

pytestmark = pytest.mark.django_db(transaction=True)

MORNING = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    # The clock frozen here holds in every thread of the test.
    with time_machine.travel(MORNING, tick=False):
        yield


@pytest.fixture
def anna(make_staff: Callable[..., User]) -> User:
    return make_staff("anna", Role.MANAGER, first_name="Anna")


@pytest.fixture
def ben(make_staff: Callable[..., User]) -> User:
    return make_staff("ben", Role.MANAGER, first_name="Ben")


def _waiting(count: int, *, timeout: float = 10.0) -> bool:
    """Wait until `count` other connections of this database wait for a lock."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0] >= count:
                return True
        time.sleep(0.02)
    return False


@dataclass
class Outcome:
    result: Any = None
    error: BaseException | None = None


def _thread(call: Callable[[], Any], outcome: Outcome) -> threading.Thread:
    def run() -> None:
        try:
            outcome.result = call()
        except BaseException as error:  # collected: the test says which are expected
            outcome.error = error
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def held_then(first: Callable[[], Any], second: Callable[[], Any]) -> tuple[Outcome, Outcome, bool]:
    """Run `first` in a transaction of its own and hold it uncommitted; send
    `second` meanwhile; once `second` waits for a lock (or after 10 s), let
    `first` commit. Returns both outcomes and whether `second` waited."""
    done, release = threading.Event(), threading.Event()
    one, two = Outcome(), Outcome()

    def hold() -> Any:
        with transaction.atomic():
            result = first()
            done.set()
            release.wait(timeout=60)
        return result

    holder = _thread(hold, one)
    assert done.wait(timeout=30), one.error
    sender = _thread(second, two)
    waited = _waiting(1)
    release.set()
    holder.join(timeout=60)
    sender.join(timeout=60)
    return one, two, waited


def _active_managers() -> list[str]:
    return sorted(
        User.objects.filter(is_active=True, groups__name=Role.MANAGER.value).values_list(
            "username", flat=True
        )
    )


def test_two_managers_deactivating_each_other_at_once_leave_one(anna: User, ben: User) -> None:
    one, two, waited = held_then(
        lambda: staff_deactivate(actor=anna, member=ben),
        lambda: staff_deactivate(actor=ben, member=anna),
    )
    assert waited, "the second change did not wait for the managers' rows"
    assert one.error is None
    assert one.result.sessions_ended == 0
    assert isinstance(two.error, StaffRefusedError)
    assert two.error.code == "last_manager"
    assert _active_managers() == ["anna"]
    assert AuditEvent.objects.filter(action=AuditAction.DEACTIVATED).count() == 1


def test_two_managers_taking_each_others_manager_role_at_once_leave_one(
    anna: User, ben: User
) -> None:
    one, two, waited = held_then(
        lambda: staff_role_take(actor=anna, member=ben, role=Role.MANAGER),
        lambda: staff_role_take(actor=ben, member=anna, role=Role.MANAGER),
    )
    assert waited
    assert one.error is None
    assert one.result is not None
    assert isinstance(two.error, StaffRefusedError)
    assert two.error.code == "last_manager"
    assert _active_managers() == ["anna"]


def test_taking_the_role_while_the_other_deactivates_leaves_one(anna: User, ben: User) -> None:
    one, two, waited = held_then(
        lambda: staff_role_take(actor=anna, member=ben, role=Role.MANAGER),
        lambda: staff_deactivate(actor=ben, member=anna),
    )
    assert waited
    assert one.error is None
    assert isinstance(two.error, StaffRefusedError)
    assert _active_managers() == ["anna"]


def test_with_a_third_manager_the_one_removed_meanwhile_can_no_longer_act(
    anna: User, ben: User, make_staff: Callable[..., User]
) -> None:
    make_staff("cara", Role.MANAGER)
    one, two, waited = held_then(
        lambda: staff_deactivate(actor=anna, member=ben),
        lambda: staff_deactivate(actor=ben, member=anna),
    )
    assert waited
    assert one.error is None
    assert isinstance(two.error, StaffRefusedError)
    assert two.error.code == "not_manager"
    assert _active_managers() == ["anna", "cara"]


def _post_together(clients: list[Client], posts: list[tuple[str, dict[str, str]]]) -> list[int]:
    """Post posts[i] from clients[i], all released at the same instant, each
    on its own connection; the statuses (-1: the request raised)."""
    barrier = threading.Barrier(len(clients))
    outcomes = [Outcome() for _ in clients]

    def post(index: int) -> int:
        barrier.wait(timeout=30)
        url, data = posts[index]
        return clients[index].post(url, data).status_code

    threads = [_thread(lambda i=i: post(i), outcomes[i]) for i in range(len(clients))]
    for thread in threads:
        thread.join(timeout=60)
    return [-1 if o.error is not None else int(o.result) for o in outcomes]


def test_pages_posted_at_the_same_instant_leave_one_manager(anna: User, ben: User) -> None:
    """The same through the pages, both posts released together, a few rounds."""
    for _round in range(3):
        statuses = _post_together(
            [sign_in(Client(), anna), sign_in(Client(), ben)],
            [
                (reverse("staff_member", kwargs={"member": ben.uuid}), {"action": "deactivate"}),
                (reverse("staff_member", kwargs={"member": anna.uuid}), {"action": "deactivate"}),
            ],
        )
        # One deactivated; the other refused (409), sent to the sign-in page
        # when their session had already ended (302), or answered 400 when it
        # ended during their request (Django's SessionInterrupted: the session
        # cannot be saved back); never a server error, never no manager.
        assert all(status in {302, 400, 409} for status in statuses), statuses
        assert 302 in statuses
        assert len(_active_managers()) == 1
        User.objects.filter(username__in=["anna", "ben"]).update(is_active=True)


def test_one_backup_code_sent_twice_at_once_signs_in_once(receptionist: User) -> None:
    code = backup_codes_issue(user=receptionist)[0]
    one, two, waited = held_then(
        lambda: backup_code_use(user=receptionist, code=code),
        lambda: backup_code_use(user=receptionist, code=code),
    )
    assert waited
    assert one.error is None
    assert one.result is not None
    assert two.error is None
    assert two.result is None


def test_joining_while_the_inviter_is_deactivated_is_refused_as_withdrawn(
    anna: User, ben: User
) -> None:
    """Ben is deactivated while the person he invited sends the joining form:
    the link waits for the deactivation and is then refused; no account."""
    issued = staff_invite(
        invited_by=ben, email="omar@clinic.example", first_name="Omar", roles=["manager"]
    )
    token = issued.url.rstrip("/").rsplit("/", 1)[-1]
    one, two, waited = held_then(
        lambda: staff_deactivate(actor=anna, member=ben),
        lambda: staff_invitation_accept(
            token=token, username="omar", password="bright lantern harbour 42"
        ),
    )
    assert waited, "joining did not wait for the invitation's row"
    assert one.error is None
    assert one.result.invitations_withdrawn == ["omar@clinic.example"]
    assert isinstance(two.error, StaffRefusedError)
    assert two.error.code == "withdrawn"
    assert not User.objects.filter(username="omar").exists()


def test_two_people_joining_at_once_with_look_alike_usernames_make_one_account(
    anna: User,
) -> None:
    """Maria and someone else join at the same instant, one as "maria", the
    other as "rnaria" (rn reads as m): the second waits for the first and is
    refused as a look-alike; one account, never both."""
    tokens = [
        staff_invite(
            invited_by=anna, email=f"{name}@clinic.example", first_name=name, roles=["receptionist"]
        )
        .url.rstrip("/")
        .rsplit("/", 1)[-1]
        for name in ("maria", "mario")
    ]
    one, two, waited = held_then(
        lambda: staff_invitation_accept(
            token=tokens[0], username="maria", password="bright lantern harbour 42"
        ),
        lambda: staff_invitation_accept(
            token=tokens[1], username="rnaria", password="quiet meadow copper 17"
        ),
    )
    assert one.error is None
    assert waited, "the second account was not held back by the first"
    assert isinstance(two.error, StaffRefusedError), two.error
    assert two.error.code == "username_look_alike"
    assert "reads like another account" in two.error.message
    assert list(
        User.objects.filter(username__in=["maria", "rnaria"]).values_list("username", flat=True)
    ) == ["maria"]
    assert AuditEvent.objects.filter(action=AuditAction.INVITATION_ACCEPTED).count() == 1


def test_the_same_name_in_two_letter_cases_at_once_makes_one_account(anna: User) -> None:
    """ "Omar" and "omar" joining at the same instant: the letter case is
    no difference to a colleague reading them, so one is refused."""
    tokens = [
        staff_invite(
            invited_by=anna, email=f"o{n}@clinic.example", first_name="Omar", roles=["receptionist"]
        )
        .url.rstrip("/")
        .rsplit("/", 1)[-1]
        for n in (1, 2)
    ]
    one, two, waited = held_then(
        lambda: staff_invitation_accept(
            token=tokens[0], username="Omar", password="bright lantern harbour 42"
        ),
        lambda: staff_invitation_accept(
            token=tokens[1], username="omar", password="quiet meadow copper 17"
        ),
    )
    assert one.error is None
    assert waited
    assert isinstance(two.error, StaffRefusedError)
    assert User.objects.filter(username__iexact="omar").count() == 1

"""A merge of two records of one person while the clinic keeps working on the
record merged away, over real concurrent connections: every row written for
it at that moment ends on the record that stays (none is left on the merged
record, out of sight of the survivor's safety gates), and a booking moved,
cancelled, marked or completed, or a test read, at that moment waits for the
merge and is done on the record that stays, with no server error.

Most tests hold the merge at a known point: after it has moved the rows and
before it commits (a connection of the test holds a row the merge locks
last). Writes sent then must wait for the merge and follow it."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection, connections, transaction
from django.test import Client
from django.urls import reverse

from clinic.models import User
from clinic.roles import Role
from patients.models import Consultation, MedicalHistory, Patient, Photo
from tests.conftest import sign_in
from tests.factories import (
    NO_CONDITIONS,
    IngredientFactory,
    PatientFactory,
    ProtocolFactory,
)
from tests.treatments.test_booking_support import give_hours
from tests.treatments.test_session_helpers import give_and_read, make_world, session_post
from treatments.models import (
    AllergyTest,
    Booking,
    BookingStatus,
    PatientAllergy,
    PortalAccount,
    PortalLoginToken,
    Reminder,
    Room,
)
from treatments.selectors.merge import RECORD_KINDS
from treatments.services.booking import booking_create
from treatments.services.merge import MergeResult, PatientMergeRefusedError, patient_merge
from treatments.services.portal import PortalInviteRefusedError, portal_invite

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=LONDON)  # a Monday
ROUNDS = 6

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    # The clock frozen here holds in every thread of the test.
    with time_machine.travel(NOW, tick=False):
        yield


# --- Every link to a patient follows a merge ------------------------------------------------


def test_every_link_to_a_patient_carries_the_trigger_that_follows_a_merge() -> None:
    """A table added with a foreign key to patients_patient needs the trigger
    of consent migration 0006 too, or rows written for a record being merged
    would be left on it."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.conrelid::regclass::text, a.attname
            FROM pg_constraint c
            JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
            WHERE c.contype = 'f' AND c.confrelid = 'patients_patient'::regclass
            """
        )
        links = set(cursor.fetchall())
        cursor.execute(
            """
            SELECT t.tgrelid::regclass::text, split_part(encode(t.tgargs, 'escape'), '\\000', 1),
                   t.tgname, t.tgtype,
                   t.tgenabled, array(SELECT attname FROM pg_attribute
                                      WHERE attrelid = t.tgrelid AND attnum = ANY(t.tgattr))
            FROM pg_trigger t
            WHERE t.tgfoid = 'patients_follow_merge'::regproc
            """
        )
        triggers = {(table, args): rest for table, args, *rest in cursor.fetchall()}
    # Every link Django knows is one of them (the catalogue is the authority).
    assert ("treatments_booking", "patient_id") in links
    assert ("patients_patient", "merged_into_id") in links
    missing = sorted(links - set(triggers))
    assert missing == [], (
        "These links to patients_patient have no patients_follow_merge trigger; add, in the "
        "migration that makes them: CREATE TRIGGER a_<column>_follows_merge BEFORE INSERT OR "
        "UPDATE OF <column> ON <table> FOR EACH ROW EXECUTE FUNCTION "
        f"patients_follow_merge('<column>'): {missing}"
    )
    for (table, column), (name, kind, enabled, columns) in triggers.items():
        # Row-level (1), BEFORE (2), on INSERT (4) and UPDATE (16) of that column, enabled.
        assert kind & (1 | 2 | 4 | 16) == 1 | 2 | 4 | 16, (table, kind)
        assert columns == [column], (table, columns)
        assert enabled == "O", (table, enabled)
        assert name == f"a_{column}_follows_merge"


# --- Holding a merge between moving the rows and committing ---------------------------------


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
    """What one thread's call gave: its result, or the exception it raised."""

    result: Any = None
    error: BaseException | None = None


@dataclass
class HeldMerge:
    """A merge of `duplicate` into `survivor` held after moving the rows."""

    duplicate: Patient
    survivor: Patient
    merge: Outcome = field(default_factory=Outcome)
    threads: list[threading.Thread] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)

    def send(self, call: Callable[[], Any]) -> Outcome:
        """Run `call` in a thread of its own (its own connection), now."""
        outcome = Outcome()
        self.threads.append(_in_thread(call, outcome))
        self.outcomes.append(outcome)
        return outcome


def _in_thread(call: Callable[[], Any], outcome: Outcome) -> threading.Thread:
    """Start `call` in a thread with its own connection; `outcome` gets what it gave."""

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


@contextmanager
def merge_held(duplicate: Patient, survivor: Patient, merged_by: User) -> Iterator[HeldMerge]:
    """Start merging `duplicate` into `survivor` and hold it, rows moved and
    uncommitted, until the block's calls (`send`) are all waiting; then let
    it commit and wait for everything.

    Held where the merge adds to the survivor's allergy an allergy both
    records list (it locks that row FOR UPDATE): a connection of the test
    holds the row FOR KEY SHARE until then."""
    shared = IngredientFactory(name="Held: biotin")
    for patient in (duplicate, survivor):
        PatientAllergy.objects.create(patient=patient, ingredient=shared, recorded_by=merged_by)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM treatments_patientallergy"
                " WHERE patient_id = %s AND ingredient_id = %s FOR KEY SHARE",
                [survivor.pk, shared.pk],
            )
            held.set()
            release.wait(timeout=60)

    holder = _in_thread(hold, Outcome())
    assert held.wait(timeout=30)
    state = HeldMerge(duplicate, survivor)
    merging = _in_thread(
        lambda: patient_merge(duplicate=duplicate, survivor=survivor, merged_by=merged_by),
        state.merge,
    )
    try:
        assert _waiting(1), f"the merge was not held: {state.merge}"
        yield state
        # Each call sent waits for the merge (or has already gone wrong).
        _waiting(1 + len(state.threads), timeout=5)
    finally:
        release.set()
        for thread in (holder, merging, *state.threads):
            thread.join(timeout=60)
    assert state.merge.error is None, state.merge.error
    assert isinstance(state.merge.result, MergeResult)


def rows_left_on(patient: Patient) -> dict[str, int]:
    """Rows of every kind still pointing at `patient` (a merged record: none,
    but the allergies the survivor also lists, which the merge keeps there)."""
    patient = Patient.objects.get(pk=patient.pk)
    counts = {}
    for kind in RECORD_KINDS:
        if not kind.direct:
            continue
        rows = kind.model._default_manager.filter(**{kind.path: patient})
        if kind.model is PatientAllergy and patient.merged_into_id:
            listed = PatientAllergy.objects.filter(patient_id=patient.merged_into_id)
            rows = rows.exclude(ingredient__in=listed.values("ingredient"))
        counts[kind.key] = rows.count()
    return {key: n for key, n in counts.items() if n}


def main_of(response: Any) -> str:
    """The page's main content, for a failure message."""
    return response.content.decode().partition('id="main"')[2][:3000]


@pytest.fixture
def pair() -> tuple[Patient, Patient]:
    duplicate = PatientFactory(
        first_name="Amelia",
        last_name="Hart",
        date_of_birth=date(1988, 4, 2),
        email="amelia.hart@example.org",
    )
    survivor = PatientFactory(
        first_name="Amelia",
        last_name="Hart",
        date_of_birth=date(1988, 4, 2),
        email="a.hart@example.org",
    )
    return duplicate, survivor


def test_rows_written_by_the_services_while_the_merge_runs_go_to_the_survivor(
    pair: tuple[Patient, Patient], practitioner: User, receptionist: User
) -> None:
    duplicate, survivor = pair
    protocol = ProtocolFactory()
    ingredient = IngredientFactory()
    room = Room.objects.create(name="Room 1")
    give_hours(practitioner)
    starts = (NOW + timedelta(days=2)).replace(hour=11)  # Wednesday, in working hours

    with merge_held(duplicate, survivor, practitioner) as merge:
        booked = merge.send(
            lambda: booking_create(
                patient=duplicate,
                practitioner=practitioner,
                room=room,
                protocol=protocol,
                starts_at=starts,
                ends_at=starts + timedelta(minutes=45),
                created_by=receptionist,
            )
        )
        tested = merge.send(
            lambda: give_and_read(
                duplicate,
                practitioner,
                [ingredient],
                given_at=NOW - timedelta(minutes=5),
                result=None,
            )
        )
        invited = merge.send(lambda: portal_invite(patient=duplicate, invited_by=practitioner))
        from patients.services import consultation_record, medical_history_record

        signed = merge.send(
            lambda: medical_history_record(
                patient=duplicate, signed_by=practitioner, answers=dict(NO_CONDITIONS)
            )
        )
        consulted = merge.send(
            lambda: consultation_record(
                patient=duplicate,
                recorded_by=practitioner,
                skin_type="III",
                concerns=["dull"],
                areas=["face"],
                goals="Brighter skin",
                expectations_discussed=True,
                risks_discussed=True,
                alternatives_discussed="Peels",
                recommended_protocol="Revitalising face",
            )
        )

    for outcome in (booked, tested, invited, signed, consulted):
        assert outcome.error is None, outcome.error
    assert rows_left_on(duplicate) == {}
    assert Booking.objects.get(pk=booked.result.pk).patient_id == survivor.pk
    assert AllergyTest.objects.get(pk=tested.result.pk).patient_id == survivor.pk
    assert Reminder.objects.filter(patient=survivor).count() >= 2  # the booking's, the test's
    assert PortalAccount.objects.get().patient_id == survivor.pk
    assert MedicalHistory.objects.get().patient_id == survivor.pk
    assert Consultation.objects.get().patient_id == survivor.pk


def test_a_row_written_by_any_code_while_the_merge_runs_goes_to_the_survivor(
    pair: tuple[Patient, Patient], practitioner: User
) -> None:
    """The database's own rule (consent migration 0006), for code that holds
    nothing first: a plain insert of a consultation and of a photo."""
    duplicate, survivor = pair
    with merge_held(duplicate, survivor, practitioner) as merge:
        consulted = merge.send(
            lambda: Consultation.objects.create(
                patient=duplicate,
                recorded_by=practitioner,
                skin_type="III",
                concerns=["dull"],
                areas=["face"],
                goals="Typed at the moment of the merge",
                expectations_discussed=True,
                risks_discussed=True,
                alternatives_discussed="Peels",
                recommended_protocol="Revitalising face",
            )
        )
        photographed = merge.send(
            lambda: Photo.objects.create(
                patient=duplicate,
                area="face",
                kind="before",
                taken_on=NOW.date(),
                image="photos/x.jpg",
                width=1,
                height=1,
                sha256="0" * 64,
                uploaded_by=practitioner,
            )
        )
    assert consulted.error is None, consulted.error
    assert photographed.error is None, photographed.error
    assert rows_left_on(duplicate) == {}
    assert Consultation.objects.get().patient_id == survivor.pk
    assert Photo.objects.get().patient_id == survivor.pk


def test_an_invitation_sent_while_the_merge_brings_an_account_signs_in_that_account(
    pair: tuple[Patient, Patient], practitioner: User
) -> None:
    """The survivor had no account when the invitation was sent; the merge
    brings the duplicate's: the invitation waits for it and sends that account
    a new link, never a second account on the record."""
    duplicate, survivor = pair
    portal_invite(patient=duplicate, invited_by=practitioner)
    client = sign_in(Client(), practitioner)
    with merge_held(duplicate, survivor, practitioner) as merge:
        invited = merge.send(
            lambda: client.post(
                reverse("treatments:portal_invite", kwargs={"patient": survivor.uuid})
            )
        )
    assert invited.error is None, invited.error
    assert invited.result.status_code == 302
    [account] = PortalAccount.objects.all()
    assert account.patient_id == survivor.pk
    assert PortalLoginToken.objects.filter(account=account).count() == 2


# --- Changes to a booking or a test at the moment of a merge -------------------------------


@pytest.mark.parametrize("change", ["move", "cancel", "arrived", "did not come"])
def test_a_booking_changed_at_the_moment_of_a_merge_is_changed_on_the_survivor(
    change: str, pair: tuple[Patient, Patient], practitioner: User, receptionist: User
) -> None:
    duplicate, survivor = pair
    protocol = ProtocolFactory(session_minutes=45)
    room = Room.objects.create(name="Room 1")
    give_hours(practitioner)
    starts = (NOW - timedelta(hours=1)) if change == "did not come" else NOW + timedelta(days=2)
    booking = Booking.objects.create(
        patient=duplicate,
        practitioner=practitioner,
        room=room,
        protocol=protocol,
        starts_at=starts,
        ends_at=starts + timedelta(minutes=45),
        created_by=receptionist,
    )
    client = sign_in(Client(), receptionist)
    urls = {
        "move": reverse("treatments:booking_move", kwargs={"booking": booking.uuid}),
        "cancel": reverse("treatments:booking_cancel", kwargs={"booking": booking.uuid}),
        "arrived": reverse("treatments:booking_mark", kwargs={"booking": booking.uuid}),
        "did not come": reverse("treatments:booking_mark", kwargs={"booking": booking.uuid}),
    }
    local = starts.astimezone(LONDON)
    data = {
        # The move form, as opened before the merge.
        "move": {
            "date": local.date().isoformat(),
            "start_time": "15:00",
            "practitioner": str(practitioner.uuid),
            "room": str(room.uuid),
            "duration": "45",
            "version": str(booking.version),
        },
        "cancel": {"reason": "Patient phoned", "version": str(booking.version)},
        "arrived": {"status": "arrived", "version": str(booking.version)},
        "did not come": {"status": "no_show", "version": str(booking.version)},
    }[change]
    with merge_held(duplicate, survivor, practitioner) as merge:
        sent = merge.send(lambda: client.post(urls[change], data))
    assert sent.error is None, sent.error
    assert sent.result.status_code == 302, main_of(sent.result)
    booking.refresh_from_db()
    assert booking.patient_id == survivor.pk
    expected = {
        "move": BookingStatus.BOOKED,
        "cancel": BookingStatus.CANCELLED,
        "arrived": BookingStatus.ARRIVED,
        "did not come": BookingStatus.NO_SHOW,
    }[change]
    assert booking.status == expected
    if change == "move":
        assert booking.starts_at.astimezone(LONDON).hour == 15
    assert rows_left_on(duplicate) == {}


def test_a_session_completed_at_the_moment_of_a_merge_is_recorded_on_the_survivor(
    practitioner: User,
) -> None:
    world = make_world(practitioner, email="amelia.hart@example.org")
    duplicate = world.patient
    survivor = PatientFactory(email="a.hart@example.org")
    client = sign_in(Client(), practitioner)
    url = reverse("treatments:session_record", kwargs={"booking": world.booking.uuid})
    with merge_held(duplicate, survivor, practitioner) as merge:
        # The form as the page showed it before the merge (the booking's version).
        data = session_post(world.batches, version=str(world.booking.version))
        sent = merge.send(lambda: client.post(url, data))
    assert sent.error is None, sent.error
    assert sent.result.status_code == 302, main_of(sent.result)
    world.booking.refresh_from_db()
    assert world.booking.status == BookingStatus.COMPLETED
    assert world.booking.patient_id == survivor.pk
    assert rows_left_on(duplicate) == {}  # its aftercare sheet too


def test_an_allergy_test_read_at_the_moment_of_a_merge_records_the_allergy_on_the_survivor(
    pair: tuple[Patient, Patient], practitioner: User
) -> None:
    duplicate, survivor = pair
    ingredient = IngredientFactory(name="Vitamin C")
    test = give_and_read(
        duplicate, practitioner, [ingredient], given_at=NOW - timedelta(hours=26), result=None
    )
    client = sign_in(Client(), practitioner)
    url = reverse(
        "treatments:allergy_test_read", kwargs={"patient": duplicate.uuid, "test": test.uuid}
    )
    with merge_held(duplicate, survivor, practitioner) as merge:
        sent = merge.send(
            lambda: client.post(url, {"result": "positive", "reaction": "Red wheal, 9 mm"})
        )
    assert sent.error is None, sent.error
    assert sent.result.status_code == 302, main_of(sent.result)
    test.refresh_from_db()
    assert test.is_read
    assert test.patient_id == survivor.pk
    [allergy] = PatientAllergy.objects.filter(ingredient=ingredient)
    assert allergy.patient_id == survivor.pk
    assert rows_left_on(duplicate) == {}


# --- Everything at once, over and over ------------------------------------------------------


def _at_once(calls: list[Callable[[], Any]]) -> list[Outcome]:
    barrier = threading.Barrier(len(calls))
    outcomes = [Outcome() for _ in calls]

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=60)
            outcomes[index].result = calls[index]()
        except BaseException as error:
            outcomes[index].error = error
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes


def test_rounds_of_a_merge_racing_bookings_tests_invitations_and_histories_leave_nothing_behind(
    practitioner: User, receptionist: User, make_staff: Callable[..., User]
) -> None:
    protocol = ProtocolFactory(session_minutes=30)
    ingredient = IngredientFactory()
    colleague = make_staff("colleague", Role.PRACTITIONER, first_name="Bella")
    clients = {
        "merge": sign_in(Client(), practitioner),
        "booking": sign_in(Client(), receptionist),
        "test": sign_in(Client(), colleague),
        "invite": sign_in(Client(), practitioner),
        "history": sign_in(Client(), colleague),
    }
    history_answers = {name: "yes" if value else "no" for name, value in NO_CONDITIONS.items()}
    history_answers |= {"isotretinoin_taken": "no", "confirm_reviewed": "on"}
    room = Room.objects.create(name="Room 1")
    give_hours(practitioner, days=range(7))  # the rounds run into the weekend
    duplicates = []
    for round_ in range(ROUNDS):
        duplicate = PatientFactory(email=f"dup{round_}@example.org")
        survivor = PatientFactory(email=f"stays{round_}@example.org")
        duplicates.append(duplicate)
        starts = (NOW + timedelta(days=1 + round_)).replace(hour=12)
        p = {"patient": duplicate.uuid}
        outcomes = _at_once(
            [
                lambda s=survivor, d=duplicate: clients["merge"].post(
                    reverse("treatments:patient_merge", kwargs={"patient": d.uuid}),
                    {
                        "into": str(s.uuid),
                        "confirm": "on",
                        "duplicate_version": str(d.version),
                        "survivor_version": str(s.version),
                    },
                ),
                lambda d=duplicate, t=starts: booking_create(
                    patient=d,
                    practitioner=practitioner,
                    room=room,
                    protocol=protocol,
                    starts_at=t,
                    ends_at=t + timedelta(minutes=30),
                    created_by=receptionist,
                    submission_token=uuid.uuid4(),
                ),
                lambda p=p: clients["test"].post(
                    reverse("treatments:allergy_test_new", kwargs=p),
                    {
                        "ingredients": str(ingredient.pk),
                        "site": "Inner left forearm",
                        "given_at": NOW.strftime("%Y-%m-%dT%H:%M"),
                        "late_entry_reason": "",
                        "submission_token": str(uuid.uuid4()),
                    },
                ),
                lambda p=p: clients["invite"].post(reverse("treatments:portal_invite", kwargs=p)),
                lambda p=p: clients["history"].post(
                    reverse("patients:history_new", kwargs=p), history_answers
                ),
            ]
        )
        for outcome in outcomes:
            assert outcome.error is None, outcome.error
            status = getattr(outcome.result, "status_code", 302)  # a service: done
            # Done (302), or, arriving after the merge, told where the record went (409).
            assert status in (302, 409), (status, main_of(outcome.result))
        assert outcomes[0].result.status_code == 302
    merged = Patient.objects.filter(pk__in=[d.pk for d in duplicates], merged_into__isnull=False)
    assert merged.count() == ROUNDS
    assert {d.pk: rows_left_on(d) for d in duplicates} == {d.pk: {} for d in duplicates}


def test_both_records_invited_while_they_are_merged_give_one_account_and_no_error(
    pair: tuple[Patient, Patient], practitioner: User, receptionist: User
) -> None:
    """Whichever goes first: the merge refused (two accounts), or one
    invitation refused with a sentence; never two accounts on one record, nor
    one left on the merged record."""
    for _round in range(ROUNDS):
        duplicate, survivor = (
            PatientFactory(email=f"{who}.{uuid.uuid4().hex[:6]}@example.org")
            for who in ("dup", "stays")
        )
        outcomes = _at_once(
            [
                lambda d=duplicate, s=survivor: patient_merge(
                    duplicate=d, survivor=s, merged_by=practitioner
                ),
                lambda d=duplicate: portal_invite(patient=d, invited_by=practitioner),
                lambda s=survivor: portal_invite(patient=s, invited_by=practitioner),
            ]
        )
        merge, *invites = outcomes
        if merge.error is not None:
            # Both invited first: the merge is refused with its reason, and
            # each record keeps its own account.
            assert isinstance(merge.error, PatientMergeRefusedError), merge.error
            assert [i.error for i in invites] == [None, None]
            holders = {duplicate.pk, survivor.pk}
        else:
            # Merged: whatever invitation came too late is refused with a
            # sentence, and one account is left, on the record that stays.
            for invite in invites:
                assert invite.error is None or isinstance(invite.error, PortalInviteRefusedError), (
                    invite.error
                )
            holders = {survivor.pk}
        assert (
            set(
                PortalAccount.objects.filter(patient__in=[duplicate, survivor]).values_list(
                    "patient_id", flat=True
                )
            )
            == holders
        )
    assert not PortalAccount.objects.filter(patient__merged_into__isnull=False).exists()

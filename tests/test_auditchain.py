"""The audit trail's hash chain: sealing, and finding the first broken link."""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.test import override_settings

from clinic.audit import audit_log
from clinic.auditchain import (
    _SEALER_LOCK,
    GENESIS,
    SEAL_GRACE,
    audit_chain_verify,
    audit_seal,
    event_content,
    link_hash,
)
from clinic.dbroles import connected_as_owner
from clinic.models import AuditAction, AuditEvent, AuditSeal

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def events(count: int) -> list[AuditEvent]:
    return [
        audit_log(actor=None, action=AuditAction.LOGIN_FAILED, actor_label=f"someone-{n}")
        for n in range(count)
    ]


def owner_sql(sql: str, params: list[object], *, lift: str = "") -> None:
    """Run `sql` as the owner role, with table `lift`'s triggers disabled for it:
    what a database owner tampering with the trail would do."""
    with connected_as_owner() as owner, owner.cursor() as cursor:
        if lift:
            cursor.execute(f"ALTER TABLE {lift} DISABLE TRIGGER USER")
        cursor.execute(sql, params)
        if lift:
            cursor.execute(f"ALTER TABLE {lift} ENABLE TRIGGER USER")


@pytest.mark.django_db
def test_sealing_links_every_event_once_in_order() -> None:
    with time_machine.travel(T0, tick=False):
        written = events(3)
        assert audit_seal() == 3
        assert audit_seal() == 0
    links = list(AuditSeal.objects.order_by("seq"))
    assert [link.event_id for link in links] == [event.pk for event in written]
    previous = GENESIS
    for link in links:
        assert link.chain_hash == link_hash(previous, link.event_hash)
        previous = link.chain_hash
    report = audit_chain_verify(now=T0)
    assert report.fault is None
    assert report.links == 3
    assert report.head == links[-1].chain_hash


@pytest.mark.django_db
def test_sealing_batches_and_carries_the_chain_on() -> None:
    with time_machine.travel(T0, tick=False):
        events(5)
        assert audit_seal(batch=2) == 2
        assert audit_seal(batch=2) == 2
        events(1)
        assert audit_seal(batch=10) == 2
    assert audit_chain_verify(now=T0).fault is None


@pytest.mark.django_db(transaction=True)
def test_an_event_changed_by_the_owner_is_named() -> None:
    with time_machine.travel(T0, tick=False):
        written = events(4)
        audit_seal()
    owner_sql(
        "UPDATE clinic_auditevent SET actor_label = 'nobody' WHERE id = %s",
        [written[2].pk],
        lift="clinic_auditevent",
    )
    fault = audit_chain_verify(now=T0).fault
    assert fault is not None
    assert fault.event_id == written[2].pk
    assert "changed" in fault.problem
    with pytest.raises(CommandError, match=f"audit event {written[2].pk}: the event was changed"):
        call_command("audit_verify", "--no-seal")


@pytest.mark.django_db(transaction=True)
def test_an_event_deleted_by_the_owner_is_named() -> None:
    with time_machine.travel(T0, tick=False):
        written = events(3)
        audit_seal()
    owner_sql(
        "DELETE FROM clinic_auditevent WHERE id = %s", [written[1].pk], lift="clinic_auditevent"
    )
    fault = audit_chain_verify(now=T0).fault
    assert fault is not None
    assert (fault.seq, fault.event_id) == (2, written[1].pk)
    assert "the event does not exist" in fault.problem


@pytest.mark.django_db(transaction=True)
def test_a_removed_link_breaks_the_chain_at_the_next_one() -> None:
    with time_machine.travel(T0, tick=False):
        written = events(3)
        audit_seal()
    owner_sql(
        "DELETE FROM clinic_auditseal WHERE event_id = %s", [written[1].pk], lift="clinic_auditseal"
    )
    fault = audit_chain_verify(now=T0).fault
    assert fault is not None
    assert (fault.seq, fault.event_id) == (3, written[2].pk)
    assert "link 2 was due here" in fault.problem


@pytest.mark.django_db(transaction=True)
def test_an_event_slipped_in_afterwards_is_reported_unsealed() -> None:
    with time_machine.travel(T0, tick=False):
        events(2)
        audit_seal()
    # Written much later with a date in the past: beyond what the sealer looks at.
    owner_sql(
        "INSERT INTO clinic_auditevent (at, actor_label, roles, action, object_type, object_id,"
        " changed_fields, request_id) VALUES (%s, 'ghost', '', 'view', '', '', '[]', '')",
        [T0 - timedelta(days=30)],
    )
    with time_machine.travel(T0 + timedelta(minutes=5), tick=False):
        assert audit_seal() == 0
    ghost = AuditEvent.objects.get(actor_label="ghost")
    fault = audit_chain_verify(now=T0 + SEAL_GRACE).fault
    assert fault is not None
    assert (fault.seq, fault.event_id) == (None, ghost.pk)
    assert "never sealed" in fault.problem


@pytest.mark.django_db
def test_an_event_not_yet_sealed_within_the_grace_is_no_fault() -> None:
    with time_machine.travel(T0, tick=False):
        events(1)
    assert audit_chain_verify(now=T0 + SEAL_GRACE - timedelta(seconds=1)).fault is None
    assert audit_chain_verify(now=T0 + SEAL_GRACE + timedelta(seconds=1)).fault is not None


@pytest.mark.django_db(transaction=True)
def test_two_sealers_at_once_make_one_chain() -> None:
    with time_machine.travel(T0, tick=False):
        events(40)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def seal() -> None:
        try:
            barrier.wait(timeout=10)
            audit_seal(batch=15)
            audit_seal(batch=15)
        except BaseException as error:
            errors.append(error)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=seal) for _ in range(2)]
    with time_machine.travel(T0 + timedelta(minutes=1), tick=False):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert AuditSeal.objects.count() == 40
    assert audit_chain_verify(now=T0).fault is None


@pytest.mark.django_db
def test_a_backlog_older_than_the_grace_is_sealed_to_the_end() -> None:
    """The first sealing after an upgrade finds years of events: all get sealed."""
    with time_machine.travel(T0 - timedelta(days=400), tick=False):
        events(3)
    with time_machine.travel(T0, tick=False):
        events(2)
        assert audit_seal(batch=2) == 2
        assert audit_seal(batch=2) == 2
        assert audit_seal(batch=2) == 1
    assert audit_chain_verify(now=T0).fault is None


@pytest.mark.django_db(transaction=True)
def test_the_owner_making_the_chain_again_is_found_without_the_key() -> None:
    """Rewriting an event and recomputing every later link, as a database owner
    could, gives links that do not verify: the key is not in the database."""
    with time_machine.travel(T0, tick=False):
        written = events(3)
        audit_seal()
    owner_sql(
        "UPDATE clinic_auditevent SET ip = '10.0.0.9' WHERE id = %s",
        [written[0].pk],
        lift="clinic_auditevent",
    )
    previous = GENESIS
    for link in AuditSeal.objects.order_by("seq"):
        event = AuditEvent.objects.get(pk=link.event_id)
        new_event_hash = hashlib.sha256(event_content(event)).hexdigest()
        previous = hashlib.sha256(f"{previous}{new_event_hash}".encode()).hexdigest()
        owner_sql(
            "UPDATE clinic_auditseal SET event_hash = %s, chain_hash = %s WHERE seq = %s",
            [new_event_hash, previous, link.seq],
            lift="clinic_auditseal",
        )
    fault = audit_chain_verify(now=T0).fault
    assert fault is not None
    assert fault.event_id == written[0].pk
    assert "does not follow" in fault.problem


@pytest.mark.django_db(transaction=True)
def test_links_cut_from_the_end_are_found_by_the_head_kept_outside(tmp_path: Path) -> None:
    head = tmp_path / "audit-chain-head"
    with override_settings(AUDIT_CHAIN_HEAD_FILE=str(head)):
        with time_machine.travel(T0, tick=False):
            written = events(4)
            audit_seal()
        last = AuditSeal.objects.order_by("-seq").first()
        assert last is not None
        assert head.read_text().split() == [str(last.seq), last.chain_hash]
        assert audit_chain_verify(now=T0).fault is None
        for event in written[2:]:
            owner_sql(
                "DELETE FROM clinic_auditseal WHERE event_id = %s",
                [event.pk],
                lift="clinic_auditseal",
            )
            owner_sql(
                "DELETE FROM clinic_auditevent WHERE id = %s", [event.pk], lift="clinic_auditevent"
            )
        fault = audit_chain_verify(now=T0).fault
        assert fault is not None
        assert fault.seq == last.seq
        assert "removed from the end" in fault.problem


@pytest.mark.django_db
def test_a_future_dated_event_does_not_stop_the_sealing() -> None:
    """One row dated 2099 once stopped every later event from being sealed."""
    with time_machine.travel(T0, tick=False):
        events(1)
    with time_machine.travel(datetime(2099, 1, 1, tzinfo=UTC), tick=False):
        audit_log(actor=None, action=AuditAction.VIEW, actor_label="from 2099")
    with time_machine.travel(T0, tick=False):
        assert audit_seal() == 2
        later = events(2)
        assert audit_seal() == 2
    assert set(AuditSeal.objects.values_list("event_id", flat=True)) >= {e.pk for e in later}
    # The row itself is named: dated after it was sealed.
    fault = audit_chain_verify(now=T0 + SEAL_GRACE * 2).fault
    assert fault is not None
    assert fault.event_id == AuditEvent.objects.get(actor_label="from 2099").pk
    assert "after it was sealed" in fault.problem


@pytest.mark.django_db
def test_the_command_seals_then_reports_an_intact_trail(capsys: pytest.CaptureFixture[str]) -> None:
    with time_machine.travel(T0, tick=False):
        events(2)
        call_command("audit_verify")
    assert "intact: 2 links" in capsys.readouterr().out


def app_insert_link(seq: int, event_id: int) -> None:
    """Insert a link as the application role, as the clinic connects, with
    hashes of its own making."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO clinic_auditseal (seq, event_hash, chain_hash, sealed_at, event_id)"
            " VALUES (%s, %s, %s, now(), %s)",
            [seq, "e" * 64, "f" * 64, event_id],
        )


def refused_link(seq: int, event_id: int, match: str) -> None:
    with pytest.raises(DatabaseError, match=match) as refusal:
        app_insert_link(seq, event_id)
    assert isinstance(refusal.value.__cause__, psycopg.errors.CheckViolation)


@pytest.mark.django_db
def test_the_application_role_may_add_only_the_next_link_for_an_unsealed_event() -> None:
    with time_machine.travel(T0, tick=False):
        written = events(2)
        audit_seal()
        pending = events(1)[0]
    # A link out of line: before the first, far ahead, or a number again.
    refused_link(-1, pending.pk, "link -1 refused: the next link is 3")
    refused_link(0, pending.pk, "link 0 refused: the next link is 3")
    refused_link(9_000_000_000, pending.pk, "link 9000000000 refused: the next link is 3")
    refused_link(2, pending.pk, "link 2 refused: the next link is 3")
    # For an event not written yet, or one already sealed.
    refused_link(3, pending.pk + 1, f"audit event {pending.pk + 1} does not exist")
    refused_link(3, written[0].pk, f"audit event {written[0].pk} is already sealed")
    assert AuditSeal.objects.count() == 2
    with time_machine.travel(T0, tick=False):
        assert audit_seal() == 1
    assert list(AuditSeal.objects.values_list("seq", "event_id")) == [
        (1, written[0].pk),
        (2, written[1].pk),
        (3, pending.pk),
    ]
    assert audit_chain_verify(now=T0 + SEAL_GRACE * 5).fault is None


@pytest.mark.django_db
def test_the_trigger_takes_the_sealers_lock() -> None:
    """Two writers of links wait for each other, the sealer included."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT prosrc FROM pg_proc WHERE proname = 'clinic_auditseal_next_link_only'"
        )
        (source,) = cursor.fetchone()
    assert f"pg_advisory_xact_lock({_SEALER_LOCK})" in source


@pytest.mark.django_db
def test_the_first_link_must_be_link_one() -> None:
    with time_machine.travel(T0, tick=False):
        event = events(1)[0]
    refused_link(2, event.pk, "link 2 refused: the next link is 1")
    with time_machine.travel(T0, tick=False):
        assert audit_seal() == 1
    assert list(AuditSeal.objects.values_list("seq", flat=True)) == [1]


@pytest.mark.django_db
def test_a_next_link_made_without_the_key_is_named() -> None:
    """The one link the trigger lets the application role add, with hashes of
    its own making, is named by the check; sealing goes on after it."""
    with time_machine.travel(T0, tick=False):
        events(2)
        audit_seal()
        forged_for = events(1)[0]
        app_insert_link(3, forged_for.pk)
        events(1)
        assert audit_seal() == 1
    fault = audit_chain_verify(now=T0).fault
    assert fault is not None
    assert (fault.seq, fault.event_id) == (3, forged_for.pk)
    assert "does not follow" in fault.problem


@pytest.mark.django_db(transaction=True)
def test_a_link_numbered_before_the_chain_by_the_owner_is_named() -> None:
    """A link numbered -1 for an event yet to be written kept that event from
    being sealed and out of every check: it was then deleted unnoticed."""
    with time_machine.travel(T0, tick=False):
        first = events(1)[0]
        audit_seal()
    owner_sql(
        "INSERT INTO clinic_auditseal (seq, event_hash, chain_hash, sealed_at, event_id)"
        " VALUES (-1, 'x', 'y', now(), %s)",
        [first.pk + 1],
        lift="clinic_auditseal",
    )
    with time_machine.travel(T0, tick=False):
        victim = audit_log(actor=None, action=AuditAction.DELETE, actor_label="the deed")
        audit_log(actor=None, action=AuditAction.VIEW, actor_label="after")
        assert victim.pk == first.pk + 1
        assert audit_seal() == 1
    owner_sql("DELETE FROM clinic_auditevent WHERE id = %s", [victim.pk], lift="clinic_auditevent")
    fault = audit_chain_verify(now=T0 + SEAL_GRACE * 5).fault
    assert fault is not None
    assert (fault.seq, fault.event_id) == (-1, victim.pk)
    assert "link 1 was due here" in fault.problem
    with pytest.raises(CommandError, match=f"link -1, audit event {victim.pk}: the links are"):
        call_command("audit_verify", "--no-seal")


@pytest.mark.django_db(transaction=True)
def test_a_link_numbered_far_ahead_by_the_owner_is_named_not_the_links_after_it() -> None:
    """Sealing goes on from a forged head; the check names the forged link,
    not the genuine one made after it."""
    with time_machine.travel(T0, tick=False):
        events(3)
        audit_seal()
        pending = events(1)[0]
    owner_sql(
        "INSERT INTO clinic_auditseal (seq, event_hash, chain_hash, sealed_at, event_id)"
        " VALUES (9000000000, %s, %s, now(), %s)",
        ["e" * 64, "f" * 64, pending.pk],
        lift="clinic_auditseal",
    )
    with time_machine.travel(T0, tick=False):
        later = events(1)[0]
        assert audit_seal() == 1
    assert AuditSeal.objects.get(event_id=later.pk).seq == 9_000_000_001
    report = audit_chain_verify(now=T0)
    assert report.fault is not None
    assert (report.fault.seq, report.fault.event_id) == (9_000_000_000, pending.pk)
    assert "link 4 was due here" in report.fault.problem
    assert report.links == 4

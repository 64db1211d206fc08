"""The audit trail's hash chain: sealing, and finding the first broken link."""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import close_old_connections, connection
from django.test import override_settings

from clinic.audit import audit_log
from clinic.auditchain import (
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
    assert (fault.event_id, fault.problem) == (written[1].pk, "the event was deleted")


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
    assert fault.event_id == written[2].pk
    assert "does not follow" in fault.problem


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

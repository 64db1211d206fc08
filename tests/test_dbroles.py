"""The application's database role owns nothing and cannot erase the trail.

The tests connect as the application role, as the clinic does; the owner role
made and migrated the test database (tests/conftest.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import DatabaseError, connection, transaction

from clinic.audit import audit_log
from clinic.dbroles import (
    AUDIT_TABLES,
    FUNCTION_SEARCH_PATH_SETTING,
    connected_as_owner,
    truncate_guarded_tables,
)
from clinic.models import AuditAction, AuditEvent
from patients.models import Patient
from tests.factories import PatientFactory, UserFactory
from treatments.models import Room

pytestmark = pytest.mark.django_db


def refused(sql: str, match: str) -> None:
    with (
        pytest.raises(DatabaseError, match=match),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)


def test_the_application_role_is_no_superuser_and_owns_nothing() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication "
            "FROM pg_roles WHERE rolname = current_user"
        )
        assert cursor.fetchone() == (False, False, False, False, False)
        cursor.execute(
            "SELECT count(*) FROM pg_class WHERE relowner = "
            "(SELECT oid FROM pg_roles WHERE rolname = current_user)"
        )
        assert cursor.fetchone() == (0,)
        cursor.execute(
            "SELECT datdba <> (SELECT oid FROM pg_roles WHERE rolname = current_user) "
            "FROM pg_database WHERE datname = current_database()"
        )
        assert cursor.fetchone() == (True,)


@pytest.mark.parametrize(
    ("sql", "match"),
    [
        ("TRUNCATE clinic_auditevent", "permission denied"),
        ("TRUNCATE clinic_auditseal", "permission denied"),
        ("TRUNCATE patients_patient CASCADE", "permission denied"),
        ("TRUNCATE treatments_sessionrecord CASCADE", "permission denied"),
        ("UPDATE clinic_auditevent SET actor_label = 'someone else'", "permission denied"),
        ("DELETE FROM clinic_auditevent", "permission denied"),
        ("UPDATE clinic_auditseal SET event_hash = ''", "permission denied"),
        ("DELETE FROM clinic_auditseal", "permission denied"),
        ("DELETE FROM patients_medicalhistory", "permission denied"),
        ("DELETE FROM treatments_sessionrecord", "permission denied"),
        ("DELETE FROM consent_signedconsent", "permission denied"),
        (
            "ALTER TABLE clinic_auditevent DISABLE TRIGGER clinic_auditevent_append_only",
            "must be owner",
        ),
        ("ALTER TABLE clinic_auditevent DISABLE TRIGGER ALL", "must be owner"),
        ("ALTER TABLE treatments_sessionrecord DISABLE TRIGGER USER", "must be owner"),
        (
            "DROP TRIGGER clinic_auditevent_append_only ON clinic_auditevent",
            "must be owner",
        ),
        ("ALTER TABLE clinic_auditevent ADD COLUMN note text", "must be owner"),
        ("DROP TABLE clinic_auditevent", "must be owner"),
        ("SET session_replication_role = replica", "permission denied to set parameter"),
        ("SET LOCAL session_replication_role = replica", "permission denied to set parameter"),
        ("CREATE TABLE audit_copy (id int)", "permission denied for schema public"),
        (
            "CREATE FUNCTION clinic_noop() RETURNS trigger LANGUAGE plpgsql "
            "AS 'BEGIN RETURN NULL; END'",
            "permission denied for schema public",
        ),
        ("CREATE TEMP TABLE patients_patient (id int)", "permission denied"),
        ("ALTER ROLE CURRENT_USER SUPERUSER", "must be superuser|permission denied"),
        ("ALTER ROLE CURRENT_USER BYPASSRLS", "must be superuser|permission denied"),
    ],
)
def test_the_application_role_is_refused(sql: str, match: str) -> None:
    audit_log(actor=UserFactory(), action=AuditAction.VIEW, object_type="route")
    refused(sql, match)


def test_the_application_role_keeps_rows_of_ordinary_tables() -> None:
    """It still does its work: read, add, change and remove ordinary rows."""
    patient = PatientFactory()
    patient.first_name = "Changed"
    patient.save(update_fields=["first_name"])
    assert Patient.objects.get(pk=patient.pk).first_name == "Changed"
    room = Room.objects.create(name="Room to remove")
    Room.objects.filter(pk=room.pk).delete()
    assert not Room.objects.filter(pk=room.pk).exists()
    event = audit_log(actor=None, action=AuditAction.LOGIN_FAILED, actor_label="someone")
    assert AuditEvent.objects.get(pk=event.pk).actor_label == "someone"


def test_every_append_only_table_refuses_truncate() -> None:
    """A table whose rows the database refuses to delete also refuses TRUNCATE."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT event_object_table FROM information_schema.triggers "
            "WHERE event_manipulation = 'DELETE' AND action_timing = 'BEFORE'"
        )
        append_only = {row[0] for row in cursor.fetchall()}
    guarded = {table for table, _ in truncate_guarded_tables(connection)}
    assert append_only
    assert set(AUDIT_TABLES) <= guarded
    assert append_only - guarded == set()


@pytest.mark.django_db(transaction=True)
def test_even_the_owner_cannot_truncate_an_append_only_table() -> None:
    with connected_as_owner() as owner:
        tables = [table for table, _ in truncate_guarded_tables(owner)]
        assert "clinic_auditevent" in tables
        for table in tables:
            with (
                pytest.raises(DatabaseError, match="append-only: TRUNCATE refused"),
                transaction.atomic(),
                owner.cursor() as cursor,
            ):
                cursor.execute(f"TRUNCATE {owner.ops.quote_name(table)} CASCADE")


@pytest.mark.django_db(transaction=True)
def test_the_owner_too_is_refused_changes_to_the_trail_by_its_trigger() -> None:
    event = audit_log(actor=None, action=AuditAction.LOGIN_FAILED, actor_label="someone")
    with connected_as_owner() as owner:
        for sql in (
            "UPDATE clinic_auditevent SET actor_label = 'x' WHERE id = %s",
            "DELETE FROM clinic_auditevent WHERE id = %s",
        ):
            with (
                pytest.raises(DatabaseError, match="append-only"),
                transaction.atomic(),
                owner.cursor() as cursor,
            ):
                cursor.execute(sql, [event.pk])


def test_every_function_of_the_schema_has_a_fixed_search_path() -> None:
    """A temporary table named like a real one can then never fool a trigger."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT p.proname FROM pg_proc p
            WHERE p.pronamespace = 'public'::regnamespace
              AND NOT EXISTS (
                  SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e'
              )
              AND NOT (coalesce(p.proconfig, '{}') @> ARRAY[%s])
            """,
            [FUNCTION_SEARCH_PATH_SETTING],
        )
        assert cursor.fetchall() == []
        cursor.execute(
            "SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace "
            "AND proname = 'patients_merge_relink'"
        )
        assert cursor.fetchone() == (1,)


def test_a_merged_record_stays_merged_and_only_follows_its_chain() -> None:
    """Marking a record merged, moving signed rows and clearing the mark again
    would leave no trace: the mark is set once and only follows a chain."""
    practitioner = UserFactory()
    a, b, c, stranger = (PatientFactory() for _ in range(4))
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    Patient.objects.filter(pk=a.pk).update(merged_into=b, merged_at=now, merged_by=practitioner)
    for assignments, match in (
        ({"merged_into": None}, "stays merged"),
        ({"merged_at": None}, "stays merged"),
        ({"merged_at": now + timedelta(days=1)}, "stays merged"),
        ({"merged_into": stranger}, "only follows"),
    ):
        with pytest.raises(DatabaseError, match=match), transaction.atomic():
            Patient.objects.filter(pk=a.pk).update(**assignments)
    # B merged into C: A follows to C.
    Patient.objects.filter(pk=b.pk).update(merged_into=c, merged_at=now, merged_by=practitioner)
    Patient.objects.filter(pk=a.pk).update(merged_into=c)
    assert Patient.objects.get(pk=a.pk).merged_into_id == c.pk

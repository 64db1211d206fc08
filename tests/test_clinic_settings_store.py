"""The clinic's settings in the database: the migration's first row, the
newest version is the clinic's, versions are append-only, and `current()`
reads once per scope and never serves values older than the last save."""

from __future__ import annotations

from datetime import time

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.utils import DatabaseError
from django.test.utils import CaptureQueriesContext

from clinic import clinic_settings
from clinic.models import ClinicSettings

pytestmark = pytest.mark.django_db


def newest() -> ClinicSettings:
    row = ClinicSettings.objects.order_by("-id").first()
    assert row is not None
    return row


def add_version(**changes: object) -> ClinicSettings:
    """A new version: the newest with `changes` (the store's own INSERT)."""
    row = newest()
    row.pk = None
    row.reason = "test"
    for name, value in changes.items():
        setattr(row, name, value)
    row.save(force_insert=True)
    return row


def test_migration_seeds_the_first_version_with_the_defaults() -> None:
    first = ClinicSettings.objects.order_by("id").first()
    assert first is not None
    assert first.changed_by is None
    values = clinic_settings.values_of(first)
    assert values.medical_history_valid_days == 365
    assert values.allergy_test_valid_months == 6
    assert values.reminder_lead_hours == (48, 2)
    assert (values.quiet_hours_start, values.quiet_hours_end) == (time(21), time(8))
    assert values.adult_record_retention_years == 8
    assert values.child_record_retention_until_age == 25
    assert values.opening_hours[0] == (time(8), time(19))
    assert values.opening_hours[6] is None


def test_current_is_the_newest_version() -> None:
    add_version(clinic_name="Harley Skin", medical_history_valid_days=90)
    values = clinic_settings.current()
    assert values.clinic_name == "Harley Skin"
    assert values.medical_history_valid_days == 90


def test_versions_refuse_update_and_delete() -> None:
    row = newest()
    with pytest.raises(DatabaseError, match=r"append-only|permission denied"), transaction.atomic():
        ClinicSettings.objects.filter(pk=row.pk).update(clinic_name="Changed")
    with pytest.raises(DatabaseError, match=r"append-only|permission denied"), transaction.atomic():
        ClinicSettings.objects.filter(pk=row.pk).delete()
    assert newest().clinic_name == row.clinic_name


def test_a_scope_reads_once_and_outside_a_scope_every_call_reads() -> None:
    with CaptureQueriesContext(connection) as reads, clinic_settings.scope():
        for _ in range(5):
            clinic_settings.current()
    assert len(reads) == 1
    with CaptureQueriesContext(connection) as reads:
        clinic_settings.current()
        clinic_settings.current()
    assert len(reads) == 2


def test_a_task_outside_a_scope_sees_a_save_at_once() -> None:
    assert clinic_settings.current().clinic_name != "Renamed"
    add_version(clinic_name="Renamed")
    assert clinic_settings.current().clinic_name == "Renamed"


@pytest.mark.parametrize(
    ("changes", "constraint"),
    [
        ({"medical_history_valid_days": 29}, "medical_history_valid_days_range"),
        ({"medical_history_valid_days": 366}, "medical_history_valid_days_range"),
        ({"allergy_test_valid_months": 0}, "allergy_test_valid_months_range"),
        ({"allergy_test_valid_months": 7}, "allergy_test_valid_months_range"),
        ({"default_session_minutes": 5}, "default_session_minutes_range"),
        ({"default_session_minutes": 245}, "default_session_minutes_range"),
        ({"default_session_minutes": 47}, "session_minutes_step"),
        ({"adult_record_retention_years": 7}, "adult_record_retention_years_range"),
        ({"adult_record_retention_years": 31}, "adult_record_retention_years_range"),
        ({"child_record_retention_until_age": 24}, "child_record_retention_until_age_range"),
        ({"child_record_retention_until_age": 41}, "child_record_retention_until_age_range"),
        ({"reminder_first_hours": 0}, "reminders_ordered_in_range"),
        ({"reminder_first_hours": 169}, "reminders_ordered_in_range"),
        ({"reminder_second_hours": 48}, "reminders_ordered_in_range"),
        ({"reminder_second_hours": 0}, "reminders_ordered_in_range"),
        ({"reminder_second_hours": None, "reminder_third_hours": 1}, "reminders_ordered_in_range"),
        ({"reminder_third_hours": 2}, "reminders_ordered_in_range"),
        ({"quiet_hours_start": time(8)}, "quiet_hours_differ"),
        ({"quiet_hours_start": time(12)}, "quiet_hours_overnight"),
        ({"quiet_hours_end": time(5, 59)}, "quiet_hours_overnight"),
        ({"monday_closes": time(8)}, "monday_closes_after_opens"),
        ({"monday_closes": None}, "monday_closes_after_opens"),
        ({"sunday_opens": time(9)}, "sunday_closes_after_opens"),
        ({"clinic_name": ""}, "clinic_name_given"),
    ],
)
def test_the_database_refuses_values_outside_the_bounds(
    changes: dict[str, object], constraint: str
) -> None:
    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        add_version(**changes)


@pytest.mark.parametrize(
    "changes",
    [
        {"medical_history_valid_days": 30},
        {"medical_history_valid_days": 365},
        {"allergy_test_valid_months": 1},
        {"default_session_minutes": 10},
        {"default_session_minutes": 240},
        {"adult_record_retention_years": 30},
        {"child_record_retention_until_age": 40},
        {"reminder_first_hours": 168, "reminder_second_hours": 2, "reminder_third_hours": 1},
        {"reminder_first_hours": 1, "reminder_second_hours": None},
        {"sunday_opens": time(10), "sunday_closes": time(10, 5)},
        {"quiet_hours_start": time(19), "quiet_hours_end": time(6)},
        {"quiet_hours_start": time(23), "quiet_hours_end": time(9)},
    ],
)
def test_the_database_accepts_values_at_the_bounds(changes: dict[str, object]) -> None:
    add_version(**changes)
    for name, value in changes.items():
        assert getattr(newest(), name) == value

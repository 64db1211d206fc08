"""The benchmark commands touch only their own rows and run one after another
in one database (issue 14): the reminder benchmark sends its own reminders
and no other due one, and each command can follow itself and the others."""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.apps import apps
from django.core.management import CommandError, call_command

from clinic.dbroles import connected_as_owner
from tests.factories import PatientFactory
from tests.treatments.test_reminders_support import Clinic, clinic  # noqa: F401 (fixture)
from treatments.models import (
    AftercareSheet,
    Booking,
    Reminder,
    ReminderChannel,
    ReminderKind,
    ReminderStatus,
    SessionRecord,
)

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def _rows() -> dict[str, int]:
    """How many rows each table of the clinic holds."""
    return {
        model._meta.label: model.objects.count()
        for model in apps.get_models()
        if not model._meta.proxy and model._meta.managed
    }


def _due_reminder(c: Clinic) -> Reminder:
    """A real patient's session reminder, due since yesterday."""
    patient = PatientFactory(reminder_channel="email", consents_to_messages=True)
    starts = NOW + timedelta(days=1)
    booking = Booking.objects.create(
        patient=patient,
        practitioner=c.practitioner,
        room=c.room,
        protocol=c.protocol,
        starts_at=starts,
        ends_at=starts + timedelta(minutes=10),
        created_by=c.receptionist,
    )
    return Reminder.objects.create(
        kind=ReminderKind.SESSION,
        channel=ReminderChannel.EMAIL,
        patient=patient,
        booking=booking,
        lead_minutes=48 * 60,
        slot_starts_at=starts,
        intended_at=NOW - timedelta(days=1),
        due_at=NOW - timedelta(days=1),
    )


def _run(name: str, *args: str) -> str:
    out = io.StringIO()
    call_command(name, *args, stdout=out)
    return out.getvalue()


def test_the_reminder_benchmark_sends_its_own_reminders_only_and_runs_twice(
    clinic: Clinic,  # noqa: F811 (the fixture)
) -> None:
    waiting = _due_reminder(clinic)
    before = _rows()
    with time_machine.travel(NOW, tick=True):
        args = ("--reminders", "30", "--batch", "10", "--backend", "null")
        first = _run("benchmark_reminders", *args)
        second = _run("benchmark_reminders", *args)
    for output in (first, second):
        assert "sent: 30, still planned: 0" in output
        assert "Removed every row the benchmark made." in output
    waiting.refresh_from_db()
    assert waiting.status == ReminderStatus.PLANNED
    assert waiting.attempts == 0
    assert _rows() == before


@pytest.mark.django_db
def test_the_reminder_benchmark_run_in_the_night_sends_its_reminders_all_the_same() -> None:
    # 23:30 in London, in the clinic's quiet hours (21:00-08:00 by default),
    # which would hold every message sent at that moment.
    with time_machine.travel(datetime(2026, 11, 24, 23, 30, tzinfo=UTC), tick=True):
        output = _run(
            "benchmark_reminders", "--reminders", "20", "--batch", "10", "--backend", "null"
        )
    assert "sent: 20, still planned: 0" in output


@pytest.mark.django_db
def test_the_recall_benchmark_rolls_back_and_runs_after_the_reminder_one() -> None:
    # The reminder benchmark once used the same aftercare sheet title.
    AftercareSheet.objects.create(
        title="Benchmark aftercare",
        introduction="-",
        do_advice="-",
        avoid_advice="-",
        warning_signs="-",
    )
    before = _rows()
    with time_machine.travel(NOW, tick=True):
        for _ in range(2):
            output = _run(
                "benchmark_recall", "--patients", "40", "--bookings", "120",
                "--measured-every", "5", "--repeat", "2",
            )  # fmt: skip
            assert "recall page (GET, whole request)" in output
            assert "Rolled back" in output
    assert _rows() == before


@pytest.mark.skipif(
    not os.environ.get("SLOW_BENCHMARK_TESTS"),
    reason="renders 200 PDFs with a worker process (2-3 minutes): SLOW_BENCHMARK_TESTS=1 runs it",
)
@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_the_aftercare_benchmark_uses_its_earlier_sessions_again_and_removes_its_documents() -> (
    None
):
    """Session records are append-only: a second run adds none, and neither run
    leaves a document."""
    with time_machine.travel(NOW, tick=True):
        args = ("--sheets", "100", "--workers", "1", "--timeout", "240")
        first = _run("benchmark_aftercare", *args)
        after_first = _rows()
        second = _run("benchmark_aftercare", *args)
    assert "100 of 100 sheets" in first
    assert "100 of 100 sheets" in second
    assert "(0 failed)" in second
    assert "(100 sessions of an earlier run used again)" in second
    assert _rows() == after_first
    assert after_first["treatments.PatientDocument"] == 0
    assert SessionRecord.objects.count() == 100


@pytest.mark.django_db(transaction=True)
def test_the_follow_up_benchmark_takes_its_size_and_leaves_no_row() -> None:
    before = _rows()
    # It seeds as benchmark_audit does: temporary tables and the bookings'
    # no-overlap constraints set aside, which only the owner role may do.
    with time_machine.travel(NOW, tick=True), connected_as_owner():
        output = _run(
            "benchmark_followups", "--patients", "300", "--bookings", "1440",
            "--repeat", "2", "--profile",
        )  # fmt: skip
    # Three in five patients have a course; two reminders a booking.
    assert "Seeded 300 patients, 180 courses, 1,440 bookings and 2,880 reminders" in output
    for label in ("follow-up list", "follow-up list, page 999999999 (the last)"):
        assert f"| {label} | " in output
    assert "| follow-up list, courses_page=x (400) | " in output
    assert "Process (CPU) time" in output
    assert "URLs reversed: " in output
    assert "--- courses to book" in output
    assert "Rolled back" in output
    assert _rows() == before


@pytest.mark.django_db
def test_the_follow_up_benchmark_refuses_a_register_too_small_to_run_a_course() -> None:
    with pytest.raises(CommandError, match="--patients at least 100"):
        _run("benchmark_followups", "--patients", "10")

"""Reminders: planning with the booking, quiet hours, moves and cancels,
dispatch with retries, the other kinds, and reception's pages."""

from __future__ import annotations

import http.client
import json
import ssl
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.core import mail
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from clinic.models import User
from tests.clinic_settings_support import settings_saved
from tests.conftest import sign_in
from tests.factories import IngredientFactory, PatientFactory
from tests.treatments import test_reminders_support as support
from tests.treatments.test_reminders_support import (
    LONDON,
    Clinic,
    RecordingBackend,
    book,
    cancel,
    local,
    mark,
    move,
)
from treatments.models import (
    AllergyTest,
    BookingStatus,
    CourseStatus,
    Interval,
    Reminder,
    ReminderChannel,
    ReminderKind,
    ReminderStatus,
    TreatmentCourse,
)
from treatments.selectors import reminders as reminder_selectors
from treatments.services.reminders import (
    MAX_ATTEMPTS,
    backoff,
    dispatch,
    reminder_cancel_allergy_reading,
    reminder_plan_allergy_reading,
    reminders_dispatch_batch,
    reminders_plan_course,
    reminders_plan_for_booking,
)
from treatments.sms import (
    ConsoleBackend,
    FileBackend,
    HttpBackend,
    PermanentSMSError,
    TransientSMSError,
)

clinic = support.clinic

# A Monday in November: London on GMT, clinic open.
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
THURSDAY = date(2026, 11, 5)


@pytest.fixture
def frozen() -> Iterator[time_machine.Coordinates]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def rows(booking: Any) -> list[Reminder]:
    return list(Reminder.objects.filter(booking=booking).order_by("-lead_minutes", "id"))


# --- Planning -------------------------------------------------------------------------------


def test_a_booking_plans_one_reminder_per_lead_time_by_the_patients_channel(
    clinic: Clinic, frozen: time_machine.Coordinates
) -> None:
    booking = book(clinic, local(THURSDAY, 10))
    planned = rows(booking)
    assert [(r.lead_minutes, r.channel, r.status) for r in planned] == [
        (48 * 60, "email", "planned"),
        (120, "email", "planned"),
    ]
    assert planned[0].intended_at == planned[0].due_at == local(THURSDAY, 10) - timedelta(hours=48)
    assert planned[1].due_at == local(THURSDAY, 8)
    assert all(r.slot_starts_at == booking.starts_at for r in planned)


def test_sms_patients_get_sms_reminders(clinic: Clinic, frozen: time_machine.Coordinates) -> None:
    patient = PatientFactory(reminder_channel="sms")
    booking = book(clinic, local(THURSDAY, 10), patient=patient)
    assert {r.channel for r in rows(booking)} == {ReminderChannel.SMS}


def test_planning_twice_plans_nothing_new(clinic: Clinic, frozen: time_machine.Coordinates) -> None:
    booking = book(clinic, local(THURSDAY, 10))
    again = reminders_plan_for_booking(booking=booking)
    assert len(again) == 2
    assert Reminder.objects.filter(booking=booking).count() == 2
    assert set(Reminder.objects.values_list("status", flat=True)) == {"planned"}


@pytest.mark.parametrize(
    ("channel", "consents", "reason"),
    [
        ("none", True, "asked for no reminders"),
        ("email", False, "has not agreed to receive messages"),
    ],
)
def test_no_reminder_is_planned_when_the_patient_wants_none_and_the_log_says_why(
    clinic: Clinic,
    frozen: time_machine.Coordinates,
    receptionist: User,
    client: Client,
    channel: str,
    consents: bool,
    reason: str,
) -> None:
    patient = PatientFactory(reminder_channel=channel, consents_to_messages=consents)
    booking = book(clinic, local(THURSDAY, 10), patient=patient)
    assert not rows(booking)
    sign_in(client, receptionist)
    page = client.get(reverse("treatments:reminder_log", kwargs={"booking": booking.uuid}))
    assert page.status_code == 200
    assert reason in page.content.decode()


def test_a_48_hour_lead_across_the_clock_change_is_48_real_hours(clinic: Clinic) -> None:
    with time_machine.travel(datetime(2026, 10, 20, 9, tzinfo=UTC), tick=False):
        # Monday 26 October 10:00 GMT; the clocks went back early on Sunday the 25th.
        booking = book(clinic, local(date(2026, 10, 26), 10))
    first = rows(booking)[0]
    assert booking.starts_at - first.intended_at == timedelta(hours=48)
    # 48 real hours earlier the clinic was still on summer time: 11:00 on the wall.
    assert first.due_at.astimezone(LONDON).strftime("%d %H:%M") == "24 11:00"


def test_a_reminder_that_would_fall_in_quiet_hours_is_held_until_8(
    clinic: Clinic, frozen: time_machine.Coordinates
) -> None:
    booking = book(clinic, local(THURSDAY, 8, 30))
    late = rows(booking)[1]
    assert late.intended_at.astimezone(LONDON).strftime("%H:%M") == "06:30"
    assert late.due_at == local(THURSDAY, 8)


def test_a_48_hour_reminder_in_the_night_is_held_to_the_next_morning(
    clinic: Clinic, frozen: time_machine.Coordinates
) -> None:
    booking = book(clinic, local(THURSDAY, 22))
    early = rows(booking)[0]
    assert early.due_at == local(date(2026, 11, 4), 8)


def test_when_the_morning_hold_is_too_late_it_goes_the_evening_before(
    clinic: Clinic, frozen: time_machine.Coordinates
) -> None:
    # An 08:00 session: its 2-hour reminder (06:00) cannot wait until 08:00.
    booking = book(clinic, local(THURSDAY, 8))
    late = rows(booking)[1]
    assert late.due_at == local(date(2026, 11, 4), 20, 59)
    assert late.due_at < late.intended_at  # advanced, never into quiet hours


def test_when_the_evening_before_has_passed_no_reminder_is_planned(clinic: Clinic) -> None:
    with time_machine.travel(local(date(2026, 11, 4), 21, 30), tick=False):
        booking = book(clinic, local(THURSDAY, 8))
    assert not rows(booking)


def test_lead_times_already_past_are_not_planned(clinic: Clinic) -> None:
    with time_machine.travel(local(THURSDAY, 7), tick=False):
        booking = book(clinic, local(THURSDAY, 12))
    assert [r.lead_minutes for r in rows(booking)] == [120]


def test_quiet_hours_are_the_clinics_settings_when_the_booking_is_made(
    clinic: Clinic, frozen: time_machine.Coordinates
) -> None:
    settings_saved(quiet_hours_start=dt_time(23), quiet_hours_end=dt_time(6))
    booking = book(clinic, local(THURSDAY, 8, 30))
    # 06:30 is outside 23:00-06:00: the 2-hour reminder goes when it is meant to.
    assert rows(booking)[1].due_at == local(THURSDAY, 6, 30)
    settings_saved(quiet_hours_start=dt_time(21), quiet_hours_end=dt_time(7))
    friday = book(clinic, local(date(2026, 11, 6), 8, 30))
    # 06:30 is inside 21:00-07:00: held to 07:00, still before the session.
    assert rows(friday)[1].due_at == local(date(2026, 11, 6), 7)


def test_lead_times_are_the_clinics_settings_when_the_booking_is_made(
    clinic: Clinic, frozen: time_machine.Coordinates
) -> None:
    settings_saved(reminder_first_hours=24, reminder_second_hours=None)
    booking = book(clinic, local(THURSDAY, 12))
    assert [r.lead_minutes for r in rows(booking)] == [24 * 60]


# --- Moves, cancels, status ----------------------------------------------------------------


def test_moving_a_booking_cancels_the_old_slot_and_plans_the_new_one(
    clinic: Clinic, frozen: time_machine.Coordinates
) -> None:
    booking = book(clinic, local(THURSDAY, 10))
    moved = move(clinic, booking, local(THURSDAY, 14))
    old = Reminder.objects.filter(booking=booking, slot_starts_at=local(THURSDAY, 10))
    new = Reminder.objects.filter(booking=booking, slot_starts_at=local(THURSDAY, 14))
    assert {r.status for r in old} == {"cancelled"}
    assert all("moved" in r.error for r in old)
    assert sorted(r.due_at for r in new) == [local(date(2026, 11, 3), 14), local(THURSDAY, 12)]
    # Back to the first time: the rows of that slot are reopened, not duplicated.
    move(clinic, moved, local(THURSDAY, 10))
    assert Reminder.objects.filter(booking=booking).count() == 4
    assert {r.status for r in old.all()} == {"planned"}
    assert {r.status for r in new.all()} == {"cancelled"}


def test_cancelling_a_booking_cancels_its_planned_reminders(
    clinic: Clinic, frozen: time_machine.Coordinates
) -> None:
    booking = book(clinic, local(THURSDAY, 10))
    cancel(clinic, booking)
    assert {(r.status, r.error) for r in rows(booking)} == {
        ("cancelled", "The booking was cancelled.")
    }


def test_a_no_show_cancels_what_is_still_planned(clinic: Clinic) -> None:
    with time_machine.travel(NOW, tick=False):
        booking = book(clinic, local(THURSDAY, 10))
    with time_machine.travel(local(THURSDAY, 10, 30), tick=False):
        mark(clinic, booking, BookingStatus.NO_SHOW)
    assert {(r.status, r.error) for r in rows(booking)} == {
        ("cancelled", "The patient did not come.")
    }


# --- Dispatch -------------------------------------------------------------------------------


def test_due_email_reminders_are_sent_once_with_a_message_id_from_the_reminder(
    clinic: Clinic, frozen: time_machine.Coordinates
) -> None:
    booking = book(clinic, local(THURSDAY, 10))
    frozen.move_to(local(date(2026, 11, 3), 10) + timedelta(seconds=30))
    result = reminders_dispatch_batch(backend=RecordingBackend())
    assert (result.claimed, result.sent) == (1, 1)
    first = rows(booking)[0]
    assert first.status == "sent"
    assert first.sent_at is not None
    [message] = mail.outbox
    assert message.to == [clinic.patient.email]
    assert message.extra_headers["Message-ID"] == first.provider_message_id
    assert str(first.uuid) in first.provider_message_id
    assert "Thu 5 Nov at 10:00" in message.body
    html = message.alternatives[0][0]  # type: ignore[index]
    assert "10:00" in str(html)
    # The next tick finds nothing more to do.
    assert reminders_dispatch_batch(backend=RecordingBackend()).claimed == 0
    assert len(mail.outbox) == 1


def test_due_sms_reminders_go_through_the_backend_with_the_reminder_as_key(
    clinic: Clinic, frozen: time_machine.Coordinates, tmp_path: Path
) -> None:
    patient = PatientFactory(reminder_channel="sms", first_name="Ada")
    booking = book(clinic, local(THURSDAY, 10), patient=patient)
    frozen.move_to(local(THURSDAY, 9))
    backend = FileBackend(tmp_path)
    result = reminders_dispatch_batch(backend=backend)
    assert result.sent == 2
    files = sorted(tmp_path.glob("*.json"))
    assert {p.stem for p in files} == {str(r.uuid) for r in rows(booking)}
    payload = json.loads(files[0].read_text())
    assert payload["to"] == str(patient.phone)
    assert "Thu 5 Nov at 10:00" in payload["body"]
    assert "Ada" not in payload["body"]  # nothing more about the patient than needed


def test_a_booking_cancelled_without_its_reminders_is_caught_at_send_time(
    clinic: Clinic, frozen: time_machine.Coordinates
) -> None:
    booking = book(clinic, local(THURSDAY, 10))
    from treatments.models import Booking

    # A cancel that forgot its reminders: the dispatcher re-checks the booking.
    Booking.objects.filter(pk=booking.pk).update(status=BookingStatus.CANCELLED, cancel_reason="x")
    frozen.move_to(local(THURSDAY, 9))
    result = reminders_dispatch_batch(backend=RecordingBackend())
    assert (result.sent, result.cancelled) == (0, 2)
    assert not mail.outbox
    assert {r.status for r in rows(booking)} == {"cancelled"}


def test_a_transient_failure_retries_with_growing_delays_then_gives_up_after_5_attempts(
    clinic: Clinic, frozen: time_machine.Coordinates
) -> None:
    patient = PatientFactory(reminder_channel="sms")
    booking = book(clinic, local(date(2026, 11, 12), 10), patient=patient)
    frozen.move_to(local(date(2026, 11, 10), 10))
    backend = RecordingBackend(
        [TransientSMSError("provider answered 503", status=503)] * MAX_ATTEMPTS
    )
    delays = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        reminder = rows(booking)[0]
        assert reminder.status == "planned"
        before = reminder.due_at
        frozen.move_to(before)
        reminders_dispatch_batch(backend=backend)
        reminder.refresh_from_db()
        assert reminder.attempts == attempt
        if attempt < MAX_ATTEMPTS:
            delays.append(reminder.due_at - before)
            assert "503" in reminder.error
    assert reminder.status == "failed"
    assert "Gave up after 5 attempts" in reminder.error
    minutes = [d.total_seconds() / 60 for d in delays]
    assert [int(m) for m in minutes] == [1, 2, 4, 8] or all(
        base <= m <= base * 1.25 for base, m in zip([1, 2, 4, 8], minutes, strict=True)
    )
    assert not backend.sent


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    assert backoff(1, rng=lambda: 0.0) == timedelta(minutes=1)
    assert backoff(3, rng=lambda: 0.0) == timedelta(minutes=4)
    assert backoff(3, rng=lambda: 1.0) == timedelta(minutes=5)


def test_a_permanent_failure_is_recorded_at_once_and_shown_on_the_follow_up_list(
    clinic: Clinic, frozen: time_machine.Coordinates, receptionist: User, client: Client
) -> None:
    patient = PatientFactory(reminder_channel="sms", first_name="Invalid", last_name="Number")
    booking = book(clinic, local(THURSDAY, 10), patient=patient)
    frozen.move_to(local(date(2026, 11, 3), 10))
    backend = RecordingBackend(
        [PermanentSMSError("provider refused (400): invalid number", status=400)]
    )
    result = reminders_dispatch_batch(backend=backend)
    assert result.failed == 1
    failed = rows(booking)[0]
    assert (failed.status, failed.attempts) == ("failed", 1)
    assert failed.error == "Refused by the SMS provider (400)"
    sign_in(client, receptionist)
    page = client.get(reverse("treatments:reminder_followups")).content.decode()
    assert "Invalid Number" in page
    assert "Refused by the SMS provider (400)" in page


class _Broken:
    """An SMS backend that fails in a way no backend is meant to, with the
    patient's number in the exception's text."""

    def __init__(self, error: type[Exception]) -> None:
        self.error = error
        self.calls = 0

    def send(self, *, to: str, body: str, idempotency_key: str) -> str:
        self.calls += 1
        raise self.error(f"cannot send to {to}")


@pytest.mark.parametrize("error", [ValueError, http.client.IncompleteRead, KeyError])
def test_one_reminder_failing_in_any_way_is_retried_alone_and_the_others_go_once(
    clinic: Clinic,
    frozen: time_machine.Coordinates,
    receptionist: User,
    client: Client,
    error: type[Exception],
) -> None:
    texted = PatientFactory(reminder_channel="sms", phone="+447911000777")
    mailed = [book(clinic, local(THURSDAY, 10)), book(clinic, local(THURSDAY, 10, 20))]
    failing = book(clinic, local(THURSDAY, 10, 40), patient=texted)
    backend = _Broken(error)
    # Three ticks: the 48-hour reminders fall due, then the retries of the one that failed.
    frozen.move_to(local(date(2026, 11, 3), 10, 41))
    for _tick in range(3):
        reminders_dispatch_batch(backend=backend)
        frozen.move_to(rows(failing)[0].due_at)
    assert len(mail.outbox) == 2  # each email once, not once a tick
    assert {m.to[0] for m in mail.outbox} == {clinic.patient.email}
    assert [r.status for b in mailed for r in rows(b)] == ["sent", "planned"] * 2
    retried = rows(failing)[0]
    assert backend.calls == 3
    assert (retried.status, retried.attempts) == ("planned", 3)
    assert retried.error == f"Not sent ({error.__name__})."  # the kind, never the number
    assert retried.due_at - retried.last_attempt_at >= timedelta(minutes=4)  # backed off
    sign_in(client, receptionist)
    page = client.get(reverse("treatments:reminder_log", kwargs={"booking": failing.uuid}))
    text = page.content.decode()
    assert f"Not sent ({error.__name__})." in text
    assert "3 attempts" in text
    assert "next try" in text
    assert "7911000777" not in text
    # Still failing after MAX_ATTEMPTS: failed, and on reception's follow-up list.
    for _tick in range(MAX_ATTEMPTS - 3):
        frozen.move_to(rows(failing)[0].due_at)
        reminders_dispatch_batch(backend=backend)
    gave_up = rows(failing)[0]
    assert gave_up.status == "failed"
    assert gave_up.error == f"Gave up after 5 attempts: Not sent ({error.__name__})."
    followups = client.get(reverse("treatments:reminder_followups")).content.decode()
    assert texted.full_name in followups
    assert len(mail.outbox) == 2


def test_a_worker_that_died_after_sending_is_retried_once_its_lease_ends_under_the_same_id(
    clinic: Clinic, frozen: time_machine.Coordinates, monkeypatch: pytest.MonkeyPatch
) -> None:
    booking = book(clinic, local(THURSDAY, 10))
    frozen.move_to(local(date(2026, 11, 3), 10, 1))

    def died(*args: Any, **kwargs: Any) -> None:
        raise SystemExit("worker killed before it recorded the outcome")

    monkeypatch.setattr(dispatch, "_record", died)
    with pytest.raises(SystemExit):
        reminders_dispatch_batch(backend=RecordingBackend())
    monkeypatch.undo()
    assert len(mail.outbox) == 1
    claimed = rows(booking)[0]
    assert (claimed.status, claimed.attempts) == ("sending", 1)
    assert claimed.claimed_until == timezone.now() + settings.MESSAGE_CLAIM_LEASE
    # Within the lease no tick takes it: its worker may still be sending.
    frozen.move_to(claimed.claimed_until - timedelta(seconds=1))
    assert reminders_dispatch_batch(backend=RecordingBackend()).claimed == 0
    assert len(mail.outbox) == 1
    # After it, the row is sent again, under the same Message-ID: recognisable downstream.
    frozen.move_to(claimed.claimed_until)
    assert reminders_dispatch_batch(backend=RecordingBackend()).sent == 1
    assert len(mail.outbox) == 2
    assert len({m.extra_headers["Message-ID"] for m in mail.outbox}) == 1
    again = rows(booking)[0]
    assert (again.status, again.attempts, again.claimed_until) == ("sent", 2, None)


def test_messages_are_not_sent_in_quiet_hours_even_when_the_dispatcher_was_late(
    clinic: Clinic, frozen: time_machine.Coordinates
) -> None:
    booking = book(clinic, local(date(2026, 11, 12), 10))
    frozen.move_to(local(date(2026, 11, 10), 23))  # the tick ran late, at night
    result = reminders_dispatch_batch(backend=RecordingBackend())
    assert result.sent == 0
    assert rows(booking)[0].due_at == local(date(2026, 11, 11), 8)


def test_the_dispatcher_makes_the_same_number_of_queries_for_2_or_50_reminders(
    clinic: Clinic, frozen: time_machine.Coordinates
) -> None:
    counts = []
    for day, number in ((date(2026, 11, 5), 1), (date(2026, 11, 20), 25)):
        for index in range(number):
            patient = PatientFactory(reminder_channel=("email", "sms")[index % 2])
            book(clinic, local(day, 11) + timedelta(minutes=4 * index), patient=patient, minutes=4)
        last = local(day, 11) + timedelta(minutes=4 * (number - 1))
        frozen.move_to(last - timedelta(hours=1, minutes=55))
        with CaptureQueriesContext(connection) as queries:
            result = reminders_dispatch_batch(limit=100, backend=RecordingBackend())
        # 2 reminders are due per booking at this point (48 h and 2 h).
        assert result.sent == 2 * number
        # Besides the fixed ones, one small read of each row just before it goes.
        counts.append(len(queries) - result.sent)
    assert counts[0] == counts[1]
    # Two short transactions (a savepoint each here): the claim (lock, read,
    # lease) and the record; and the clinic's settings (quiet hours), read once.
    assert counts[0] <= 9


# --- Other kinds ----------------------------------------------------------------------------


def _allergy_test(clinic: Clinic, given_at: datetime) -> AllergyTest:
    test = AllergyTest.objects.create(
        patient=clinic.patient,
        site="inner left forearm",
        given_at=given_at,
        given_by=clinic.practitioner,
        entered_at=given_at,
        read_due_at=given_at + timedelta(hours=24),
    )
    test.ingredients.add(IngredientFactory())
    return test


def test_an_allergy_reading_reminds_the_practitioner_when_due_and_stops_once_read(
    clinic: Clinic, frozen: time_machine.Coordinates
) -> None:
    test = _allergy_test(clinic, NOW)
    with transaction.atomic():
        first = reminder_plan_allergy_reading(test=test)
        again = reminder_plan_allergy_reading(test=test)
    assert first is not None
    assert again is not None
    assert first.pk == again.pk
    assert (first.channel, first.recipient_id, first.due_at) == (
        "task",
        clinic.practitioner.pk,
        NOW + timedelta(hours=24),
    )
    frozen.move_to(NOW + timedelta(hours=24, seconds=5))
    assert reminders_dispatch_batch(backend=RecordingBackend()).sent == 1
    [message] = mail.outbox
    assert message.to == [clinic.practitioner.email]
    assert clinic.patient.last_name not in message.body

    second = _allergy_test(clinic, NOW + timedelta(hours=25))
    reminder_plan_allergy_reading(test=second)
    reminder_cancel_allergy_reading(test=second)
    assert Reminder.objects.get(allergy_test=second).status == "cancelled"


def _course(clinic: Clinic, sessions: int = 3) -> TreatmentCourse:
    return TreatmentCourse.objects.create(
        patient=clinic.patient,
        protocol=clinic.protocol,
        planned_sessions=sessions,
        interval=Interval.WEEKLY,
        created_by=clinic.practitioner,
    )


def _courses_listed(client: Client) -> str:
    page = client.get(reverse("treatments:reminder_followups"))
    assert page.status_code == 200
    html = page.content.decode()
    start = html.index("Courses with the next session not booked")
    return html[start:]


def test_a_course_with_no_next_session_booked_goes_on_receptions_follow_up_list(
    clinic: Clinic, frozen: time_machine.Coordinates, receptionist: User, client: Client
) -> None:
    course = _course(clinic)
    first = book(clinic, NOW + timedelta(hours=1), course=course)
    sign_in(client, receptionist)
    assert clinic.patient.full_name not in _courses_listed(client)
    # The first session is completed (its record is the session service's
    # business; here only the booking's state matters) and nothing follows.
    from treatments.models import Booking

    Booking.objects.filter(pk=first.pk).update(status=BookingStatus.COMPLETED)
    frozen.move_to(NOW + timedelta(hours=2))
    client.logout()  # two hours on: the idle session has ended
    sign_in(client, receptionist)
    listed = _courses_listed(client)
    assert clinic.patient.full_name in listed
    assert "1 of 3" in listed
    # Reception books the next session: the entry leaves the list.
    book(clinic, NOW + timedelta(days=7), course=course)
    assert clinic.patient.full_name not in _courses_listed(client)


def test_a_course_whose_later_sessions_are_cancelled_goes_on_the_follow_up_list(
    clinic: Clinic, frozen: time_machine.Coordinates, receptionist: User, client: Client
) -> None:
    course = _course(clinic)
    later = [book(clinic, NOW + timedelta(days=7 * n), course=course) for n in (1, 2, 3)]
    sign_in(client, receptionist)
    cancel(clinic, later[0])
    cancel(clinic, later[1])
    assert clinic.patient.full_name not in _courses_listed(client)
    cancel(clinic, later[2])
    listed = _courses_listed(client)
    assert clinic.patient.full_name in listed
    assert "0 of 3" in listed
    assert "None yet" in listed


def test_a_course_whose_next_session_was_missed_goes_on_the_follow_up_list(
    clinic: Clinic, frozen: time_machine.Coordinates, receptionist: User, client: Client
) -> None:
    course = _course(clinic, sessions=2)
    only = book(clinic, NOW + timedelta(hours=1), course=course)
    frozen.move_to(NOW + timedelta(hours=2))
    sign_in(client, receptionist)
    assert clinic.patient.full_name not in _courses_listed(client)
    mark(clinic, only, BookingStatus.NO_SHOW)
    assert clinic.patient.full_name in _courses_listed(client)


def test_a_course_whose_last_booking_passed_unmarked_comes_back_on_the_list_the_next_day(
    clinic: Clinic, frozen: time_machine.Coordinates, receptionist: User, client: Client
) -> None:
    course = _course(clinic, sessions=6)
    book(clinic, NOW + timedelta(hours=1), course=course)
    sign_in(client, receptionist)
    assert clinic.patient.full_name not in _courses_listed(client)
    # Nobody marks the session: the next morning it still counts as ahead...
    frozen.move_to(NOW + timedelta(hours=20))
    client.logout()
    sign_in(client, receptionist)
    assert clinic.patient.full_name not in _courses_listed(client)
    # ...but six weeks on it no longer hides the course.
    frozen.move_to(NOW + timedelta(days=42))
    client.logout()
    sign_in(client, receptionist)
    assert clinic.patient.full_name in _courses_listed(client)


def test_a_stopped_or_completed_course_is_not_on_the_follow_up_list(
    clinic: Clinic, frozen: time_machine.Coordinates, receptionist: User, client: Client
) -> None:
    stopped = _course(clinic)
    TreatmentCourse.objects.filter(pk=stopped.pk).update(status=CourseStatus.STOPPED)
    sign_in(client, receptionist)
    assert clinic.patient.full_name not in _courses_listed(client)


def test_the_follow_up_list_makes_the_same_number_of_queries_for_1_or_10_courses(
    clinic: Clinic, frozen: time_machine.Coordinates, receptionist: User, client: Client
) -> None:
    sign_in(client, receptionist)

    def queries() -> int:
        with CaptureQueriesContext(connection) as seen:
            _courses_listed(client)
        return len(seen)

    _course(clinic)
    queries()  # the first request of a signed-in client reads its session once more
    one = queries()
    for _n in range(9):
        _course(clinic, sessions=4)
    assert queries() == one


def _courses_for_patients(clinic: Clinic, number: int, sessions: int) -> list[str]:
    names = []
    for index in range(number):
        patient = PatientFactory(first_name=f"Waiting{sessions}", last_name=f"Number{index}")
        TreatmentCourse.objects.create(
            patient=patient,
            protocol=clinic.protocol,
            planned_sessions=sessions,
            interval=Interval.WEEKLY,
            created_by=clinic.practitioner,
        )
        names.append(patient.full_name)
    return names


def test_the_follow_up_lists_come_a_page_at_a_time_longest_waiting_first(
    clinic: Clinic,
    frozen: time_machine.Coordinates,
    receptionist: User,
    client: Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A page of 3 rather than 50 so the test stays small; the rule is the same.
    monkeypatch.setattr(reminder_selectors, "FOLLOWUP_PAGE_SIZE", 3)
    older = _courses_for_patients(clinic, 3, sessions=3)
    frozen.move_to(NOW + timedelta(hours=1))
    newer = _courses_for_patients(clinic, 2, sessions=4)
    sign_in(client, receptionist)
    url = reverse("treatments:reminder_followups")

    first = client.get(url).content.decode()
    assert all(name in first for name in older)
    assert not any(name in first for name in newer)
    assert "1 to 3 of 5" in first
    assert "?courses_page=2&amp;failed_page=1" in first

    second = client.get(url, {"courses_page": "2"}).content.decode()
    assert all(name in second for name in newer)
    assert not any(name in second for name in older)
    assert "4 to 5 of 5" in second
    assert "?courses_page=1&amp;failed_page=1" in second

    # Past the end, or before the start: the nearest page that exists.
    assert "4 to 5 of 5" in client.get(url, {"courses_page": "999999999"}).content.decode()
    assert "1 to 3 of 5" in client.get(url, {"courses_page": "-4"}).content.decode()


def test_the_failed_reminders_come_a_page_at_a_time_newest_first(
    clinic: Clinic,
    frozen: time_machine.Coordinates,
    receptionist: User,
    client: Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(reminder_selectors, "FOLLOWUP_PAGE_SIZE", 2)
    early = book(clinic, local(THURSDAY, 9))
    late = book(clinic, local(THURSDAY, 11))
    Reminder.objects.filter(booking__in=[early, late]).update(status=ReminderStatus.FAILED)
    sign_in(client, receptionist)
    url = reverse("treatments:reminder_followups")
    first = client.get(url).content.decode()
    second = client.get(url, {"failed_page": "2"}).content.decode()
    assert "1 to 2 of 4" in first
    assert "3 to 4 of 4" in second
    # Latest due first: the two hours before of both sessions, the later
    # session's first; then the 48 hours before.
    assert first.count("· 2 h before") == 2
    assert "48 h before" not in first
    assert first.index("session Thu 5 Nov, 11:00") < first.index("session Thu 5 Nov, 09:00")
    assert second.count("· 48 h before") == 2
    assert "· 2 h before" not in second
    # A list that fits on one page shows no place in it and no links.
    monkeypatch.setattr(reminder_selectors, "FOLLOWUP_PAGE_SIZE", 4)
    whole = client.get(url).content.decode()
    assert whole.count("h before") == 4
    assert 'data-testid="followup-failed-pages"' not in whole


@pytest.mark.parametrize("bad", ["two", "1.5", "2; DROP", "9" * 5000])
def test_a_follow_up_page_that_is_not_a_whole_number_is_400(
    clinic: Clinic, frozen: time_machine.Coordinates, receptionist: User, client: Client, bad: str
) -> None:
    sign_in(client, receptionist)
    for name in ("courses_page", "failed_page"):
        page = client.get(reverse("treatments:reminder_followups"), {name: bad})
        assert page.status_code == 400
        assert "whole number" in page.content.decode()


@pytest.mark.parametrize("courses_page", ["1", "2", "50"])
def test_the_follow_up_list_makes_a_fixed_number_of_queries_on_any_page(
    clinic: Clinic,
    frozen: time_machine.Coordinates,
    receptionist: User,
    client: Client,
    monkeypatch: pytest.MonkeyPatch,
    django_assert_max_num_queries: Any,
    courses_page: str,
) -> None:
    monkeypatch.setattr(reminder_selectors, "FOLLOWUP_PAGE_SIZE", 3)
    _courses_for_patients(clinic, 7, sessions=3)
    booking = book(clinic, local(THURSDAY, 9))
    Reminder.objects.filter(booking=booking).update(status=ReminderStatus.FAILED)
    sign_in(client, receptionist)
    url = reverse("treatments:reminder_followups")
    client.get(url)  # the first request of a signed-in client reads its session once more
    # Session and user, the two lists (three each for a page past the end)
    # and the audit events, whatever the number of rows.
    with django_assert_max_num_queries(12):
        page = client.get(url, {"courses_page": courses_page, "failed_page": courses_page})
    assert page.status_code == 200
    # Seven courses, three a page: page 50 is the last, with one.
    assert page.content.decode().count("Waiting3 Number") == (1 if courses_page == "50" else 3)


def test_no_follow_up_when_the_next_session_is_already_booked(
    clinic: Clinic, frozen: time_machine.Coordinates, receptionist: User, client: Client
) -> None:
    course = _course(clinic)
    first = book(clinic, NOW + timedelta(hours=1), course=course)
    book(clinic, NOW + timedelta(days=7), course=course)
    from treatments.models import Booking

    Booking.objects.filter(pk=first.pk).update(status=BookingStatus.COMPLETED)
    assert reminders_plan_course(course=course) is None
    assert not Reminder.objects.filter(kind=ReminderKind.COURSE_NEXT).exists()
    sign_in(client, receptionist)
    assert clinic.patient.full_name not in _courses_listed(client)


def test_a_completed_course_recalls_the_patient_for_maintenance_at_10_local(
    clinic: Clinic, frozen: time_machine.Coordinates
) -> None:
    course = _course(clinic, sessions=1)
    TreatmentCourse.objects.filter(pk=course.pk).update(
        status=CourseStatus.COMPLETED, maintenance_due_on=date(2027, 5, 3)
    )
    course.refresh_from_db()
    recall = reminders_plan_course(course=course)
    assert reminders_plan_course(course=course) == recall
    assert recall is not None
    assert (recall.kind, recall.channel) == ("maintenance", "email")
    assert recall.due_at == local(date(2027, 5, 3), 10)  # 09:00 UTC: summer time


# --- SMS backends ---------------------------------------------------------------------------


def test_the_file_backend_writes_one_file_per_key(tmp_path: Path) -> None:
    backend = FileBackend(tmp_path)
    assert backend.send(to="+447911000001", body="Hi", idempotency_key="k1") == "file-k1"
    backend.send(to="+447911000001", body="Hi", idempotency_key="k1")
    backend.send(to="+447911000001", body="Hi", idempotency_key="k2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k1.json", "k2.json"]


def test_the_console_backend_logs_neither_number_nor_text(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO"):
        ConsoleBackend().send(to="+447911000001", body="Secret text", idempotency_key="abc")
    assert "abc" in caplog.text
    assert "Secret" not in caplog.text
    assert "7911" not in caplog.text


class _Provider(BaseHTTPRequestHandler):
    """The SMS provider's side, over TLS: answers as told, or with bytes that
    are no HTTP answer at all (status None)."""

    answers: list[tuple[int | None, dict[str, str], float]] = []
    seen: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        _Provider.seen.append(
            {"headers": dict(self.headers), "body": json.loads(self.rfile.read(length))}
        )
        status, payload, delay = _Provider.answers.pop(0)
        if delay:
            threading.Event().wait(delay)
        data = json.dumps(payload).encode()
        try:
            if status is None:
                self.wfile.write(b"SMS OK\r\n\r\n")
                return
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, made now by openssl (valid two days from
    the machine's clock, whatever time the tests freeze)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def provider(certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An HTTPS provider on this machine. The backend checks its certificate
    as it checks a real provider's, against the trust store, which for this
    test is the provider's certificate alone (SSL_CERT_FILE)."""
    cert, key = certificate
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Provider)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    _Provider.answers, _Provider.seen = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_port}/messages"
    server.shutdown()
    server.server_close()


def test_the_http_backend_posts_json_with_token_and_idempotency_key(provider: str) -> None:
    _Provider.answers = [(201, {"id": "msg-42"}, 0)]
    backend = HttpBackend(url=provider, token="t0k", sender="Clinic", timeout=2)
    assert backend.send(to="+447911000001", body="Hello", idempotency_key="key-1") == "msg-42"
    [request] = _Provider.seen
    assert request["headers"]["Authorization"] == "Bearer t0k"
    assert request["headers"]["Idempotency-Key"] == "key-1"
    assert request["body"] == {"to": "+447911000001", "from": "Clinic", "body": "Hello"}


@pytest.mark.parametrize(
    ("status", "payload", "error", "text"),
    [
        (503, {}, TransientSMSError, "503"),
        (429, {}, TransientSMSError, "429"),
        (400, {"error": "invalid number"}, PermanentSMSError, r"\(400\)$"),
        (401, {}, PermanentSMSError, "401"),
        (None, {}, TransientSMSError, "broken answer"),
    ],
)
def test_the_http_backend_maps_answers_to_transient_and_permanent_errors(
    provider: str, status: int | None, payload: dict[str, str], error: type[Exception], text: str
) -> None:
    _Provider.answers = [(status, payload, 0)]
    with pytest.raises(error, match=text):
        HttpBackend(url=provider, token="t", timeout=2).send(
            to="+44", body="b", idempotency_key="k"
        )


def test_the_http_backend_gives_up_waiting_after_its_timeout(provider: str) -> None:
    # The provider would answer "sent" after 1.5 s: the error is the timeout's.
    _Provider.answers = [(200, {"id": "late"}, 1.5)]
    with pytest.raises(TransientSMSError, match="in time"):
        HttpBackend(url=provider, token="t", timeout=0.3).send(
            to="+44", body="b", idempotency_key="k"
        )


def test_the_http_backend_refuses_a_provider_whose_certificate_it_cannot_check(
    provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The system's trust store knows nothing of this machine's certificate.
    monkeypatch.delenv("SSL_CERT_FILE")
    _Provider.answers = [(201, {"id": "never"}, 0)]
    with pytest.raises(TransientSMSError):
        HttpBackend(url=provider, token="t", timeout=2).send(
            to="+44", body="b", idempotency_key="k"
        )
    assert _Provider.seen == []


def test_the_http_backend_reports_an_unreachable_provider_as_transient() -> None:
    with pytest.raises(TransientSMSError):
        HttpBackend(url="https://127.0.0.1:1/x", token="t", timeout=1).send(
            to="+44", body="b", idempotency_key="k"
        )


@pytest.mark.parametrize(
    "url", ["http://sms.example.com/x", "http://127.0.0.1:8080/x", "http://localhost/x", ""]
)
def test_the_http_backend_refuses_any_plain_http_provider(url: str) -> None:
    with pytest.raises(PermanentSMSError, match="https"):
        HttpBackend(url=url, token="t")


def test_the_http_backend_refuses_to_wait_without_a_limit() -> None:
    with pytest.raises(PermanentSMSError, match="SMS_TIMEOUT_SECONDS"):
        HttpBackend(url="https://sms.example.com/x", token="t", timeout=0)
    assert HttpBackend(url="https://sms.example.com/x", token="t").timeout == 10.0


# --- Pages ----------------------------------------------------------------------------------


def _many(clinic: Clinic, number: int) -> Any:
    booking = None
    for index in range(number):
        booking = book(clinic, local(THURSDAY, 9) + timedelta(days=7 * index))
    return booking


@pytest.mark.parametrize("number", [1, 15])
@pytest.mark.parametrize("persona", ["receptionist", "practitioner", "manager"])
def test_the_delivery_logs_answer_with_a_fixed_number_of_queries(
    clinic: Clinic,
    frozen: time_machine.Coordinates,
    client: Client,
    request: pytest.FixtureRequest,
    persona: str,
    number: int,
    django_assert_max_num_queries: Any,
) -> None:
    booking = _many(clinic, number)
    sign_in(client, request.getfixturevalue(persona))
    urls = [
        reverse("treatments:reminder_log", kwargs={"patient": clinic.patient.uuid}),
        reverse("treatments:reminder_log", kwargs={"booking": booking.uuid}),
        reverse("treatments:reminder_followups"),
    ]
    for url in urls:
        with django_assert_max_num_queries(12):
            page = client.get(url)
        assert page.status_code == 200
    text = client.get(urls[0]).content.decode()
    assert text.count('data-status="planned"') == 2 * number
    assert "9 Nov 2026, 09:00" in text or "Nov" in text


def test_the_log_shows_times_in_clinic_time_and_why_a_reminder_failed(
    clinic: Clinic, frozen: time_machine.Coordinates, client: Client, receptionist: User
) -> None:
    booking = book(clinic, local(date(2027, 5, 6), 10))
    Reminder.objects.filter(booking=booking, lead_minutes=120).update(
        status=ReminderStatus.FAILED, error="The email address was refused."
    )
    sign_in(client, receptionist)
    page = client.get(reverse("treatments:reminder_log", kwargs={"booking": booking.uuid}))
    text = page.content.decode()
    assert "6 May 2027, 08:00" in text  # 07:00 UTC, shown in summer time
    assert "The email address was refused." in text
    assert "Failed" in text
    assert "Planned" in text


def test_another_patients_booking_or_an_unknown_patient_is_404_and_anonymous_goes_to_login(
    clinic: Clinic, frozen: time_machine.Coordinates, client: Client, receptionist: User
) -> None:
    url = reverse("treatments:reminder_followups")
    assert client.get(url).status_code == 302
    sign_in(client, receptionist)
    missing = "00000000-0000-4000-8000-0000000000ff"
    assert (
        client.get(reverse("treatments:reminder_log", kwargs={"patient": missing})).status_code
        == 404
    )
    assert (
        client.get(reverse("treatments:reminder_log", kwargs={"booking": missing})).status_code
        == 404
    )
    assert client.post(url).status_code == 405

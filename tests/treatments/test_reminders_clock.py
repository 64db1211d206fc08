"""1,000 bookings around the clock changes of 25 October 2026 and 28 March
2027 (Europe/London): every reminder is due at its intended local time, or
at the quiet-hours hold, and the dispatcher sends it within one minute."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock

import pytest
import time_machine
from django.db import transaction

from tests.treatments import test_reminders_support as support
from tests.treatments.test_reminders_support import LONDON, Clinic, RecordingBackend
from treatments.models import Booking, Reminder, ReminderStatus
from treatments.services.reminders import reminders_dispatch_batch, reminders_plan_for_booking

clinic = support.clinic
pytestmark = pytest.mark.django_db

CHANGES = (datetime(2026, 10, 25, 1, tzinfo=UTC), datetime(2027, 3, 28, 1, tzinfo=UTC))
PER_CHANGE = 500
# Every 17 minutes from three days before each change to three days after:
# all hours of the day, the repeated hour in October and around the skipped one.
STEP = timedelta(minutes=17)


def _expected_due(starts: datetime, lead_hours: int, now: datetime) -> datetime | None:
    """Worked out on the wall clock, independently of the service's helpers."""
    intended = starts - timedelta(hours=lead_hours)  # real hours
    if intended <= now:
        return None
    wall = intended.astimezone(LONDON)
    if clock(8) <= wall.time() < clock(21):
        return intended
    morning_day = wall.date() + timedelta(days=1) if wall.time() >= clock(21) else wall.date()
    morning = datetime.combine(morning_day, clock(8), tzinfo=LONDON).astimezone(UTC)
    if morning < starts:
        return morning
    evening_day = morning_day - timedelta(days=1)
    evening = datetime.combine(evening_day, clock(20, 59), tzinfo=LONDON).astimezone(UTC)
    return evening if evening > now else None


def test_reminders_around_both_clock_changes_fire_at_their_local_time(clinic: Clinic) -> None:
    now = datetime(2026, 10, 1, 9, tzinfo=UTC)
    starts = [
        change - timedelta(days=3) + STEP * index
        for change in CHANGES
        for index in range(PER_CHANGE)
    ]
    with time_machine.travel(now, tick=False):
        bookings = Booking.objects.bulk_create(
            Booking(
                patient=clinic.patient,
                practitioner=clinic.practitioner,
                room=clinic.room,
                protocol=clinic.protocol,
                starts_at=moment,
                ends_at=moment + timedelta(minutes=10),
                created_by=clinic.receptionist,
            )
            for moment in starts
        )
        for booking in bookings:
            with transaction.atomic():
                reminders_plan_for_booking(booking=booking)
    assert len(bookings) == 1000

    planned = {
        (r.booking_id, r.lead_minutes): r for r in Reminder.objects.filter(booking__in=bookings)
    }
    expected_count = 0
    for booking in bookings:
        for lead in (48, 2):
            due = _expected_due(booking.starts_at, lead, now)
            row = planned.get((booking.pk, lead * 60))
            if due is None:
                assert row is None
                continue
            expected_count += 1
            assert row is not None, (booking.starts_at, lead)
            assert row.intended_at == booking.starts_at - timedelta(hours=lead)
            assert row.due_at == due, (booking.starts_at.astimezone(LONDON), lead, row.due_at)
            assert clock(8) <= row.due_at.astimezone(LONDON).time() < clock(21)
    assert len(planned) == expected_count

    # Run the dispatcher at each minute boundary of the two change weekends
    # (Saturday to Monday): a reminder goes at the first tick at or after its
    # due time, never before it.
    window = [
        (change - timedelta(days=1), change + timedelta(days=1, hours=12)) for change in CHANGES
    ]
    by_minute: dict[datetime, list[Reminder]] = defaultdict(list)
    for row in planned.values():
        if any(start <= row.due_at < end for start, end in window):
            tick = row.due_at.replace(second=0, microsecond=0)
            if tick < row.due_at:
                tick += timedelta(minutes=1)
            by_minute[tick].append(row)
    checked = 0
    backend = RecordingBackend()
    with time_machine.travel(window[0][0], tick=False) as traveller:
        for tick in sorted(by_minute):
            traveller.move_to(tick - timedelta(minutes=1))
            reminders_dispatch_batch(limit=500, backend=backend)
            ids = [r.pk for r in by_minute[tick]]
            assert not Reminder.objects.filter(pk__in=ids, status=ReminderStatus.SENT).exists()
            traveller.move_to(tick)
            reminders_dispatch_batch(limit=500, backend=backend)
            for row in Reminder.objects.filter(pk__in=ids):
                assert row.status == ReminderStatus.SENT, row.error
                assert row.sent_at is not None
                assert timedelta(0) <= row.sent_at - row.due_at < timedelta(minutes=1)
                checked += 1
    assert checked > 100
    assert date(2026, 10, 25) in {r.due_at.astimezone(LONDON).date() for r in planned.values()}

"""The demo data's clock: the demo's past is written by the real services with
the clock moved back, so it passes the rules work done on the day passes.

Patients registered weeks ago, histories and consents taken at their first
visit, allergy tests read the next day, sessions completed last month: each
is written inside `clock_at(moment)`, which moves the clock to `moment` with
time-machine (`travel(..., tick=False)`), so every rule, timestamp and audit
event reads that moment. Nothing skips a rule: a demo session that the
gates would refuse is refused.

time-machine is a development package (requirements-dev.txt). Without it
(`make run` installs only the runtime packages) the clock cannot move:
`clock_at` then runs its block at the real time, and the parts of the demo
that only make sense in the past (sessions completed in earlier weeks) are
left out (`clock_can_move`). Nor does the clock move once the audit trail
has been sealed (clinic.auditchain): an event dated before the last seal
would never be sealed and would read as slipped in, so an existing demo
database gets nothing written in its past.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta

from django.utils import timezone

from clinic.localtime import local_instant
from clinic.models import AuditSeal

# How many days ago the demo clinic opened: its staff, catalogue and consent
# forms date from then (the oldest lot in stock arrived 14 months ago).
OPENED_DAYS_AGO = 450

# Whether time-machine is installed. It is imported only when the clock
# moves: it brings pytest along, a fifth of a second every restart would pay.
TIME_MACHINE_INSTALLED = importlib.util.find_spec("time_machine") is not None


def clock_installed() -> bool:
    """Whether time-machine, which moves the clock, is installed."""
    return TIME_MACHINE_INSTALLED


def clock_can_move() -> bool:
    """Whether the demo's past can be written now: time-machine is installed
    and the audit trail holds no seal yet (a new database). One query."""
    return TIME_MACHINE_INSTALLED and not AuditSeal.objects.exists()


@contextmanager
def clock_at(moment: datetime) -> Iterator[datetime]:
    """Run the block with the clock stopped at `moment` (aware) when it can
    move (`clock_can_move`), at the real time otherwise. Yields `moment`, for
    the services that take the time as an argument (`at=`, `now=`)."""
    if not clock_can_move():
        yield moment
        return
    import time_machine

    with time_machine.travel(moment, tick=False):
        yield moment


def working_day(days_ago: int) -> date:
    """The clinic's date `days_ago` days before today, moved back to the
    Friday before when it falls on a weekend. Ask before `clock_at`: inside
    it, today is the day the clock was moved to."""
    day = timezone.localdate() - timedelta(days=days_ago)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


def next_working_day(day: date) -> date:
    """The first Monday to Friday after `day`."""
    day += timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def clinic_time(day: date, hour: int, minute: int = 0) -> datetime:
    """`day` at hour:minute on the clinic's clock, aware (a time that does
    not exist the night the clocks go forward is read as the hour after)."""
    return local_instant(day, time(hour, minute))

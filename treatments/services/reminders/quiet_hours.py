"""Quiet hours: no message to a patient at night, in the clinic's wall-clock time.

The window comes from the clinic's settings (clinic/clinic_settings.py,
`quiet_hours_start` and `quiet_hours_end`, clinic time; 21:00 and 08:00 by
default; never equal), read when a message is planned or sent, a rule of the
clinic's own (design.md, "Background work": quiet hours hold messages at night). Its edges are
wall-clock times: 08:00 is 08:00 on the day the clocks change too. Staff
tasks are not held; only messages to patients (email, text message) are.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from clinic import clinic_settings
from clinic.localtime import local_instant, to_local

# The last moment before quiet hours begin, for a reminder that cannot wait
# until they end (see patient_due_at).
BEFORE_QUIET = timedelta(minutes=1)


def quiet_hours() -> tuple[time, time] | None:
    """The nightly quiet hours as (start, end), local wall-clock times.

    Reads the clinic's settings as they are now (one query outside a
    request). Returns None only for a window of no length (start equal to
    end), which the settings' bounds never allow. Raises nothing of its own.
    """
    values = clinic_settings.current()
    start, end = values.quiet_hours_start, values.quiet_hours_end
    if start == end:
        return None
    return start, end


def _quiet_start_day(local: datetime, window: tuple[time, time]) -> date | None:
    """The local date on which the quiet period containing `local` began, or
    None when `local` is not in quiet hours."""
    start, end = window
    at = local.time()
    if start > end:  # across midnight, the usual case (21:00-08:00)
        if at >= start:
            return local.date()
        if at < end:
            return local.date() - timedelta(days=1)
        return None
    return local.date() if start <= at < end else None


def in_quiet_hours(moment: datetime) -> bool:
    """Whether the aware instant `moment` falls in quiet hours (clinic time).

    Reads the clinic's settings through quiet_hours().
    """
    window = quiet_hours()
    return window is not None and _quiet_start_day(to_local(moment), window) is not None


def quiet_hours_end_after(moment: datetime) -> datetime:
    """The end (aware, UTC) of the quiet period the aware instant `moment`
    falls in; `moment` itself when it is outside quiet hours or they are off.

    Reads the quiet hours from the clinic's settings.
    """
    window = quiet_hours()
    if window is None:
        return moment
    began = _quiet_start_day(to_local(moment), window)
    if began is None:
        return moment
    start, end = window
    return local_instant(began + timedelta(days=1) if start > end else began, end)


def quiet_hours_start_before(moment: datetime) -> datetime:
    """When (aware, UTC) the quiet period the aware instant `moment` falls in
    began; `moment` itself when it is outside quiet hours or they are off.

    Reads the quiet hours from the clinic's settings.
    """
    window = quiet_hours()
    if window is None:
        return moment
    began = _quiet_start_day(to_local(moment), window)
    return moment if began is None else local_instant(began, window[0])


def patient_due_at(
    intended: datetime, *, now: datetime, slot_starts_at: datetime | None = None
) -> datetime | None:
    """When a message to a patient meant for `intended` may go, or None if it
    should not be planned. All three arguments are aware instants;
    `slot_starts_at` is the session the message is about, if any.

    Not planned when the moment has passed. Inside quiet hours (the
    clinic's settings, clinic time, read now) it is held to
    their end; if that end is not before the session, it goes at the last
    minute before quiet hours began instead (20:59 the evening before), and
    if that too has passed it is not planned: a reminder after the session
    starts is useless and one in the night is not acceptable.
    """
    if intended <= now:
        return None
    if not in_quiet_hours(intended):
        return intended
    held = quiet_hours_end_after(intended)
    if slot_starts_at is None or held < slot_starts_at:
        return held
    early = quiet_hours_start_before(intended) - BEFORE_QUIET
    return early if early > now else None

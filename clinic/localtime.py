"""The clinic's wall-clock time, the one place where a local date and time
become an aware UTC instant, with the two awkward hours of the year handled
explicitly. Everything else in the project builds its instants here.

When the clocks go forward (last Sunday of March in London), 01:00-01:59 never
happens; when they go back (last Sunday of October), 01:00-01:59 happens twice.
A receptionist typing such a time must be told, not silently shifted.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils.translation import gettext as _


class LocalTimeError(ValueError):
    """A local date and time that cannot be turned into one instant."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NonExistentTimeError(LocalTimeError):
    """The time falls in the hour skipped when the clocks go forward."""


class AmbiguousTimeError(LocalTimeError):
    """The time happens twice, when the clocks go back."""


def clinic_zone() -> ZoneInfo:
    return ZoneInfo(getattr(settings, "CLINIC_TIME_ZONE", None) or settings.TIME_ZONE)


def _describe(day: date, at: time) -> str:
    from clinic import dates  # dates reads the zone from here

    return f"{dates.clock(at)} on {dates.day(day)}"


def is_non_existent(day: date, at: time, zone: ZoneInfo | None = None) -> bool:
    zone = zone or clinic_zone()
    local = datetime.combine(day, at, tzinfo=zone)
    back = local.astimezone(UTC).astimezone(zone)
    return back.replace(tzinfo=None) != local.replace(tzinfo=None)


def is_ambiguous(day: date, at: time, zone: ZoneInfo | None = None) -> bool:
    zone = zone or clinic_zone()
    first = datetime.combine(day, at, tzinfo=zone).replace(fold=0)
    second = first.replace(fold=1)
    return first.utcoffset() != second.utcoffset() and not is_non_existent(day, at, zone)


def local_to_utc(
    day: date, at: time, *, fold: int | None = None, zone: ZoneInfo | None = None
) -> datetime:
    """The UTC instant of `at` on `day` in the clinic's zone.

    Raises NonExistentTimeError for a skipped time and AmbiguousTimeError for a
    repeated one unless `fold` says which occurrence (0: the first, still on
    summer time; 1: the second, after the clocks went back).
    """
    zone = zone or clinic_zone()
    at = at.replace(tzinfo=None, fold=0)
    if is_non_existent(day, at, zone):
        raise NonExistentTimeError(
            _(
                "%(when)s does not exist: the clocks go forward an hour that night. "
                "Choose another time."
            )
            % {"when": _describe(day, at)}
        )
    if is_ambiguous(day, at, zone):
        if fold not in (0, 1):
            raise AmbiguousTimeError(
                _(
                    "%(when)s happens twice: the clocks go back an hour that night. "
                    "Choose whether you mean the first or the second time."
                )
                % {"when": _describe(day, at)}
            )
        return datetime.combine(day, at, tzinfo=zone).replace(fold=fold).astimezone(UTC)
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def local_instant(day: date, at: time, zone: ZoneInfo | None = None) -> datetime:
    """The aware UTC instant of wall-clock `at` on `day` in the clinic's zone,
    without asking: fold=0 picks the first of a repeated time, and a skipped
    one lands just after the jump. For times the clinic sets itself (quiet
    hours, a recall at 10:00, the demo's bookings); a time a person typed goes
    through `local_to_utc`, which refuses those two hours. Raises nothing."""
    return datetime.combine(day, at, tzinfo=zone or clinic_zone()).astimezone(UTC)


def to_local(moment: datetime, zone: ZoneInfo | None = None) -> datetime:
    """An aware instant in the clinic's zone."""
    return moment.astimezone(zone or clinic_zone())


def local_day_bounds(day: date, zone: ZoneInfo | None = None) -> tuple[datetime, datetime]:
    """The UTC instants at which a local day starts and the next one starts."""
    return local_instant(day, time(0), zone), local_instant(day + timedelta(days=1), time(0), zone)


def fold_labels(day: date, at: time, zone: ZoneInfo | None = None) -> tuple[str, str]:
    """Names of the two occurrences of an ambiguous time, e.g. ("BST", "GMT")."""
    zone = zone or clinic_zone()
    first = datetime.combine(day, at, tzinfo=zone).replace(fold=0)
    return first.tzname() or "", first.replace(fold=1).tzname() or ""

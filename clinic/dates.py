"""The few ways the product writes a date or a time for people to read, on
pages, in messages, emails, SMS and PDFs alike. Instants are built in
`clinic.localtime`; this module only writes them.

The formats (clinic time zone, 24-hour clock, UK order):

- a day: "Tue 24 Nov", with the year when it is not the clinic's current
  year ("Tue 24 Nov 2025");
- a day and a time: "Tue 24 Nov, 14:00" (and "Tue 24 Nov 2025, 14:00");
- a time: "14:00";
- a range of times: "Tue 24 Nov, 14:00-14:45", across midnight
  "Tue 24 Nov, 23:30 - Wed 25 Nov, 00:15";
- a range of days: "Mon 16 Nov - Sun 22 Nov";
- a date of birth, always with its year and without the weekday: "17 May 1990".

(The dashes in ranges are en dashes; written here as hyphens.)

Documents kept for years (PDFs, signed consents) pass `year=True` so their
dates stay whole after the year has turned.

Machine formats (ISO in CSV cells, value attributes, URLs, FHIR) are not
written here: they use `date.isoformat()` and the like.

Day and month names come from Django's translated names, looked up once per
language rather than once per date, so a week of calendar cards or a page of
follow-ups costs no more than writing the numbers.
"""

from __future__ import annotations

from datetime import date, datetime, time
from functools import lru_cache

from django.utils import timezone
from django.utils.dates import MONTHS, MONTHS_3, WEEKDAYS_ABBR
from django.utils.translation import get_language

from clinic.localtime import clinic_zone, to_local

# A dash between two times of one day, and the spaced dash between two days.
TIME_DASH = "\N{EN DASH}"
DAY_DASH = " \N{EN DASH} "

# The clinic's input formats: what a person types, and what the server takes.
DATE_INPUT_FORMATS = ["%d/%m/%Y", "%Y-%m-%d"]
TIME_INPUT_FORMATS = ["%H:%M", "%H:%M:%S", "%H.%M"]
DATETIME_INPUT_FORMATS = [
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y, %H:%M",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
]
# What the inputs show and what their hints say.
DATE_INPUT_SHOWN = "%d/%m/%Y"
TIME_INPUT_SHOWN = "%H:%M"
DATETIME_INPUT_SHOWN = "%d/%m/%Y %H:%M"
DATE_HINT = "dd/mm/yyyy"
TIME_HINT = "hh:mm"
DATETIME_HINT = "dd/mm/yyyy hh:mm"


@lru_cache(maxsize=16)
def _names(language: str | None) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    # Keyed by the active language: the lazy names translate when str() is called.
    days = tuple(str(WEEKDAYS_ABBR[day]) for day in range(7))
    months = ("", *(str(MONTHS_3[month]).title() for month in range(1, 13)))
    long_months = ("", *(str(MONTHS[month]) for month in range(1, 13)))
    return days, months, long_months


def this_year() -> int:
    """The clinic's current year (clinic time zone), which dates leave out."""
    return timezone.now().astimezone(clinic_zone()).year


def _local(value: date | datetime) -> date | datetime:
    if isinstance(value, datetime) and timezone.is_aware(value):
        return to_local(value)
    return value


def _date_words(value: date, *, year: bool | None, current: int | None) -> str:
    days, months, _long = _names(get_language())
    text = f"{days[value.weekday()]} {value.day} {months[value.month]}"
    if year or (year is None and value.year != (current or this_year())):
        text += f" {value.year}"
    return text


def clock(value: datetime | time) -> str:
    """A time of day on the 24-hour clock, "14:00" ("00:00" at midnight); an
    aware instant is read in the clinic's zone. Raises nothing."""
    local = to_local(value) if isinstance(value, datetime) and timezone.is_aware(value) else value
    return f"{local.hour:02d}:{local.minute:02d}"


def day(value: date | datetime, *, year: bool | None = None, current: int | None = None) -> str:
    """A day as "Tue 24 Nov", with the year when it is not the clinic's
    current year ("Tue 24 Nov 2025"). An aware instant is read in the
    clinic's zone, so 23:30 UTC on 31 May is "Mon 1 Jun". `year=True` always
    writes the year (documents kept for years), `year=False` never does.
    `current` is the year to compare with (default: the clinic's, now).
    Raises nothing."""
    local = _local(value)
    plain = local.date() if isinstance(local, datetime) else local
    return _date_words(plain, year=year, current=current)


def day_time(
    value: datetime,
    *,
    year: bool | None = None,
    seconds: bool = False,
    current: int | None = None,
) -> str:
    """A day and a time as "Tue 24 Nov, 14:00" (the year as in `day`), in
    the clinic's zone for an aware instant; `seconds=True` adds them
    ("14:00:05"), for the audit log. Raises nothing."""
    local = _local(value)
    assert isinstance(local, datetime)
    text = f"{_date_words(local.date(), year=year, current=current)}, {clock(local)}"
    if seconds:
        text += f":{local.second:02d}"
    return text


def day_or_day_time(value: datetime, *, year: bool | None = None) -> str:
    """`day` when the instant is a day's start in the clinic's zone (a
    contraindication that lifts on a date), `day_time` otherwise."""
    local = _local(value)
    assert isinstance(local, datetime)
    if local.time() == time.min:
        return day(local, year=year)
    return day_time(local, year=year)


def time_range(start: datetime, end: datetime, *, year: bool | None = None) -> str:
    """A span as "Tue 24 Nov, 14:00-14:45"; when it ends on another day,
    "Tue 24 Nov, 23:30 - Wed 25 Nov, 00:15". Clinic zone. Raises nothing."""
    first, last = _local(start), _local(end)
    assert isinstance(first, datetime)
    assert isinstance(last, datetime)
    if first.date() == last.date():
        return f"{day_time(first, year=year)}{TIME_DASH}{clock(last)}"
    return f"{day_time(first, year=year)}{DAY_DASH}{day_time(last, year=year)}"


def day_range(first: date, last: date, *, year: bool | None = None) -> str:
    """Days from `first` to `last` inclusive as "Mon 16 Nov - Sun 22 Nov",
    one day alone when they are the same; both carry the year when either
    is not in the current year ("Mon 28 Dec 2026 - Sun 3 Jan 2027").
    Raises nothing."""
    if first == last:
        return day(first, year=year)
    current = this_year()
    if year is None:
        year = first.year != current or last.year != current
    return f"{day(first, year=year)}{DAY_DASH}{day(last, year=year)}"


def birth_date(value: date) -> str:
    """A date of birth as "17 May 1990": always the year, never the weekday,
    the month's name in full so 05/06 cannot be misread. Raises nothing."""
    _days, _months, long_months = _names(get_language())
    return f"{value.day} {long_months[value.month]} {value.year}"


def input_date(value: date) -> str:
    """A day as the clinic's date inputs show and take it: "24/11/2026"."""
    return f"{value.day:02d}/{value.month:02d}/{value.year:04d}"


def input_time(value: datetime | time) -> str:
    """A time as the clinic's time inputs show and take it: "14:05"."""
    return clock(value)


def input_datetime(value: datetime) -> str:
    """An instant as the clinic's date-and-time inputs show and take it,
    in the clinic's zone: "24/11/2026 14:05"."""
    local = _local(value)
    assert isinstance(local, datetime)
    return f"{input_date(local.date())} {clock(local)}"

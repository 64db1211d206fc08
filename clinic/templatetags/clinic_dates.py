"""Template filters writing dates and times in the clinic's formats
(`clinic.dates`); loaded on every template as a built-in.

    {{ booking.starts_at|day }}              Tue 24 Nov
    {{ booking.starts_at|day_time }}         Tue 24 Nov, 14:00
    {{ booking.starts_at|clock }}            14:00
    {{ booking.starts_at|time_range:booking.ends_at }}
    {{ first|day_range:last }}
    {{ patient|birth_date }}                 17 May 1990 ("date of birth removed"
                                             once the record is anonymised)

`day` and `day_time` take "year" (always write it, for documents kept for
years) and `day_time` also "seconds" (the audit log), e.g. `|day_time:"year"`.
An empty value writes nothing, so `|default:` still works after them.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from django import template
from django.utils.translation import gettext as _

from clinic import dates

register = template.Library()


def _options(arg: str | None) -> set[str]:
    return {part.strip() for part in (arg or "").split(",") if part.strip()}


@register.filter
def day(value: Any, arg: str | None = None) -> str:
    if not isinstance(value, date):
        return ""
    return dates.day(value, year=True if "year" in _options(arg) else None)


@register.filter
def day_time(value: Any, arg: str | None = None) -> str:
    if not isinstance(value, datetime):
        return day(value, arg)
    options = _options(arg)
    return dates.day_time(
        value, year=True if "year" in options else None, seconds="seconds" in options
    )


@register.filter
def day_or_day_time(value: Any) -> str:
    if not isinstance(value, datetime):
        return day(value)
    return dates.day_or_day_time(value)


@register.filter
def clock(value: Any) -> str:
    if not isinstance(value, datetime | time):
        return ""
    return dates.clock(value)


@register.filter
def time_range(value: Any, end: Any) -> str:
    if not isinstance(value, datetime) or not isinstance(end, datetime):
        return day_time(value)
    return dates.time_range(value, end)


@register.filter
def day_range(value: Any, last: Any) -> str:
    if not isinstance(value, date) or not isinstance(last, date):
        return day(value)
    return dates.day_range(value, last)


@register.filter
def birth_date(value: Any) -> str:
    """A date of birth, or a patient's: an anonymised record's placeholder
    date is not the person's and is written as removed, wherever it shows."""
    if getattr(value, "is_anonymised", False):
        return str(_("date of birth removed"))
    value = getattr(value, "date_of_birth", value)
    if not isinstance(value, date):
        return ""
    return dates.birth_date(value)


@register.filter
def input_date(value: Any) -> str:
    """A day as the clinic's date inputs show it (a value attribute): 24/11/2026."""
    if not isinstance(value, date):
        return ""
    return dates.input_date(value)

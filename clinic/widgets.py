"""The clinic's date, time and date-and-time inputs, for every form.

Browsers draw `<input type="date">` and `type="time"` in the browser's
locale, not the clinic's: an en-US Chromium on a UK reception desk shows
mm/dd/yyyy and a 12-hour clock. These are text inputs in the clinic's
format instead (dd/mm/yyyy, 24-hour hh:mm), with the format as placeholder
and as the field's hint. No date picker: the ones on the npm registry either
need another design system's styles (the Ministry of Justice's picker, built
on GOV.UK Frontend), are no longer maintained (Duet) or have known keyboard
and screen-reader gaps (flatpickr, Pikaday); typing a date is the fastest
way at a desk, and a date of birth takes no picker anyway (GOV.UK's
"memorable date" guidance).

The fields take what a person types in the clinic's format, a few
look-alikes (24-11-2026, 24.11.2026, 24112026, 14.30, 1430) and ISO as
before (2026-11-24, 2026-11-24T14:30), so links, tests and old bookmarks
keep working; anything else is refused with a message naming the format.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from clinic import dates

DATE_FORMATS = [*dates.DATE_INPUT_FORMATS, "%d-%m-%Y", "%d.%m.%Y", "%d%m%Y"]
TIME_FORMATS = [*dates.TIME_INPUT_FORMATS, "%H%M"]
DATETIME_FORMATS = [*dates.DATETIME_INPUT_FORMATS, "%d-%m-%Y %H:%M", "%d.%m.%Y %H:%M"]

DATE_INVALID = _("Enter the date as dd/mm/yyyy (day, month, year), for example 17/05/2026.")
TIME_INVALID = _("Enter the time on the 24-hour clock as hh:mm, for example 14:30.")
DATETIME_INVALID = _(
    "Enter the date and time as dd/mm/yyyy hh:mm (24-hour clock), for example 17/05/2026 14:30."
)


def _attrs(base: dict[str, Any], attrs: dict[str, Any] | None) -> dict[str, Any]:
    return {**base, **(attrs or {})}


class DayInput(forms.DateInput):
    """A day typed as dd/mm/yyyy."""

    input_type = "text"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        base = {"placeholder": dates.DATE_HINT, "autocomplete": "off", "spellcheck": "false"}
        super().__init__(attrs=_attrs(base, attrs), format=dates.DATE_INPUT_SHOWN)


class BirthDateInput(DayInput):
    """A date of birth: the browser may fill it from the person's own details."""

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs=_attrs({"autocomplete": "bday"}, attrs))


class ClockInput(forms.TimeInput):
    """A time of day typed as hh:mm on the 24-hour clock."""

    input_type = "text"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        base = {"placeholder": dates.TIME_HINT, "autocomplete": "off", "size": 5}
        super().__init__(attrs=_attrs(base, attrs), format=dates.TIME_INPUT_SHOWN)


class DayTimeInput(forms.DateTimeInput):
    """A day and time typed as dd/mm/yyyy hh:mm; shown in the clinic's zone."""

    input_type = "text"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        base = {"placeholder": dates.DATETIME_HINT, "autocomplete": "off"}
        super().__init__(attrs=_attrs(base, attrs), format=dates.DATETIME_INPUT_SHOWN)


class DayField(forms.DateField):
    """A date in the clinic's format (DayInput); ISO still accepted."""

    widget = DayInput
    input_formats = DATE_FORMATS
    default_error_messages = {"invalid": DATE_INVALID}


class BirthDateField(DayField):
    widget = BirthDateInput


class ClockField(forms.TimeField):
    """A time of day on the 24-hour clock (ClockInput); seconds are dropped."""

    widget = ClockInput
    input_formats = TIME_FORMATS
    default_error_messages = {"invalid": TIME_INVALID}


class DayTimeField(forms.DateTimeField):
    """A day and time in the clinic's format (DayTimeInput), read in the
    current time zone (the clinic's); ISO still accepted."""

    widget = DayTimeInput
    input_formats = DATETIME_FORMATS
    default_error_messages = {"invalid": DATETIME_INVALID}


def parse_day(text: str) -> date | None:
    """A day typed in any format DayField takes, or None."""
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(text.strip(), fmt).date()  # noqa: DTZ007 (a day alone)
        except ValueError:
            continue
    return None


def parse_clock(text: str) -> time | None:
    """A time typed in any format ClockField takes, or None."""
    for fmt in TIME_FORMATS:
        try:
            return datetime.strptime(text.strip(), fmt).time()  # noqa: DTZ007 (a wall-clock time)
        except ValueError:
            continue
    return None

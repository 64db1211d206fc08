"""The clinic's date, time and date-and-time inputs, for every form.

Browsers draw `<input type="date">` and `type="time"` in the browser's
locale, not the clinic's: an en-US Chromium on a UK reception desk shows
mm/dd/yyyy and a 12-hour clock. These are text inputs in the clinic's
format instead (dd/mm/yyyy, 24-hour hh:mm), with the format as placeholder
and an example as the field's hint. No date picker yet: flatpickr and Pikaday have
open keyboard and screen-reader faults (flatpickr #1636, #2485; Pikaday
#859); the Ministry of Justice's picker (UK format, keyboard, accessible)
is built on GOV.UK Frontend's styles and would need them beside Bootstrap;
Duet's is a web component with its own styling and localisation to set up.
Typing a date is the fastest way at a desk, and a date of birth takes no
picker anyway (GOV.UK's "memorable date" guidance).

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

# The format, without an example: the field's hint under it gives one
# (DATE_HINT, ...), and a field says "for example" once.
DATE_INVALID = _("Enter the date as dd/mm/yyyy (day, month, year).")
TIME_INVALID = _("Enter the time on the 24-hour clock as hh:mm.")
DATETIME_INVALID = _("Enter the date and time as dd/mm/yyyy hh:mm (24-hour clock).")


def _attrs(base: dict[str, Any], attrs: dict[str, Any] | None) -> dict[str, Any]:
    return {**base, **(attrs or {})}


class DayInput(forms.DateInput):
    """A day typed as dd/mm/yyyy. A day given as text in another accepted
    format (an ISO date from a link's query string) is shown in the clinic's;
    text that is no day is shown as typed, to be corrected."""

    input_type = "text"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        base = {"placeholder": dates.DATE_HINT, "autocomplete": "off", "spellcheck": "false"}
        super().__init__(attrs=_attrs(base, attrs), format=dates.DATE_INPUT_SHOWN)

    def format_value(self, value: Any) -> str | None:
        if isinstance(value, str) and (day := parse_day(value)) is not None:
            return dates.input_date(day)
        return super().format_value(value)


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

    def format_value(self, value: Any) -> str | None:
        if isinstance(value, str) and (at := parse_clock(value)) is not None:
            return dates.input_time(at)
        return super().format_value(value)


class DayTimeInput(forms.DateTimeInput):
    """A day and time typed as dd/mm/yyyy hh:mm; shown in the clinic's zone."""

    input_type = "text"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        base = {"placeholder": dates.DATETIME_HINT, "autocomplete": "off"}
        super().__init__(attrs=_attrs(base, attrs), format=dates.DATETIME_INPUT_SHOWN)


DATE_HINT = _("For example, 17/05/2026.")
TIME_HINT = _("24-hour clock, for example 14:30.")
DATETIME_HINT = _("For example, 17/05/2026 14:30.")
BIRTH_DATE_HINT = _("For example, 17/05/1990.")


def _with_hint(kwargs: dict[str, Any], hint: Any) -> dict[str, Any]:
    # The format shown under the field (and read out with it) unless it has its own help.
    if not kwargs.get("help_text"):
        kwargs["help_text"] = hint
    return kwargs


class DayField(forms.DateField):
    """A date in the clinic's format (DayInput); ISO still accepted."""

    widget = DayInput
    input_formats = DATE_FORMATS
    default_error_messages = {"invalid": DATE_INVALID}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**_with_hint(kwargs, DATE_HINT))


class BirthDateField(DayField):
    """A date of birth as dd/mm/yyyy: a plain text field, no picker."""

    widget = BirthDateInput

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**_with_hint(kwargs, BIRTH_DATE_HINT))


class ClockField(forms.TimeField):
    """A time of day on the 24-hour clock (ClockInput); seconds are dropped."""

    widget = ClockInput
    input_formats = TIME_FORMATS
    default_error_messages = {"invalid": TIME_INVALID}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**_with_hint(kwargs, TIME_HINT))


class DayTimeField(forms.DateTimeField):
    """A day and time in the clinic's format (DayTimeInput), read in the
    current time zone (the clinic's); ISO still accepted."""

    widget = DayTimeInput
    input_formats = DATETIME_FORMATS
    default_error_messages = {"invalid": DATETIME_INVALID}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**_with_hint(kwargs, DATETIME_HINT))


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

"""Dates that lists are filtered on (audit trail, and any list with a date
filter): bounded, so a day before or after one of them is still a date and a
filter of 0001-01-01 or 9999-12-31 is a plain error on the field, not a crash."""

from __future__ import annotations

from datetime import date
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from clinic import dates
from clinic.widgets import DayField

# The days a list may be filtered on: wide enough for any record kept, narrow
# enough that a day before or after one of them is still a date.
FILTER_FIRST_DAY = date(1900, 1, 1)
FILTER_LAST_DAY = date(2199, 12, 31)


class FilterDateField(DayField):
    """A date to filter a list on, between FILTER_FIRST_DAY and FILTER_LAST_DAY;
    outside, a plain error on the field (the filter is then not applied)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def validate(self, value: Any) -> None:
        super().validate(value)
        if value and not FILTER_FIRST_DAY <= value <= FILTER_LAST_DAY:
            raise forms.ValidationError(
                _("Choose a date between %(first)s and %(last)s.")
                % {
                    "first": dates.input_date(FILTER_FIRST_DAY),
                    "last": dates.input_date(FILTER_LAST_DAY),
                },
                code="out_of_range",
            )

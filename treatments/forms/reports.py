"""The reports page's filters: a range of days and a practitioner."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from django import forms
from django.http import QueryDict
from django.utils.translation import gettext_lazy as _

from clinic import dates
from clinic.filtering import FilterDateField
from clinic.widgets import DATE_INVALID
from treatments.forms.booking import PractitionerChoiceField
from treatments.selectors.reports import ReportPeriod, earliest_start, report_practitioners

if TYPE_CHECKING:
    from django.utils.functional import _StrOrPromise as StrOrPromise


def _day(value: date) -> str:
    return dates.day(value)


def _date_field(label: StrOrPromise) -> FilterDateField:
    return FilterDateField(
        label=label,
        error_messages={"invalid": DATE_INVALID},
    )


class _PractitionerField(PractitionerChoiceField):
    """A practitioner by the public id of their account: an id that is not
    one is as unknown as an id of nobody."""

    def to_python(self, value: Any) -> Any:
        try:
            return super().to_python(value)
        except forms.ValidationError:
            raise forms.ValidationError(
                self.error_messages["invalid_choice"], code="invalid_choice"
            ) from None


class ReportFilterForm(forms.Form):
    """From and to (clinic-local days, both included) and a practitioner
    (by the public id of their account; none: the whole clinic). A missing
    day takes its default (`ReportFilterForm.bind`). A range ending after
    `today` is reported up to today (the end asked for in `asked_until`),
    and one starting before `opened` (the clinic's first booking) from that
    day (the start asked for in `asked_since`): "this month" and "this year"
    give figures. The range is refused when it runs backwards, starts after
    today, or, so cut, still reaches back more than REPORT_MAX_YEARS from
    its end (`earliest_start`)."""

    since = _date_field(_("From"))
    until = _date_field(_("To"))
    practitioner = _PractitionerField(
        label=_("Practitioner"),
        queryset=report_practitioners(),
        to_field_name="uuid",
        required=False,
        empty_label=_("All practitioners"),
        error_messages={"invalid_choice": _("That practitioner is not known.")},
    )

    def __init__(self, *args: Any, today: date, opened: date | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.today = today
        self.opened = opened
        # The days asked for, when the range reported was cut to the records.
        self.asked_until: date | None = None
        self.asked_since: date | None = None

    @classmethod
    def bind(cls, query: QueryDict, *, today: date, opened: date | None) -> ReportFilterForm:
        """The form bound to the page's query string, with the days not given
        filled in: to today, from the start of the last REPORT_WEEKS weeks to
        it (not before `opened`). A day given but not a date stays as typed,
        and is refused on its field."""
        data = query.copy()
        if not data.get("until"):
            data["until"] = today.isoformat()
        try:
            until = cls.base_fields["until"].clean(data["until"]) or today
        except forms.ValidationError:
            until = today
        if not data.get("since"):
            default = ReportPeriod.default(until=min(until, today), opened=opened)
            data["since"] = default.first.isoformat()
        return cls(data, today=today, opened=opened)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since is None or until is None:
            return data
        if since > until:
            self.add_error("since", _("The start date is after the end date."))
            return data
        if since > self.today:
            self.add_error(
                "since",
                _("The reports go up to today, %(day)s: choose a start on or before it.")
                % {"day": _day(self.today)},
            )
            return data
        if until > self.today:
            self.asked_until, until = until, self.today
        if self.opened is not None and since < self.opened <= until:
            self.asked_since, since = since, self.opened
        data["since"], data["until"] = since, until
        if since < earliest_start(until):
            self.add_error("since", _("A report covers at most two years: choose a shorter range."))
        return data

    @property
    def period(self) -> ReportPeriod:
        """The range reported (after `is_valid()`): the one asked for, cut to
        today and to the clinic's first booking."""
        return ReportPeriod(first=self.cleaned_data["since"], last=self.cleaned_data["until"])

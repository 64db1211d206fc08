"""The form of a patient's request to erase their data."""

from __future__ import annotations

from datetime import date

from dateutil.relativedelta import relativedelta
from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from clinic.forms import SubmissionTokenMixin
from clinic.widgets import DayField

# The oldest a request may be when recorded (see clean_received_on).
RECEIVED_AT_MOST_AGO = relativedelta(years=1)


class ErasureRequestForm(SubmissionTokenMixin, forms.Form):
    """When the patient asked, what they said, and the member of staff's
    confirmation that contact details are erased at once."""

    received_on = DayField(
        label=_("Request received on"),
        help_text=_(
            "Today or within the last year. The clinic has one month from this day to answer."
        ),
    )
    notes = forms.CharField(
        label=_("What the patient asked for"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    confirm = forms.BooleanField(
        label=_(
            "I understand that the email address, mobile number and agreement to messages "
            "are erased now, and cannot be restored."
        ),
    )

    def clean_received_on(self) -> date:
        """Today or within the last year (`RECEIVED_AT_MOST_AGO`): the clinic
        has one month to answer (UK GDPR Art. 12(3), extendable by two for
        complex requests), so a request received longer ago than a year is
        a mistyped year, not one still to answer; and an old date would set
        a never-treated patient's anonymisation in the past at once."""
        value: date = self.cleaned_data["received_on"]
        today = timezone.localdate()
        if value > today:
            raise ValidationError(_("The request cannot have been received in the future."))
        earliest = today - RECEIVED_AT_MOST_AGO
        if value < earliest:
            from clinic import dates

            raise ValidationError(
                _(
                    "A request received before %(earliest)s is more than a year old: check "
                    "the year. The clinic has one month to answer a request."
                )
                % {"earliest": dates.day(earliest, year=True)}
            )
        return value

"""The form of a patient's request to erase their data."""

from __future__ import annotations

from datetime import date

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from clinic.forms import SubmissionTokenMixin
from clinic.widgets import DayField


class ErasureRequestForm(SubmissionTokenMixin, forms.Form):
    """When the patient asked, what they said, and the member of staff's
    confirmation that contact details are erased at once."""

    received_on = DayField(
        label=_("Request received on"),
        help_text=_("The clinic has one month from this day to answer."),
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
        value: date = self.cleaned_data["received_on"]
        if value > timezone.localdate():
            raise ValidationError(_("The request cannot have been received in the future."))
        return value

"""Forms of the patient register."""

from __future__ import annotations

from datetime import date
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from patients.models import Patient, ReminderChannel


class PatientForm(forms.ModelForm):
    """Registration and contact details. Never clinical information."""

    confirm_not_duplicate = forms.BooleanField(
        required=False,
        widget=forms.HiddenInput,
    )

    class Meta:
        model = Patient
        fields = [
            "first_name",
            "last_name",
            "date_of_birth",
            "email",
            "phone",
            "address",
            "postcode",
            "emergency_contact_name",
            "emergency_contact_phone",
            "gp_details",
            "reminder_channel",
            "consents_to_messages",
        ]
        widgets = {
            "date_of_birth": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            "address": forms.Textarea(attrs={"rows": 2}),
        }
        help_texts = {
            "phone": _("For example 07911 123456, or with the country code: +33 6 12 34 56 78."),
        }
        error_messages = {
            "phone": {"invalid": _("Enter a valid phone number, for example 07911 123456.")},
            "emergency_contact_phone": {
                "invalid": _("Enter a valid phone number, for example 07911 123456.")
            },
        }

    def clean_date_of_birth(self) -> date:
        born: date = self.cleaned_data["date_of_birth"]
        if born > timezone.localdate():
            raise forms.ValidationError(_("The date of birth cannot be in the future."))
        if born < date(1900, 1, 1):
            raise forms.ValidationError(_("Check the year: the date of birth is before 1900."))
        return born

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        channel = data.get("reminder_channel")
        if channel == ReminderChannel.SMS and not data.get("phone"):
            self.add_error("phone", _("Text-message reminders need a mobile number."))
        if channel == ReminderChannel.EMAIL and not data.get("email"):
            self.add_error("email", _("Email reminders need an email address."))
        return data

    def service_fields(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in self.Meta.fields}


class PatientSearchForm(forms.Form):
    q = forms.CharField(
        label=_("Find a patient"),
        required=False,
        max_length=100,
        widget=forms.TextInput(
            attrs={
                "type": "search",
                "class": "form-control",
                "placeholder": _("Name, email, phone or date of birth"),
                "autocomplete": "off",
                "autofocus": True,
            }
        ),
    )

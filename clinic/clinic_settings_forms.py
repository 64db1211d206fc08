"""The manager's settings form: every setting, grouped as the page shows
them, each bounded field with the reason for its bounds beside it."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from clinic.clinic_settings_rules import (
    BOUND_OF_FIELD,
    BOUNDS,
    REASONS,
    WEEKDAY_LABELS,
    WEEKDAYS,
)
from clinic.clinic_settings_services import SETTING_FIELDS, bound_errors
from clinic.forms import VersionedFormMixin
from clinic.models import ClinicSettings
from clinic.widgets import ClockInput


class ClinicSettingsForm(VersionedFormMixin, forms.ModelForm):
    """Every setting, opened on the newest version; its `version` is that
    version's id, so a save after someone else's is refused (409) with what
    they changed, and a second, deliberate save writes only what was typed."""

    change_reason = forms.CharField(
        label=_("Reason for the change (optional)"),
        required=False,
        max_length=300,
        help_text=_("Kept in the settings' history beside who changed what."),
    )

    class Meta:
        model = ClinicSettings
        fields = list(SETTING_FIELDS)
        widgets = {
            "clinic_address": forms.Textarea(attrs={"rows": 2}),
            **{f"{day}_{edge}": ClockInput() for day in WEEKDAYS for edge in ("opens", "closes")},
            "quiet_hours_start": ClockInput(),
            "quiet_hours_end": ClockInput(),
        }
        help_texts = {
            "clinic_phone": _("For example 020 7946 0000, or with the country code."),
        }
        error_messages = {
            # The example is the hint under the field: the message does not repeat it.
            "clinic_phone": {"invalid": _("Enter a valid phone number.")},
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, key in BOUND_OF_FIELD.items():
            bound = BOUNDS[key]
            widget = self.fields[name].widget
            widget.attrs.update({"min": bound.minimum, "max": bound.maximum, "step": bound.step})
        for index, day in enumerate(WEEKDAYS):
            self.fields[f"{day}_opens"].label = _("%(day)s opens") % {"day": WEEKDAY_LABELS[index]}
            self.fields[f"{day}_closes"].label = _("%(day)s closes") % {
                "day": WEEKDAY_LABELS[index]
            }

    def opened_version(self) -> Any:
        instance = getattr(self, "instance", None)
        return instance.pk if instance is not None else None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        values = {name: data.get(name) for name in SETTING_FIELDS}
        for name, message in bound_errors(values).items():
            if name not in self.errors and name in self.fields:
                self.add_error(name, message)
        return data

    def service_fields(self) -> dict[str, Any]:
        return {name: self.cleaned_data.get(name) for name in SETTING_FIELDS}

    # --- For the page -------------------------------------------------------------------

    def sections(self) -> list[dict[str, Any]]:
        """The page's groups: a heading, the fields, and the reason for their bounds."""

        def rows(*names: str) -> list[dict[str, Any]]:
            return [
                {
                    "field": self[name],
                    "reason": BOUNDS[BOUND_OF_FIELD[name]].reason
                    if name in BOUND_OF_FIELD
                    else None,
                }
                for name in names
            ]

        return [
            {
                "id": "contact",
                "title": _("The clinic"),
                "reason": REASONS["contact"],
                "rows": rows("clinic_name", "clinic_address", "clinic_phone", "clinic_email"),
            },
            {
                "id": "safety",
                "title": _("Safety checks"),
                "reason": None,
                "rows": rows("medical_history_valid_days", "allergy_test_valid_months"),
            },
            {
                "id": "reminders",
                "title": _("Reminders"),
                "reason": BOUNDS["reminder_hours"].reason,
                "rows": [
                    {"field": self[name], "reason": None}
                    for name in (
                        "reminder_first_hours",
                        "reminder_second_hours",
                        "reminder_third_hours",
                    )
                ],
            },
            {
                "id": "quiet",
                "title": _("Quiet hours"),
                "reason": REASONS["quiet_hours"],
                "rows": rows("quiet_hours_start", "quiet_hours_end"),
            },
            {
                "id": "sessions",
                "title": _("Appointments"),
                "reason": None,
                "rows": rows("default_session_minutes"),
            },
            {
                "id": "records",
                "title": _("Keeping records"),
                "reason": None,
                "rows": rows("adult_record_retention_years", "child_record_retention_until_age"),
            },
        ]

    def opening_rows(self) -> list[dict[str, Any]]:
        """One row a weekday: its name and its two fields, each with its input."""

        def cell(name: str) -> dict[str, Any]:
            field = self[name]
            attrs: dict[str, str | bool] = {"class": "form-control form-control-sm settings-time"}
            if field.errors:
                attrs["class"] = f"{attrs['class']} is-invalid"
                attrs["aria-invalid"] = "true"
                attrs["aria-describedby"] = f"{field.auto_id}-error"
            return {"field": field, "widget": field.as_widget(attrs=attrs)}

        return [
            {
                "day": WEEKDAY_LABELS[index],
                "cells": [cell(f"{day}_opens"), cell(f"{day}_closes")],
            }
            for index, day in enumerate(WEEKDAYS)
        ]

    opening_reason = REASONS["opening_hours"]

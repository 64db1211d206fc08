"""Forms of the patient import (patients.imports does the work)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from patients.imports import IMPORT_FIELDS, IMPORT_MAX_CELL, REQUIRED_FIELDS


class ImportUploadForm(forms.Form):
    file = forms.FileField(
        label=_("Patient list"),
        help_text=_(
            "A CSV file or an Excel workbook (.xlsx) exported from the other system, with a "
            "header row naming its columns."
        ),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.txt,.xlsx,text/csv"}),
        error_messages={"required": _("Choose the file to import.")},
    )


class ImportVersionForm(forms.Form):
    """The import's version when the page was opened: a post from an older
    page is refused (patients.imports)."""

    version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)


class ImportMappingForm(ImportVersionForm):
    """Which column fills each register field."""

    def __init__(self, *args: Any, headers: list[str], samples: list[list[str]], **kwargs: Any):
        super().__init__(*args, **kwargs)
        choices: list[tuple[str, str]] = [("", str(_("(not imported)")))]
        for position, header in enumerate(headers):
            example = next((row[position] for row in samples if row[position]), "")
            label = f"{header}: “{example[:30]}”" if example else header
            choices.append((str(position), label))
        for name, label in IMPORT_FIELDS:
            self.fields[name] = forms.TypedChoiceField(
                label=label,
                choices=choices,
                coerce=int,
                empty_value=None,
                required=name in REQUIRED_FIELDS,
                error_messages={"required": _("Choose the column that holds this.")},
            )

    def mapping(self) -> dict[str, int]:
        return {
            name: self.cleaned_data[name]
            for name, _label in IMPORT_FIELDS
            if self.cleaned_data.get(name) is not None
        }


class ImportRowForm(ImportVersionForm):
    """One row's values, corrected before importing."""

    def __init__(self, *args: Any, fields: list[tuple[str, str]], **kwargs: Any):
        super().__init__(*args, **kwargs)
        for name, label in fields:
            self.fields[name] = forms.CharField(
                label=label, required=False, max_length=IMPORT_MAX_CELL, strip=True
            )

    def values(self) -> dict[str, str]:
        return {name: self.cleaned_data[name] for name in self.fields if name != "version"}


class ImportActionForm(ImportVersionForm):
    action = forms.ChoiceField(
        choices=[
            ("confirm", _("Import")),
            ("cancel", _("Discard")),
            ("leave_out", _("Leave out")),
            ("take_back", _("Take back")),
            ("start_again", _("Start again")),
            ("leave_out_problems", _("Leave out every row with a problem")),
        ]
    )
    row = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("action") in {"leave_out", "take_back"} and data.get("row") is None:
            raise forms.ValidationError(_("Choose the row."))
        return data

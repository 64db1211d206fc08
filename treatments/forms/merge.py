"""Forms of the comparison and merge of two records of one person."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from clinic.forms import VERSION_LOST


class MergeChooseForm(forms.Form):
    """Which record to compare with (`into`: the one that stays), or a search
    for it (`q`). Both in the address: the comparison is a page read."""

    into = forms.UUIDField(required=False, widget=forms.HiddenInput)
    q = forms.CharField(
        label=_("Find the other record"),
        required=False,
        max_length=100,
        widget=forms.TextInput(
            attrs={
                "type": "search",
                "placeholder": _("Name, email, phone or date of birth"),
                "autocomplete": "off",
            }
        ),
    )


class MergeForm(forms.Form):
    """The merge as confirmed on the comparison page. It carries the versions
    of both records as the page showed them (clinic.concurrency): a merge
    from a comparison opened before either record changed is refused."""

    into = forms.UUIDField(
        widget=forms.HiddenInput,
        error_messages={
            "required": _("Choose the record that stays."),
            "invalid": _("Choose the record that stays."),
        },
    )
    take_email = forms.BooleanField(label=_("Take this email"), required=False)
    take_phone = forms.BooleanField(label=_("Take this mobile number"), required=False)
    confirm = forms.BooleanField(
        label=_("I have checked that both records are the same person. Merging cannot be undone."),
        error_messages={"required": _("Confirm that both records are the same person.")},
    )
    duplicate_version = forms.CharField(required=False, widget=forms.HiddenInput)
    survivor_version = forms.CharField(required=False, widget=forms.HiddenInput)

    def _version(self, name: str) -> int | None:
        # A missing or mangled version is said once, however many are.
        value = str(self.cleaned_data.get(name) or "").strip()
        number = int(value) if value.isascii() and value.isdigit() else 0
        if number < 1:
            if not getattr(self, "_version_lost", False):
                self._version_lost = True
                self.add_error(None, VERSION_LOST)
            return None
        return number

    def clean_duplicate_version(self) -> int | None:
        return self._version("duplicate_version")

    def clean_survivor_version(self) -> int | None:
        return self._version("survivor_version")

    @classmethod
    def opened(cls, *, survivor: Any, duplicate: Any) -> MergeForm:
        """The form as the comparison page first shows it."""
        return cls(
            initial={
                "into": survivor.uuid,
                "duplicate_version": duplicate.version,
                "survivor_version": survivor.version,
            }
        )

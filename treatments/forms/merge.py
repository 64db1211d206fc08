"""Forms of the comparison and merge of two records of one person."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _


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
    """The merge as confirmed on the comparison page."""

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

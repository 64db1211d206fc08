"""Forms of the consent pages. They validate shape; the services decide what is
acceptable (current version, every section confirmed, a drawn signature)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from clinic.forms import SubmissionTokenMixin, VersionedFormMixin
from consent.models import CONSENT_SECTION_NAMES, ConsentForm, ConsentFormVersion


class ConsentFormCreateForm(SubmissionTokenMixin, forms.ModelForm):
    class Meta:
        model = ConsentForm
        fields = ["title"]
        help_texts = {"title": _("For example: Mesotherapy of the face, neck and hands.")}


class DraftForm(VersionedFormMixin, forms.ModelForm):
    """The text of the draft version: six sections and the photographs wording.
    It carries the draft's version, 0 when the form had no draft (a new draft
    starts from the current text), so a save opened before another manager's
    is refused (`clinic.concurrency`)."""

    versioned_without_instance = True

    class Meta:
        model = ConsentFormVersion
        fields = [*CONSENT_SECTION_NAMES, "photo_consent_text"]
        widgets = {name: forms.Textarea(attrs={"rows": 4}) for name in CONSENT_SECTION_NAMES}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["photo_consent_text"].widget.attrs["rows"] = 3

    def opened_version(self) -> int:
        return self.instance.version if self.instance.pk is not None else 0

    def texts(self) -> dict[str, str]:
        return {name: self.cleaned_data[name] for name in self.Meta.fields}


PHOTO_CHOICES = (
    ("yes", _("Yes, I agree to photographs")),
    ("no", _("No, I do not agree to photographs")),
)


class SignForm(SubmissionTokenMixin, forms.Form):
    """What the patient fills in on the tablet, and the practitioner's countersignature.
    Section checkboxes are named confirm_<section>. The page's one-time token
    makes a double tap on "Sign" record one signature."""

    version = forms.UUIDField(widget=forms.HiddenInput)
    photo_consent = forms.ChoiceField(
        label=_("Your choice about photographs"),
        choices=PHOTO_CHOICES,
        widget=forms.RadioSelect,
        error_messages={"required": _("Please choose yes or no for photographs.")},
    )
    signer_name = forms.CharField(
        label=_("Your full name"), max_length=200, required=False, strip=True
    )
    signature = forms.CharField(widget=forms.HiddenInput, required=False, strip=True)
    witnessed = forms.BooleanField(required=False)

    def __init__(self, *args: Any, version: ConsentFormVersion, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {})["version"] = version.uuid
        super().__init__(*args, **kwargs)
        self.section_fields: list[tuple[str, str, str]] = []
        for name, heading, text in version.sections:
            field_name = f"confirm_{name}"
            self.fields[field_name] = forms.BooleanField(
                label=_("I have read and understood this section"), required=False
            )
            self.section_fields.append((field_name, heading, text))

    def sections_confirmed(self) -> list[str]:
        return [name for name in CONSENT_SECTION_NAMES if self.cleaned_data.get(f"confirm_{name}")]


class PublishForm(VersionedFormMixin, forms.Form):
    """Publishing a draft, with the draft's version the preview showed."""

    versioned_without_instance = True


class WithdrawForm(SubmissionTokenMixin, forms.Form):
    reason = forms.CharField(
        label=_("Why is the consent withdrawn?"),
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=2000,
        error_messages={"required": _("Please write why the consent is withdrawn.")},
    )

"""Forms of the patient register."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from clinic.concurrency import StaleEditError, differs
from clinic.forms import (
    StaleNoticeMixin,
    SubmissionTokenMixin,
    VersionedFormMixin,
    stale_note,
)
from clinic.widgets import BirthDateField, BirthDateInput, DayField, DayInput
from patients.images import CleanImage, ImageRejectedError, clean_photo
from patients.models import (
    HISTORY_BOOLEAN_FIELDS,
    HISTORY_QUESTIONS,
    PATIENT_EDITABLE_FIELDS,
    Concern,
    Consultation,
    MedicalHistory,
    Patient,
    Photo,
    ReminderChannel,
    TreatmentArea,
)


class PatientForm(VersionedFormMixin, forms.ModelForm):
    """Registration and contact details. Never clinical information. Editing,
    it carries the record's version (`VersionedFormMixin`)."""

    confirm_not_duplicate = forms.BooleanField(
        required=False,
        widget=forms.HiddenInput,
    )

    class Meta:
        model = Patient
        fields = list(PATIENT_EDITABLE_FIELDS)
        widgets = {
            "date_of_birth": BirthDateInput(),
            "address": forms.Textarea(attrs={"rows": 2}),
        }
        field_classes = {"date_of_birth": BirthDateField}
        help_texts = {
            "phone": _("For example 07911 123456, or with the country code: +33 6 12 34 56 78."),
        }
        error_messages = {
            # The example is the hint under the field: the message does not repeat it.
            "phone": {"invalid": _("Enter a valid phone number.")},
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


class PatientRegistrationForm(PatientForm):
    """Registration: the contact details plus a one-time token, issued with the
    empty form and sent back with every post of it (the duplicate warning
    keeps it), so that the same registration sent twice registers once."""

    registration_token = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.fields["registration_token"].initial = str(uuid.uuid4())

    def clean_registration_token(self) -> uuid.UUID | None:
        # A missing or mangled token only loses the double-submission guard;
        # the duplicate check still runs.
        try:
            return uuid.UUID(self.cleaned_data.get("registration_token") or "")
        except ValueError:
            return None


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


YES_NO = [("yes", _("Yes")), ("no", _("No"))]


def _yes_no_field(label: Any) -> forms.TypedChoiceField:
    return forms.TypedChoiceField(
        label=label,
        choices=YES_NO,
        coerce=lambda value: value == "yes",
        widget=forms.RadioSelect(attrs={"class": "form-check-input"}),
        error_messages={"required": _("Answer yes or no.")},
    )


class BasedOnMixin(StaleNoticeMixin):
    """A form for a new row of a record where the newest row counts (a medical
    history, a consultation): it carries in the hidden field `based_on` the
    uuid of the newest row when it was opened ("" for none), so that the
    service refuses it if another was recorded since (`show_stale` shows
    which). A missing field is treated as "none" was seen."""

    def _add_based_on(self, newest: Any) -> None:
        self.fields["based_on"] = forms.CharField(
            required=False, widget=forms.HiddenInput, max_length=64
        )
        if not self.is_bound:  # type: ignore[attr-defined]
            self.fields["based_on"].initial = str(newest.uuid) if newest is not None else ""

    def based_on(self) -> str:
        return str(self.cleaned_data.get("based_on") or "").strip()  # type: ignore[attr-defined]


class MedicalHistoryForm(SubmissionTokenMixin, BasedOnMixin, forms.ModelForm):
    """The questionnaire. Signing it (the last box) records it for good. It
    carries the history it started from (`based_on`) and a one-time token."""

    isotretinoin_taken = _yes_no_field(_("Isotretinoin (Roaccutane) taken in the last 18 months"))
    implant_areas = forms.TypedMultipleChoiceField(
        label=_("Permanent injectable implants (fillers, threads) in"),
        choices=TreatmentArea.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Tick every area with a permanent implant. Leave all empty if none."),
    )
    confirm_reviewed = forms.BooleanField(
        label=_("I have gone through every answer with the patient, and I sign this history."),
        error_messages={"required": _("Tick this box to sign the history.")},
    )

    class Meta:
        model = MedicalHistory
        fields = [
            *HISTORY_BOOLEAN_FIELDS,
            "chronic_condition_details",
            "isotretinoin_last_dose",
            "medicines_other",
            "allergy_ingredients",
            "allergy_other",
            "implant_areas",
            "notes",
        ]
        widgets = {
            "isotretinoin_last_dose": DayInput(),
            "chronic_condition_details": forms.Textarea(attrs={"rows": 2}),
            "medicines_other": forms.Textarea(attrs={"rows": 2}),
            "allergy_ingredients": forms.Textarea(attrs={"rows": 2}),
            "allergy_other": forms.Textarea(attrs={"rows": 2}),
            "notes": forms.Textarea(attrs={"rows": 3}),
        }
        field_classes = {"isotretinoin_last_dose": DayField}

    def __init__(self, *args: Any, previous: MedicalHistory | None = None, **kwargs: Any) -> None:
        if previous is not None and "initial" not in kwargs:
            # Start from the last answers: the practitioner checks each one again.
            initial: dict[str, Any] = {}
            for name in self.Meta.fields:
                value = getattr(previous, name)
                initial[name] = ("yes" if value else "no") if isinstance(value, bool) else value
            initial["isotretinoin_taken"] = "yes" if previous.isotretinoin_last_dose else "no"
            kwargs["initial"] = initial
        super().__init__(*args, **kwargs)
        self._add_based_on(previous)
        for group_label, questions in HISTORY_QUESTIONS:
            for name, label in questions:
                self.fields[name] = _yes_no_field(label)
                self.fields[name].group = group_label  # type: ignore[attr-defined]

    def clean_isotretinoin_last_dose(self) -> date | None:
        last: date | None = self.cleaned_data.get("isotretinoin_last_dose")
        if last and last > timezone.localdate():
            raise forms.ValidationError(
                _("The last dose cannot be in the future. If still taking it, give today's date.")
            )
        return last

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        taken = data.get("isotretinoin_taken")
        last = data.get("isotretinoin_last_dose")
        if taken is True and not last and "isotretinoin_last_dose" not in self.errors:
            self.add_error("isotretinoin_last_dose", _("Give the date of the last dose."))
        if taken is False and last:
            self.add_error(
                "isotretinoin_last_dose",
                _("You answered no to isotretinoin: remove this date, or answer yes."),
            )
        if (
            data.get("chronic_condition_uncontrolled") is True
            and not str(data.get("chronic_condition_details", "")).strip()
        ):
            self.add_error("chronic_condition_details", _("Say which condition, briefly."))
        return data

    def answers(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in self.Meta.fields}

    def show_stale_history(
        self,
        error: StaleEditError,
        *,
        base: MedicalHistory | None,
        current: MedicalHistory | None,
    ) -> int:
        """Show the refusal of a signing because `current` was signed after
        the form was opened from `base` (None: from no history), and make the
        form one that can be signed again, on purpose: each answer the
        practitioner left as `base` had it now shows `current`'s, the answers
        that colleague changed carry a note, the form starts from `current`,
        and the signing box is unticked, so that nothing is signed until the
        answers that differ have been gone through with the patient. Returns
        the status to answer with (409; 400 for a forged form)."""
        if not error.is_stale or current is None:
            return self.show_stale(error)
        self.stale = error
        data = self.data.copy()
        changes = {change.field: change for change in error.changes}
        for name in [*self.Meta.fields, "isotretinoin_taken"]:
            mine = self.cleaned_data.get(name)
            theirs = _history_value(current, name)
            typed = base is None or _answer_differs(mine, _history_value(base, name))
            change = changes.get(name)
            if not typed:
                _set_answer(data, name, theirs)
                if change is not None:
                    self.note_stale(name, stale_note(change, yours=False))
            elif change is not None and _answer_differs(mine, theirs):
                self.note_stale(name, stale_note(change, yours=True))
        data["based_on"] = str(current.uuid)
        data.pop("confirm_reviewed", None)  # signed again only on purpose
        self.data = data
        return 409

    def question_groups(self) -> list[tuple[Any, list[forms.BoundField]]]:
        return [(label, [self[name] for name, _q in qs]) for label, qs in HISTORY_QUESTIONS]


def _history_value(history: MedicalHistory, name: str) -> Any:
    """Answer `name` of `history` as the questionnaire's fields hold it
    (isotretinoin_taken: whether a last dose is given)."""
    if name == "isotretinoin_taken":
        return bool(history.isotretinoin_last_dose)
    return getattr(history, name)


def _answer_differs(one: Any, other: Any) -> bool:
    # Areas ticked are a set; an empty text and no text are the same answer.
    if isinstance(one, list | tuple) or isinstance(other, list | tuple):
        return set(one or ()) != set(other or ())
    if isinstance(one, str) or isinstance(other, str):
        return differs(str(one or ""), str(other or ""))
    return bool(one != other)


def _set_answer(data: Any, name: str, value: Any) -> None:
    """Put `value` in the posted `data` (a QueryDict) as the browser sends it."""
    if isinstance(value, bool):
        data[name] = "yes" if value else "no"
    elif isinstance(value, list | tuple):
        data.setlist(name, [str(item) for item in value])
    elif isinstance(value, date):
        data[name] = value.isoformat()
    else:
        data[name] = "" if value is None else str(value)


class ConsultationForm(SubmissionTokenMixin, BasedOnMixin, forms.ModelForm):
    """A consultation. It carries the patient's newest consultation when opened
    (`based_on`) and a one-time token."""

    concerns = forms.TypedMultipleChoiceField(
        label=_("Concerns"),
        choices=Concern.choices,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": _("Tick at least one concern.")},
    )
    areas = forms.TypedMultipleChoiceField(
        label=_("Areas to treat"),
        choices=TreatmentArea.choices,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": _("Tick at least one area.")},
    )

    class Meta:
        model = Consultation
        fields = [
            "skin_type",
            "concerns",
            "areas",
            "goals",
            "expectations_discussed",
            "risks_discussed",
            "alternatives_discussed",
            "recommended_protocol",
            "notes",
        ]
        widgets = {
            "goals": forms.Textarea(attrs={"rows": 2}),
            "alternatives_discussed": forms.Textarea(attrs={"rows": 2}),
            "notes": forms.Textarea(attrs={"rows": 3}),
        }

    def __init__(self, *args: Any, newest: Consultation | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._add_based_on(newest)
        for name in ("expectations_discussed", "risks_discussed"):
            self.fields[name].required = True
            self.fields[name].error_messages["required"] = _(
                "Discuss this with the patient before recording the consultation."
            )

    def service_fields(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in self.Meta.fields}


class PhotoForm(SubmissionTokenMixin, forms.ModelForm):
    image = forms.FileField(
        label=_("Photo"),
        help_text=_("JPEG or PNG, up to 15 MB. Location and camera details are removed."),
        widget=forms.ClearableFileInput(attrs={"accept": "image/jpeg,image/png"}),
    )

    class Meta:
        model = Photo
        fields = ["area", "kind", "taken_on"]
        widgets = {"taken_on": DayInput()}
        field_classes = {"taken_on": DayField}

    def clean_taken_on(self) -> date:
        taken: date = self.cleaned_data["taken_on"]
        if taken > timezone.localdate():
            raise forms.ValidationError(_("The date cannot be in the future."))
        return taken

    def clean_image(self) -> CleanImage:
        upload = self.cleaned_data["image"]
        try:
            return clean_photo(upload, size=upload.size)
        except ImageRejectedError as error:
            raise forms.ValidationError(str(error)) from None


class PhotoCompareForm(forms.Form):
    a = forms.UUIDField()
    b = forms.UUIDField()

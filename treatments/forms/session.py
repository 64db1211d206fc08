"""Forms of the session record: the cocktail lines, adverse events, the
session's own fields, and amendments."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django import forms
from django.forms import BaseFormSet, formset_factory
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from clinic.forms import SubmissionTokenMixin, TextBlocksMixin, VersionedFormMixin
from patients.models import TreatmentArea
from treatments.models import (
    DAY_OF_QUESTIONS,
    AdverseEffect,
    Batch,
    Device,
    Severity,
    Technique,
    Unit,
)
from treatments.services.session import AdverseEventInput, LineInput

BLANK: list[tuple[str, Any]] = [("", "---------")]


def batch_label(batch: Batch, *, today: Any = None) -> str:
    label = _("%(product)s · lot %(lot)s · expires %(day)s") % {
        "product": batch.product.name,
        "lot": batch.lot_number,
        "day": batch.expiry_date.strftime("%d/%m/%Y"),
    }
    if today is not None and not batch.is_usable_on(today):
        label += " " + _("(cannot be used)")
    return label


class BatchField(forms.ChoiceField):
    """A batch by its uuid, chosen from batches loaded once for the whole page."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches: dict[str, Batch] = {}

    def clean(self, value: Any) -> Batch | None:
        value = super().clean(value)
        if not value:
            return None
        return self.batches[str(value)]

    def valid_value(self, value: Any) -> bool:
        return str(value) in self.batches


def _deleted(form: forms.Form) -> bool:
    return bool(form.cleaned_data.get("DELETE"))


class CocktailLineForm(forms.Form):
    batch = BatchField(label=gettext_lazy("Product batch"))
    amount = forms.DecimalField(
        label=gettext_lazy("Amount"),
        min_value=Decimal("0.01"),
        max_value=Decimal("100"),
        max_digits=6,
        decimal_places=2,
    )
    unit = forms.ChoiceField(label=gettext_lazy("Unit"), choices=Unit.choices, initial=Unit.ML)
    area = forms.ChoiceField(label=gettext_lazy("Area"), choices=BLANK + TreatmentArea.choices)
    technique = forms.ChoiceField(
        label=gettext_lazy("Technique"), choices=BLANK + Technique.choices
    )
    depth_mm = forms.DecimalField(
        label=gettext_lazy("Depth (mm)"),
        min_value=Decimal("0.1"),
        max_value=Decimal("13"),
        max_digits=4,
        decimal_places=1,
    )
    needle_gauge = forms.IntegerField(
        label=gettext_lazy("Needle (gauge)"), min_value=18, max_value=34
    )
    device = forms.ChoiceField(label=gettext_lazy("Given with"), choices=BLANK + Device.choices)

    def __init__(
        self, *args: Any, batches: dict[str, Batch], usable: list[Batch], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["batch"]
        assert isinstance(field, BatchField)
        field.batches = batches
        today = timezone.localdate()
        choices = BLANK + [(str(b.uuid), batch_label(b)) for b in usable]
        # A batch typed in that is no longer usable stays shown, so nothing is lost.
        shown = {str(b.uuid) for b in usable}
        chosen = self.data.get(self.add_prefix("batch")) if self.is_bound else None
        if chosen and chosen in batches and chosen not in shown:
            choices.append((chosen, batch_label(batches[chosen], today=today)))
        field.choices = choices

    def to_input(self) -> LineInput:
        data = self.cleaned_data
        return LineInput(
            batch=data["batch"],
            amount=data["amount"],
            unit=data["unit"],
            area=data["area"],
            technique=data["technique"],
            depth_mm=data["depth_mm"],
            needle_gauge=data["needle_gauge"],
            device=data["device"],
        )


if TYPE_CHECKING:
    _LineFormSet = BaseFormSet[CocktailLineForm]
else:
    _LineFormSet = BaseFormSet


class BaseLineFormSet(_LineFormSet):
    def add_fields(self, form: CocktailLineForm, index: int | None) -> None:
        super().add_fields(form, index)
        form.fields["DELETE"].label = _("Leave out this line")

    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        if not self.lines():
            raise forms.ValidationError(_("Record at least one cocktail line."))

    def lines(self) -> list[LineInput]:
        return [form.to_input() for form in self.forms if form.has_changed() and not _deleted(form)]


# A session has a handful of lines: `absolute_max` refuses a forged
# TOTAL_FORMS before a single form is built.
MAX_LINES = 20
CocktailLineFormSet = formset_factory(
    CocktailLineForm,
    formset=BaseLineFormSet,
    extra=1,
    can_delete=True,
    max_num=MAX_LINES,
    absolute_max=MAX_LINES,
    validate_max=True,
)


class AdverseEventForm(TextBlocksMixin, forms.Form):
    effect = forms.ChoiceField(label=gettext_lazy("Effect"), choices=BLANK + AdverseEffect.choices)
    severity = forms.ChoiceField(label=gettext_lazy("Severity"), choices=BLANK + Severity.choices)
    onset = forms.DateTimeField(
        label=gettext_lazy("Started"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    resolved_on = forms.DateField(
        label=gettext_lazy("Resolved on"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        help_text=gettext_lazy("Leave empty if not resolved yet."),
    )
    follow_up_needed = forms.BooleanField(label=gettext_lazy("Follow-up needed"), required=False)
    notes = forms.CharField(
        label=gettext_lazy("Notes"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def to_input(self) -> AdverseEventInput:
        data = self.cleaned_data
        return AdverseEventInput(
            effect=data["effect"],
            severity=data["severity"],
            onset=data["onset"],
            resolved_on=data["resolved_on"],
            follow_up_needed=data["follow_up_needed"],
            notes=data["notes"],
        )


class LaterAdverseEventForm(SubmissionTokenMixin, AdverseEventForm):
    """An adverse event noticed after the session, on its own form: sent twice,
    recorded once."""


class AdverseEventFollowUpForm(SubmissionTokenMixin, forms.Form):
    """A follow-up of one adverse event of the session (named by its uuid in
    `event`): how it is going, and whether it has now resolved. Sent twice,
    added once. Each open event has its own copy of the form on the session
    page, so `auto_id` is given per event."""

    event = forms.UUIDField(widget=forms.HiddenInput)
    note = forms.CharField(
        label=gettext_lazy("Follow-up"),
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=gettext_lazy("How it is going, and what was advised or done."),
    )
    resolved = forms.BooleanField(
        label=gettext_lazy("Resolved: it has settled, nothing more to follow up"),
        required=False,
    )


if TYPE_CHECKING:
    _AdverseFormSet = BaseFormSet[AdverseEventForm]
else:
    _AdverseFormSet = BaseFormSet


class BaseAdverseFormSet(_AdverseFormSet):
    def add_fields(self, form: AdverseEventForm, index: int | None) -> None:
        super().add_fields(form, index)
        form.fields["DELETE"].label = _("Leave out this event")

    def events(self) -> list[AdverseEventInput]:
        return [form.to_input() for form in self.forms if form.has_changed() and not _deleted(form)]


AdverseEventFormSet = formset_factory(
    AdverseEventForm,
    formset=BaseAdverseFormSet,
    extra=1,
    can_delete=True,
    max_num=MAX_LINES,
    absolute_max=MAX_LINES,
    validate_max=True,
)


class SessionForm(SubmissionTokenMixin, VersionedFormMixin, forms.Form):
    """The session's own fields. It carries the booking's version the page
    showed (`initial["version"]`) and a one-time token: sent twice, the
    session is completed once and the second leads to the record."""

    versioned_without_instance = True

    numbing_cream = forms.BooleanField(label=gettext_lazy("Numbing cream used"), required=False)
    immediate_reactions = forms.CharField(
        label=gettext_lazy("Immediate reactions"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=gettext_lazy("Leave empty if none."),
    )
    notes = forms.CharField(
        label=gettext_lazy("Session notes"),
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


YES_NO = [("yes", gettext_lazy("Yes")), ("no", gettext_lazy("No"))]


def _yes_no(value: str) -> bool:
    return value == "yes"


class DayOfCheckForm(forms.Form):
    """The day-of-treatment questions, each answered yes or no. An unanswered
    question is not an error here: gate 6 refuses completion with its sentence,
    and the page marks the question."""

    prefix = "today"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, label in DAY_OF_QUESTIONS:
            self.fields[name] = forms.TypedChoiceField(
                label=label,
                choices=YES_NO,
                coerce=_yes_no,
                empty_value=None,
                required=False,
                widget=forms.RadioSelect(attrs={"class": "day-of-answer"}),
            )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        # One answer per question: a forged post sending both "yes" and "no"
        # is not an answer (the browser sends one).
        getlist = getattr(self.data, "getlist", None)
        for name, _label in DAY_OF_QUESTIONS:
            if getlist is not None and len(getlist(self.add_prefix(name))) > 1:
                self.add_error(name, _("Choose one answer: yes or no."))
        return cleaned

    def answers(self) -> dict[str, bool | None]:
        """{field: True / False / None (not answered)}, for gate 6."""
        return {name: self.cleaned_data.get(name) for name, _label in DAY_OF_QUESTIONS}

    def unanswered(self) -> list[str]:
        """Names of the questions left blank (on a bound form)."""
        if not self.is_bound:
            return []
        return [
            name for name, _label in DAY_OF_QUESTIONS if not self.data.get(self.add_prefix(name))
        ]


class AmendmentForm(SubmissionTokenMixin, forms.Form):
    text = forms.CharField(
        label=gettext_lazy("Amendment"),
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=gettext_lazy(
            "The record stays as it was; this is added below it with your name and the time."
        ),
    )

"""Forms of allergy tests: giving one, and reading it."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from clinic import dates
from clinic.forms import SubmissionTokenMixin
from clinic.widgets import DayTimeField
from patients.images import CleanImage, ImageRejectedError, clean_photo
from treatments.models import AllergyResult, Batch, Ingredient, Product
from treatments.selectors.catalogue import batches_usable
from treatments.services.allergy import given_at_problem, late_entry_problem


class BatchChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Batch) -> str:
        return _("%(product)s, lot %(lot)s (expires %(expiry)s)") % {
            "product": obj.product.name,
            "lot": obj.lot_number,
            "expiry": dates.day(obj.expiry_date),
        }


class AllergyTestForm(SubmissionTokenMixin, forms.Form):
    """What was injected, where and when. A product counts as all its ingredients.
    Its one-time token makes a double-clicked "Record" record one test.

    The moment of entry is never a field: the service takes it from the
    server's clock. A time given more than 15 minutes earlier needs a reason.
    """

    ingredients = forms.ModelMultipleChoiceField(
        label=_("Ingredients tested"),
        queryset=Ingredient.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    products = forms.ModelMultipleChoiceField(
        label=_("Products tested"),
        queryset=Product.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("A product tests every ingredient it contains."),
    )
    batch = BatchChoiceField(
        label=_("Batch of the test substance"),
        queryset=Batch.objects.none(),
        required=False,
        empty_label=_("Not recorded"),
        error_messages={
            "invalid_choice": _("This batch cannot be used: it is expired or recalled.")
        },
    )
    site = forms.CharField(
        label=_("Site"),
        max_length=100,
        help_text=_("For example: inner left forearm."),
    )
    given_at = DayTimeField(label=_("Time given"))
    late_entry_reason = forms.CharField(
        label=_("Reason for the late entry"),
        required=False,
        max_length=300,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_(
            "Only when the test was given more than 15 minutes ago, for example on "
            "paper: say why it is entered now. It can be read 24 hours after it is entered."
        ),
    )

    def __init__(self, *args: Any, today: date, **kwargs: Any) -> None:
        kwargs.setdefault(
            "initial", {"given_at": timezone.localtime().replace(second=0, microsecond=0)}
        )
        super().__init__(*args, **kwargs)
        self.fields["ingredients"].queryset = Ingredient.objects.filter(active=True).order_by(  # type: ignore[attr-defined]
            "name"
        )
        self.fields["products"].queryset = Product.objects.filter(active=True).order_by(  # type: ignore[attr-defined]
            "name", "maker"
        )
        self.fields["batch"].queryset = batches_usable(on=today)  # type: ignore[attr-defined]

    def clean_given_at(self) -> datetime:
        given_at: datetime = self.cleaned_data["given_at"]
        problem = given_at_problem(given_at, now=timezone.now())
        if problem:
            raise forms.ValidationError(problem)
        return given_at

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if (
            "ingredients" in data
            and "products" in data
            and not data["ingredients"]
            and not data["products"]
        ):
            self.add_error(None, _("Choose at least one ingredient or product."))
        if "given_at" in data:
            problem = late_entry_problem(
                data["given_at"], now=timezone.now(), reason=data.get("late_entry_reason", "")
            )
            if problem:
                self.add_error("late_entry_reason", problem)
        return data

    def service_fields(self) -> dict[str, Any]:
        return {
            name: self.cleaned_data[name]
            for name in (
                "ingredients",
                "products",
                "batch",
                "site",
                "given_at",
                "late_entry_reason",
                "submission_token",
            )
        }


class AllergyReadingForm(SubmissionTokenMixin, forms.Form):
    """The reading, 24 hours after the test."""

    result = forms.ChoiceField(
        label=_("Result"), choices=AllergyResult.choices, widget=forms.RadioSelect
    )
    reaction = forms.CharField(
        label=_("Description of the reaction"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Required when positive: redness, swelling, size in mm, itching..."),
    )
    photo = forms.FileField(
        label=_("Photo of the reaction"),
        required=False,
        help_text=_("Optional. JPEG or PNG, up to 15 MB. Location and camera details are removed."),
        widget=forms.ClearableFileInput(attrs={"accept": "image/jpeg,image/png"}),
    )

    def clean_photo(self) -> CleanImage | None:
        upload = self.cleaned_data.get("photo")
        if not upload:
            return None
        try:
            return clean_photo(upload, size=upload.size)
        except ImageRejectedError as error:
            raise forms.ValidationError(str(error)) from None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("result") == AllergyResult.POSITIVE and not data.get("reaction", "").strip():
            self.add_error("reaction", _("Describe the reaction seen."))
        return data

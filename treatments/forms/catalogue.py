"""Forms of the catalogue: ingredients, products, batches, recall, aftercare
sheets and protocols with their default cocktail."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from typing import Any, cast

from django import forms
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from clinic import clinic_settings
from clinic.forms import SubmissionTokenMixin, TextBlocksMixin, VersionedFormMixin
from clinic.widgets import DayInput
from patients.models import TreatmentArea
from treatments.models import (
    DEPTH_MM_MAX,
    DEPTH_MM_MIN,
    NEEDLE_GAUGE_MAX,
    NEEDLE_GAUGE_MIN,
    AftercareSheet,
    Batch,
    Ingredient,
    Product,
    Protocol,
    Unit,
)
from treatments.services.catalogue import (
    BATCH_FIELDS,
    INGREDIENT_FIELDS,
    PRODUCT_FIELDS,
    PROTOCOL_FIELDS,
    SHEET_FIELDS,
    CocktailLine,
)

DATE_WIDGET = DayInput()


class IngredientForm(SubmissionTokenMixin, VersionedFormMixin, forms.ModelForm):
    class Meta:
        model = Ingredient
        fields = list(INGREDIENT_FIELDS)
        help_texts = {"active": _("Untick when the clinic no longer uses it; it stays on record.")}

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        others = Ingredient.objects.filter(name__iexact=name)
        if self.instance.pk:
            others = others.exclude(pk=self.instance.pk)
        if others.exists():
            raise forms.ValidationError(_("An ingredient with this name already exists."))
        return name

    def service_fields(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in INGREDIENT_FIELDS}


class ProductForm(SubmissionTokenMixin, VersionedFormMixin, forms.ModelForm):
    ingredients = forms.ModelMultipleChoiceField(
        label=_("Ingredients"),
        queryset=Ingredient.objects.order_by("name"),
        widget=forms.CheckboxSelectMultiple(attrs={"class": "form-check-input"}),
        required=True,
        error_messages={"required": _("Choose at least one ingredient.")},
    )

    class Meta:
        model = Product
        fields = ["name", "maker", "concentration", "ingredients", "notes", "active"]
        widgets = {"notes": forms.Textarea(attrs={"rows": 3})}
        help_texts = {"active": _("Untick when the clinic no longer buys it; it stays on record.")}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Ingredients no longer in use stay listed only where already chosen.
        chosen = self.instance.ingredients.all() if self.instance.pk else Ingredient.objects.none()
        self.fields["ingredients"].queryset = (  # type: ignore[attr-defined]
            Ingredient.objects.filter(active=True) | Ingredient.objects.filter(pk__in=chosen)
        ).order_by("name")

    def service_fields(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in PRODUCT_FIELDS}


class BatchForm(SubmissionTokenMixin, forms.ModelForm):
    class Meta:
        model = Batch
        fields = list(BATCH_FIELDS)
        widgets = {"expiry_date": DATE_WIDGET, "received_on": DATE_WIDGET}

    def __init__(self, *args: Any, product: Product, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.product = product
        self.fields["received_on"].initial = timezone.localdate()
        self.fields["quantity_received"].widget.attrs["min"] = 1

    def clean_lot_number(self) -> str:
        lot: str = self.cleaned_data["lot_number"].strip()
        if Batch.objects.filter(product=self.product, lot_number__iexact=lot).exists():
            raise forms.ValidationError(_("This product already has a batch with this lot number."))
        return lot

    def clean_expiry_date(self) -> date:
        expiry: date = self.cleaned_data["expiry_date"]
        if expiry < timezone.localdate():
            raise forms.ValidationError(_("This expiry date has passed."))
        return expiry

    def clean_received_on(self) -> date:
        received: date = self.cleaned_data["received_on"]
        if received > timezone.localdate():
            raise forms.ValidationError(_("The date received cannot be in the future."))
        return received

    def service_fields(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in BATCH_FIELDS}


class RecallForm(TextBlocksMixin, forms.Form):
    reason = forms.CharField(
        label=_("Reason for the recall"),
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("For example the maker's recall notice, or a storage fault."),
        error_messages={"required": _("Give the reason for the recall.")},
    )


class AftercareSheetForm(SubmissionTokenMixin, VersionedFormMixin, forms.ModelForm):
    class Meta:
        model = AftercareSheet
        fields = list(SHEET_FIELDS)
        widgets = {
            "introduction": forms.Textarea(attrs={"rows": 3}),
            "do_advice": forms.Textarea(attrs={"rows": 6}),
            "avoid_advice": forms.Textarea(attrs={"rows": 6}),
            "warning_signs": forms.Textarea(attrs={"rows": 5}),
        }

    def service_fields(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in SHEET_FIELDS}


class ProtocolForm(SubmissionTokenMixin, VersionedFormMixin, forms.ModelForm):
    default_areas = forms.MultipleChoiceField(
        label=_("Default areas"),
        choices=TreatmentArea.choices,
        widget=forms.CheckboxSelectMultiple(attrs={"class": "form-check-input"}),
        error_messages={"required": _("Choose at least one area.")},
    )

    class Meta:
        model = Protocol
        fields = list(PROTOCOL_FIELDS)
        widgets = {
            "indication": forms.Textarea(attrs={"rows": 3}),
            "default_depth_mm": forms.NumberInput(
                attrs={"min": DEPTH_MM_MIN, "max": DEPTH_MM_MAX, "step": "0.1"}
            ),
            "default_needle_gauge": forms.NumberInput(
                attrs={"min": NEEDLE_GAUGE_MIN, "max": NEEDLE_GAUGE_MAX}
            ),
        }
        help_texts = {
            "default_depth_mm": format_lazy(
                _("From {least} to {most} mm."), least=DEPTH_MM_MIN, most=DEPTH_MM_MAX
            ),
            "default_needle_gauge": format_lazy(
                _("From {least}G to {most}G."), least=NEEDLE_GAUGE_MIN, most=NEEDLE_GAUGE_MAX
            ),
            "maintenance_months": _(
                "After the course, maintenance is usually 1 to 2 times a year: "
                "6 for twice a year, 12 for once a year."
            ),
            "default_sessions": _("Usually 4 to 10."),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["consent_form"].empty_label = _("Choose a consent form")  # type: ignore[attr-defined]
        self.fields["aftercare_sheet"].empty_label = _("Choose an aftercare sheet")  # type: ignore[attr-defined]
        if self.instance.pk is None and not self.is_bound:
            # A new protocol's sessions last the clinic's default length (its settings).
            self.initial["session_minutes"] = clinic_settings.current().default_session_minutes

    def service_fields(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in PROTOCOL_FIELDS}

    def _values_shown(self) -> dict[str, Any]:
        # The default cocktail is a formset beside this form: its lines as
        # opened, so that a save sends them only when the person changed them.
        values = super()._values_shown()
        if self.instance.pk is not None:
            values["cocktail"] = _lines_text(
                (line.product.pk, line.amount, line.unit) for line in self.instance.cocktail.all()
            )
        return values

    def cocktail_typed(self, lines: list[CocktailLine]) -> bool:
        """Whether the person changed the default cocktail since the form was
        opened (True when the form does not say what it was opened with)."""
        opened = self._opened()
        if opened is None or "cocktail" not in opened:
            return True
        typed = _lines_text((line.product.pk, line.amount, line.unit) for line in lines)
        return bool(opened["cocktail"] != typed)


def _lines_text(lines: Iterable[tuple[int, Decimal, str]]) -> list[list[str]]:
    """Cocktail lines as text, amounts without trailing zeros (1.50 is 1.5)."""
    return [
        [str(product), f"{Decimal(amount).normalize():f}", unit] for product, amount, unit in lines
    ]


class CocktailLineForm(forms.Form):
    product = forms.ModelChoiceField(
        label=_("Product"),
        queryset=Product.objects.order_by("name", "maker"),
        required=False,
        empty_label=_("Choose a product"),
    )
    amount = forms.DecimalField(
        label=_("Amount"), max_digits=6, decimal_places=2, min_value=0.01, required=False
    )
    unit = forms.ChoiceField(label=_("Unit"), choices=Unit.choices, initial=Unit.ML)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("DELETE"):
            return data
        if data.get("product") and data.get("amount") is None and "amount" not in self.errors:
            self.add_error("amount", _("Give the amount."))
        if data.get("amount") is not None and not data.get("product"):
            self.add_error("product", _("Choose the product."))
        return data


class BaseCocktailFormSet(forms.BaseFormSet):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # One query for the product list, shared by every row.
        choices = [("", _("Choose a product"))] + [
            (product.pk, str(product)) for product in Product.objects.order_by("name", "maker")
        ]
        for form in self.forms:
            form.fields["product"].choices = choices

    def add_fields(self, form: forms.Form, index: int | None) -> None:
        super().add_fields(form, index)
        if "DELETE" in form.fields:
            form.fields["DELETE"].label = _("Remove")

    def clean(self) -> None:
        if any(self.errors):
            return
        seen: set[int] = set()
        for form in self.forms:
            data = form.cleaned_data
            if not data or data.get("DELETE") or not data.get("product"):
                continue
            if data["product"].pk in seen:
                raise forms.ValidationError(_("Each product appears once in the cocktail."))
            seen.add(data["product"].pk)

    def lines(self) -> list[CocktailLine]:
        return [
            CocktailLine(product=data["product"], amount=data["amount"], unit=data["unit"])
            for data in (form.cleaned_data for form in self.forms)
            if data and not data.get("DELETE") and data.get("product")
        ]


CocktailFormSet = cast(
    type[BaseCocktailFormSet],
    forms.formset_factory(
        CocktailLineForm,
        formset=BaseCocktailFormSet,
        extra=3,
        can_delete=True,
        max_num=20,
        absolute_max=20,  # a forged TOTAL_FORMS builds no more forms than this
        validate_max=True,
    ),
)


def cocktail_initial(protocol: Protocol) -> list[dict[str, Any]]:
    return [
        {"product": line.product, "amount": line.amount, "unit": line.unit}
        for line in protocol.cocktail.all()
    ]

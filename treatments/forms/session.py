"""Forms of the session record: the cocktail lines, adverse events, the
session's own fields, and amendments."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.forms import BaseFormSet, formset_factory
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from clinic import dates
from clinic.forms import SubmissionTokenMixin, TextBlocksMixin, VersionedFormMixin
from clinic.posted import UnreadablePostError, json_from_post
from clinic.widgets import DayField, DayInput, DayTimeField, DayTimeInput
from patients.models import TreatmentArea
from treatments.models import (
    DAY_OF_QUESTIONS,
    DEPTH_MM_MAX,
    DEPTH_MM_MIN,
    MAX_POINTS_PER_LINE,
    NEEDLE_GAUGE_MAX,
    NEEDLE_GAUGE_MIN,
    AdverseEffect,
    Batch,
    Device,
    MapView,
    Product,
    Severity,
    Technique,
    Unit,
)
from treatments.needle_map import (
    VIEW_BY_CODE,
    point_in_area,
    technique_takes_points,
    views_of_area,
)
from treatments.services.session import AdverseEventInput, LineInput, PointInput

BLANK: list[tuple[str, Any]] = [("", "---------")]


def batch_label(batch: Batch, *, today: Any = None) -> str:
    """A batch as its line's list shows it, under its product's name: short,
    so the lot stays readable in the field on a tablet."""
    label = _("Lot %(lot)s · expires %(day)s") % {
        "lot": batch.lot_number,
        "day": dates.day(batch.expiry_date),
    }
    if today is not None and not batch.is_usable_on(today):
        label += " " + _("(cannot be used)")
    return label


class BatchSelect(forms.Select):
    """The batch list, each batch marked with its product's uuid
    (`data-product`): the page's script (js/cocktail_batches.js) offers only
    the batches of the line's product. Without the script the batches are
    grouped under their products, and the server checks the pair."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.product_of: dict[str, str] = {}

    def create_option(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        option = super().create_option(*args, **kwargs)
        product = self.product_of.get(str(option["value"]))
        if product:
            option["attrs"]["data-product"] = product
        return option


class BatchField(forms.ChoiceField):
    """A batch by its uuid, chosen from batches loaded once for the whole page."""

    widget = BatchSelect(attrs={"data-line-batch": ""})
    default_error_messages = {
        "invalid_choice": gettext_lazy(
            "This batch is not in the catalogue: choose one from the list."
        ),
        "required": gettext_lazy("Choose the batch: its lot number is on the vial."),
    }

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


class ProductField(forms.ChoiceField):
    """The line's product by its uuid: one of the products of the batches
    loaded for the page."""

    widget = forms.Select(attrs={"data-line-product": ""})
    default_error_messages = {
        "invalid_choice": gettext_lazy(
            "This product has no batch that can be chosen: choose one from the list."
        ),
        "required": gettext_lazy("Choose the product."),
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.products: dict[str, Product] = {}

    def clean(self, value: Any) -> Product | None:
        value = super().clean(value)
        if not value:
            return None
        return self.products[str(value)]

    def valid_value(self, value: Any) -> bool:
        return str(value) in self.products


# A point as the diagram's script writes it: ["face", 0.4213, 0.3120].
_POINT_CHARS = 32
_QUANTUM = Decimal("0.0001")


class InjectionPointsField(forms.CharField):
    """The points tapped for a line on the diagram, as the script keeps them
    in the line's hidden field: a JSON list of [view, x, y], x and y
    fractions of the view's width and height. The field is disabled in the
    page and enabled by the script, so without it nothing is sent. Anything
    else than such a list, of at most MAX_POINTS_PER_LINE points, each on a
    known view and inside it, is refused with a sentence."""

    widget = forms.HiddenInput(attrs={"disabled": True, "data-map-points": ""})

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", (MAX_POINTS_PER_LINE + 1) * _POINT_CHARS)
        kwargs.setdefault("strip", True)
        super().__init__(**kwargs)
        self.error_messages["max_length"] = _(
            "This line has too many points on the diagram: at most %(most)s a line."
        ) % {"most": MAX_POINTS_PER_LINE}

    def clean(self, value: Any) -> tuple[PointInput, ...]:
        text = super().clean(value)
        if not text:
            return ()
        damaged = forms.ValidationError(
            _("The points of this line on the diagram could not be read: clear them, tap again."),
            code="points_damaged",
        )
        try:
            raw = json_from_post(text, max_depth=2)
        except UnreadablePostError:
            raise damaged from None
        if not isinstance(raw, list):
            raise damaged
        if len(raw) > MAX_POINTS_PER_LINE:
            raise forms.ValidationError(
                _("This line has %(count)s points on the diagram: at most %(most)s a line.")
                % {"count": len(raw), "most": MAX_POINTS_PER_LINE},
                code="points_too_many",
            )
        points = []
        for item in raw:
            if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str)):
                raise damaged
            view, x, y = item
            if view not in MapView.values:
                raise forms.ValidationError(
                    _("A point of this line is on a view the diagram does not have."),
                    code="points_view",
                )
            coordinates = []
            for number in (x, y):
                if isinstance(number, bool) or not isinstance(number, int | float):
                    raise damaged
                # Compared before anything else: NaN compares false, and a
                # whole number too large for a float is refused here.
                if not 0 <= number <= 1 or not math.isfinite(number):
                    raise forms.ValidationError(
                        _("A point of this line is outside the diagram."), code="points_outside"
                    )
                coordinates.append(Decimal(repr(float(number))).quantize(_QUANTUM))
            points.append(PointInput(view=view, x=coordinates[0], y=coordinates[1]))
        return tuple(points)


def _deleted(form: forms.Form) -> bool:
    return bool(form.cleaned_data.get("DELETE"))


class CocktailLineForm(forms.Form):
    product = ProductField(label=gettext_lazy("Product"))
    batch = BatchField(label=gettext_lazy("Batch"))
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
        min_value=DEPTH_MM_MIN,
        max_value=DEPTH_MM_MAX,
        max_digits=4,
        decimal_places=1,
    )
    needle_gauge = forms.IntegerField(
        label=gettext_lazy("Needle (gauge)"),
        min_value=NEEDLE_GAUGE_MIN,
        max_value=NEEDLE_GAUGE_MAX,
    )
    device = forms.ChoiceField(label=gettext_lazy("Given with"), choices=BLANK + Device.choices)
    points = InjectionPointsField()

    def __init__(
        self, *args: Any, batches: dict[str, Batch], usable: list[Batch], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["batch"]
        product_field = self.fields["product"]
        assert isinstance(field, BatchField)
        assert isinstance(product_field, ProductField)
        field.batches = batches
        product_field.products = {str(b.product.uuid): b.product for b in batches.values()}
        if not self.is_bound:
            # A pre-filled line names its batch: its product is that batch's.
            initial_batch = batches.get(str(self.initial.get("batch") or ""))
            if initial_batch is not None and not self.initial.get("product"):
                self.initial["product"] = initial_batch.product.uuid
        today = timezone.localdate()
        offered = list(usable)
        # A batch typed in that is no longer usable stays shown, so nothing is lost.
        chosen = self.data.get(self.add_prefix("batch")) if self.is_bound else None
        if chosen and chosen in batches and batches[chosen] not in offered:
            offered.append(batches[chosen])
        # The batches under their products (an <optgroup> each), in the order given.
        groups: dict[str, list[tuple[str, str]]] = {}
        products: dict[str, str] = {}
        for batch in offered:
            usable_today = batch in usable
            label = batch_label(batch, today=None if usable_today else today)
            groups.setdefault(batch.product.name, []).append((str(batch.uuid), label))
            products.setdefault(str(batch.product.uuid), batch.product.name)
        field.choices = BLANK + list(groups.items())
        assert isinstance(field.widget, BatchSelect)
        field.widget.product_of = {str(b.uuid): str(b.product.uuid) for b in offered}
        product_field.choices = BLANK + list(products.items())

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        product, batch = cleaned.get("product"), cleaned.get("batch")
        if product is not None and batch is not None and batch.product_id != product.pk:
            self.add_error(
                "batch",
                _(
                    "Lot %(lot)s is a batch of %(other)s, not of %(product)s: choose a batch "
                    "of %(product)s, or change the product."
                )
                % {"lot": batch.lot_number, "other": batch.product.name, "product": product.name},
            )
        area = cleaned.get("area")
        points = cleaned.get("points") or ()
        technique = cleaned.get("technique")
        if points and technique and not technique_takes_points(technique):
            self.add_error(
                "points",
                _(
                    "This line has points on the diagram, but %(technique)s covers an area: "
                    "clear its points on the diagram, or choose papules or point by point."
                )
                % {"technique": Technique(technique).label.lower()},
            )
        if area:
            shown_on = views_of_area(area)
            elsewhere = sorted({p.view for p in points if p.view not in shown_on})
            outside = [
                p
                for p in points
                if p.view in shown_on and not point_in_area(area, p.view, p.x, p.y)
            ]
            if outside and not elsewhere:
                self.add_error(
                    "points",
                    _(
                        "%(count)s of this line's points are outside %(area)s on the diagram: "
                        "clear its points and tap them again on the area."
                    )
                    % {"count": len(outside), "area": TreatmentArea(area).label},
                )
            if elsewhere:
                self.add_error(
                    "points",
                    _(
                        "Points of this line are on the diagram's \u201c%(view)s\u201d view, "
                        "which does not show %(area)s: clear its points on the diagram, or "
                        "choose the area again."
                    )
                    % {
                        "view": VIEW_BY_CODE[elsewhere[0]].label,
                        "area": TreatmentArea(area).label,
                    },
                )
        return cleaned

    def to_input(self) -> LineInput:
        data = self.cleaned_data
        return LineInput(
            product=data["product"],
            batch=data["batch"],
            amount=data["amount"],
            unit=data["unit"],
            area=data["area"],
            technique=data["technique"],
            depth_mm=data["depth_mm"],
            needle_gauge=data["needle_gauge"],
            device=data["device"],
            points=data.get("points") or (),
        )


if TYPE_CHECKING:
    _LineFormSet = BaseFormSet[CocktailLineForm]
else:
    _LineFormSet = BaseFormSet


class BaseLineFormSet(_LineFormSet):
    """The session's cocktail lines. `new_line` is how a line added starts
    (selectors.session.line_defaults: technique, depth, needle, device): the
    lines beyond those pre-filled, and the page's template for the script,
    start with it, and such a line left as it started is no line. The form
    shows the lines it starts with and no empty one, unless it starts with
    none: then one line to fill in."""

    def __init__(self, *args: Any, new_line: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.new_line = dict(new_line or {})
        if not self.is_bound and not self.initial:
            self.extra = 1

    def get_form_kwargs(self, index: int | None) -> dict[str, Any]:
        kwargs = super().get_form_kwargs(index)
        if self.new_line and (index is None or index >= self.initial_form_count()):
            kwargs["initial"] = dict(self.new_line)
        return kwargs

    def add_fields(self, form: CocktailLineForm, index: int | None) -> None:
        super().add_fields(form, index)
        form.fields["DELETE"].label = _("Leave out this line")

    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        if not self.lines():
            raise forms.ValidationError(_("Record at least one cocktail line."))

    def line_forms(self) -> list[CocktailLineForm]:
        """The forms that are lines, in the order of `lines()`."""
        return [form for form in self.forms if form.has_changed() and not _deleted(form)]

    def lines(self) -> list[LineInput]:
        return [form.to_input() for form in self.line_forms()]


# A session has a handful of lines: `absolute_max` refuses a forged
# TOTAL_FORMS before a single form is built.
MAX_LINES = 20
CocktailLineFormSet = cast(
    "type[BaseLineFormSet]",
    formset_factory(
        CocktailLineForm,
        formset=BaseLineFormSet,
        extra=0,
        can_delete=True,
        max_num=MAX_LINES,
        absolute_max=MAX_LINES,
        validate_max=True,
    ),
)


class AdverseEventForm(TextBlocksMixin, forms.Form):
    effect = forms.ChoiceField(label=gettext_lazy("Effect"), choices=BLANK + AdverseEffect.choices)
    severity = forms.ChoiceField(label=gettext_lazy("Severity"), choices=BLANK + Severity.choices)
    onset = DayTimeField(
        label=gettext_lazy("Started"),
        widget=DayTimeInput(),
    )
    resolved_on = DayField(
        label=gettext_lazy("Resolved on"),
        required=False,
        widget=DayInput(),
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

    def event_forms(self) -> list[AdverseEventForm]:
        """The forms that are events, in the order of `events()`."""
        return [form for form in self.forms if form.has_changed() and not _deleted(form)]

    def events(self) -> list[AdverseEventInput]:
        return [form.to_input() for form in self.event_forms()]


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

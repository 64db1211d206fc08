"""Reads of the catalogue: lists, one object by its uuid, the batches that may
be given to a patient, and who received a batch (for a recall)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Case, CharField, Count, F, Prefetch, Q, QuerySet, Value, When
from django.db.models.functions import Cast, Concat
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _

from patients.models import Patient, TreatmentArea
from treatments.models import (
    AftercareSheet,
    AllergyTest,
    Batch,
    BatchStatus,
    CocktailLine,
    Ingredient,
    Product,
    Protocol,
    ProtocolCocktailLine,
    Unit,
)

# Batches expiring within this many days are flagged on the catalogue page.
EXPIRY_WARNING_DAYS = 60


def batches_usable(*, on: date) -> QuerySet[Batch]:
    """Batches that may be given to a patient on `on`: in stock and not expired.
    Every batch choice in the clinic starts here."""
    return (
        Batch.objects.filter(status=BatchStatus.IN_STOCK, expiry_date__gte=on)
        .select_related("product")
        .order_by("product__name", "expiry_date", "lot_number")
    )


@dataclass(frozen=True)
class CatalogueSummary:
    ingredients: int
    products: int
    protocols: int
    sheets: int
    expiring_soon: int
    recalled: int
    warning_days: int


def catalogue_summary(*, today: date) -> CatalogueSummary:
    """Counts for the catalogue's landing page, in a few queries."""
    batches = Batch.objects.aggregate(
        expiring_soon=Count(
            "id",
            filter=Q(
                status=BatchStatus.IN_STOCK,
                expiry_date__gte=today,
                expiry_date__lte=today + timedelta(days=EXPIRY_WARNING_DAYS),
            ),
        ),
        recalled=Count("id", filter=Q(status=BatchStatus.RECALLED)),
    )
    return CatalogueSummary(
        ingredients=Ingredient.objects.count(),
        products=Product.objects.count(),
        protocols=Protocol.objects.count(),
        sheets=AftercareSheet.objects.count(),
        expiring_soon=batches["expiring_soon"],
        recalled=batches["recalled"],
        warning_days=EXPIRY_WARNING_DAYS,
    )


def batches_needing_attention(*, today: date) -> QuerySet[Batch]:
    """In-stock batches expiring soon, and recalled ones: what the manager checks."""
    soon = today + timedelta(days=EXPIRY_WARNING_DAYS)
    return (
        Batch.objects.filter(
            Q(status=BatchStatus.IN_STOCK, expiry_date__gte=today, expiry_date__lte=soon)
            | Q(status=BatchStatus.RECALLED)
        )
        .select_related("product")
        .order_by("status", "expiry_date", "lot_number")
    )


def ingredients_list() -> QuerySet[Ingredient]:
    """Every ingredient by name, each with `product_count`: how many products
    contain it."""
    return Ingredient.objects.annotate(product_count=Count("products")).order_by("name")


def ingredient_get(*, ingredient_uuid: uuid.UUID) -> Ingredient:
    """The ingredient with this uuid. Raises Http404 when there is none."""
    return get_object_or_404(Ingredient, uuid=ingredient_uuid)


def products_list() -> QuerySet[Product]:
    """Every product by name and maker, with its ingredients (by name) and its
    batches (soonest expiry first) loaded: three queries for the list."""
    return Product.objects.prefetch_related(
        Prefetch("ingredients", queryset=Ingredient.objects.order_by("name")),
        Prefetch("batches", queryset=Batch.objects.order_by("expiry_date", "lot_number")),
    ).order_by("name", "maker")


def product_get(*, product_uuid: uuid.UUID) -> Product:
    """The product with this uuid, loaded as `products_list` loads it. Raises
    Http404 when there is none."""
    try:
        return products_list().get(uuid=product_uuid)
    except Product.DoesNotExist:
        raise Http404 from None


def batch_get(*, batch_uuid: uuid.UUID) -> Batch:
    """The batch with this uuid, with its product and who recalled it. Raises
    Http404 when there is none."""
    return get_object_or_404(
        Batch.objects.select_related("product", "recalled_by"), uuid=batch_uuid
    )


def sheets_list() -> QuerySet[AftercareSheet]:
    """Every aftercare sheet by title, each with `protocol_count`: how many
    protocols hand it out."""
    return AftercareSheet.objects.annotate(protocol_count=Count("protocols")).order_by("title")


def sheet_get(*, sheet_uuid: uuid.UUID) -> AftercareSheet:
    """The aftercare sheet with this uuid. Raises Http404 when there is none."""
    return get_object_or_404(AftercareSheet, uuid=sheet_uuid)


def protocols_list() -> QuerySet[Protocol]:
    """Every protocol by name, with its consent form, aftercare sheet and
    cocktail lines (in their order, with products) loaded."""
    return (
        Protocol.objects.select_related("consent_form", "aftercare_sheet")
        .prefetch_related(
            Prefetch(
                "cocktail",
                queryset=ProtocolCocktailLine.objects.select_related("product").order_by(
                    "position", "id"
                ),
            )
        )
        .order_by("name")
    )


def protocol_get(*, protocol_uuid: uuid.UUID) -> Protocol:
    """The protocol with this uuid, loaded as `protocols_list` loads it. Raises
    Http404 when there is none."""
    try:
        return protocols_list().get(uuid=protocol_uuid)
    except Protocol.DoesNotExist:
        raise Http404 from None


# --- Who received a batch -------------------------------------------------------------


@dataclass(frozen=True)
class BatchRecipient:
    """One time a patient received some of a batch."""

    patient: Patient
    received_at: datetime
    what: str


# Each source gives, for one batch, rows of (patient_id, received_at, what):
# one more kind of record that gives batches to patients is one more function.
RecipientSource = Callable[[Batch], QuerySet]


def _label(field: str, choices: Iterable[tuple[str, object]]) -> Case:
    """The display label of a choice field, computed in the query."""
    return Case(
        *[When(**{field: value}, then=Value(str(label))) for value, label in choices],
        default=F(field),
        output_field=CharField(),
    )


def _from_allergy_tests(batch: Batch) -> QuerySet:
    return AllergyTest.objects.filter(batch=batch).values_list(
        F("patient_id"),
        F("given_at"),
        Concat(Value(_("Allergy test")), Value(", "), F("site"), output_field=CharField()),
    )


def _from_sessions(batch: Batch) -> QuerySet:
    return CocktailLine.objects.filter(batch=batch).values_list(
        F("session__booking__patient_id"),
        F("session__completed_at"),
        Concat(
            Value(_("Session")),
            Value(" ("),
            F("session__booking__protocol__name"),
            Value("): "),
            Cast("amount", output_field=CharField()),
            Value(" "),
            _label("unit", Unit.choices),
            Value(", "),
            _label("area", TreatmentArea.choices),
            Value(", "),
            Value(_("by")),
            Value(" "),
            F("session__booking__practitioner__first_name"),
            Value(" "),
            F("session__booking__practitioner__last_name"),
            output_field=CharField(),
        ),
    )


RECIPIENT_SOURCES: list[RecipientSource] = [_from_allergy_tests, _from_sessions]


def batch_recipients(*, batch: Batch) -> list[BatchRecipient]:
    """Every time a patient received this batch (allergy tests, session
    cocktails), oldest first, with the patient's contact details loaded: two
    queries whatever the number of sources or rows."""
    querysets = [source(batch) for source in RECIPIENT_SOURCES]
    combined = querysets[0].union(*querysets[1:], all=True) if len(querysets) > 1 else querysets[0]
    rows = list(combined)
    patients = Patient.objects.in_bulk({patient_id for patient_id, _at, _what in rows})
    recipients = [
        BatchRecipient(patient=patients[patient_id], received_at=at, what=what)
        for patient_id, at, what in rows
    ]
    recipients.sort(key=lambda r: (r.received_at, r.patient.last_name, r.patient.first_name))
    return recipients

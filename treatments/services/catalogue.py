"""State changes of the catalogue: ingredients, products, batches and their
recall, aftercare sheets and protocols. Views and the demo call these; nothing
else saves a catalogue object."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from clinic.audit import audit_log
from clinic.concurrency import (
    differs,
    field_text,
    submission_check,
    submission_marks,
    version_bump,
    version_check,
)
from clinic.models import AuditAction, User
from clinic.refusals import RefusalKind, RefusedError
from treatments.models import (
    AftercareSheet,
    Batch,
    BatchStatus,
    Ingredient,
    Product,
    Protocol,
    ProtocolCocktailLine,
)

INGREDIENT_FIELDS = ("name", "category", "active")
PRODUCT_FIELDS = ("name", "maker", "concentration", "notes", "active")
BATCH_FIELDS = ("lot_number", "expiry_date", "quantity_received", "received_on")
SHEET_FIELDS = ("title", "introduction", "do_advice", "avoid_advice", "warning_signs")
PROTOCOL_FIELDS = (
    "name",
    "indication",
    "default_areas",
    "default_sessions",
    "interval",
    "session_minutes",
    "maintenance_months",
    "consent_form",
    "aftercare_sheet",
    # How the cocktail is usually given: a session's new lines start with these.
    "default_technique",
    "default_depth_mm",
    "default_needle_gauge",
    "default_device",
    "active",
)


class BatchAlreadyRecalledError(RefusedError):
    """A recall is final: a recalled batch is never recalled again nor restocked."""

    code = "already_recalled"
    kind = RefusalKind.CONFLICT


@dataclass(frozen=True)
class CocktailLine:
    """One product of a protocol's default cocktail, as the form gives it."""

    product: Product
    amount: Decimal
    unit: str


def _reject_unknown(fields: Iterable[str], allowed: Iterable[str], what: str) -> None:
    unknown = set(fields) - set(allowed)
    if unknown:
        raise TypeError(f"{what}: {sorted(unknown)}")


def _save(obj: models.Model, *, message: str) -> None:
    """Validate and save; a constraint the database catches in a race becomes
    the same ValidationError a form shows."""
    obj.full_clean()
    try:
        with transaction.atomic():
            obj.save()
    except IntegrityError as exc:
        raise ValidationError(message) from exc


def _same(old: Any, new: Any) -> bool:
    """Whether a field's value is unchanged. A list (a protocol's default
    areas) is a set of choices: the same areas ticked in another order are
    no change."""
    if isinstance(old, list | tuple) and isinstance(new, list | tuple):
        return set(old) == set(new)
    # Texts as text blocks: other line endings or trailing spaces are no change.
    return not differs(old, new)


def _apply(obj: models.Model, fields: dict[str, Any]) -> list[str]:
    """Set the fields that differ; return their names."""
    changed = [name for name, value in fields.items() if not _same(getattr(obj, name), value)]
    for name in changed:
        setattr(obj, name, fields[name])
    return changed


# --- Ingredients --------------------------------------------------------------------


@transaction.atomic
def ingredient_create(
    *, created_by: User, submission_token: uuid.UUID | None = None, **fields: Any
) -> Ingredient:
    """Add an ingredient (INGREDIENT_FIELDS). Raises `ValidationError` for a name
    already used. `submission_token` is the form's one-time token: the same
    form sent twice creates one (AlreadySubmittedError, clinic.concurrency,
    with `.obj`)."""
    _reject_unknown(fields, INGREDIENT_FIELDS, "not ingredient fields")
    submission_check(Ingredient, submission_token, by=created_by)
    ingredient = Ingredient(**fields)
    _save(ingredient, message=_("An ingredient with this name already exists."))
    audit_log(
        actor=created_by,
        action=AuditAction.CREATE,
        obj=ingredient,
        changed_fields=[*fields, *submission_marks(submission_token)],
    )
    return ingredient


@transaction.atomic
def ingredient_update(
    *, ingredient: Ingredient, updated_by: User, expected_version: int | None, **fields: Any
) -> Ingredient:
    """Change an ingredient (INGREDIENT_FIELDS: name, category, in use).

    `expected_version` is the version the edit form was opened with (None:
    not from a form). Only the fields that differ are saved, the version
    raised and the audit event names them. Raises `StaleEditError`
    (clinic.concurrency) when someone saved the ingredient since that version
    ("stale_edit": the fields they changed, their values, who and when) or
    the version is not one it had ("bad_version"); `ValidationError` for a
    name already used (any case); `TypeError` for other fields. Nothing is
    written when it raises."""
    _reject_unknown(fields, INGREDIENT_FIELDS, "not ingredient fields")
    current = Ingredient.objects.select_for_update().get(pk=ingredient.pk)
    version_check(current, expected=expected_version)
    changed = _apply(current, fields)
    if changed:
        mark = version_bump(current)
        _save(current, message=_("An ingredient with this name already exists."))
        audit_log(
            actor=updated_by,
            action=AuditAction.UPDATE,
            obj=current,
            changed_fields=[*changed, mark],
        )
    return current


# --- Products -----------------------------------------------------------------------


def _check_ingredients(ingredients: Sequence[Ingredient]) -> None:
    if not ingredients:
        raise ValidationError({"ingredients": _("Choose at least one ingredient.")})


@transaction.atomic
def product_create(
    *,
    created_by: User,
    ingredients: Sequence[Ingredient],
    submission_token: uuid.UUID | None = None,
    **fields: Any,
) -> Product:
    """Add a product (PRODUCT_FIELDS) made of `ingredients` (at least one). Raises
    `ValidationError` for no ingredient or a name the maker already uses.
    `submission_token` is the form's one-time token: the same form sent twice
    creates one (AlreadySubmittedError, clinic.concurrency, with `.obj`)."""
    _reject_unknown(fields, PRODUCT_FIELDS, "not product fields")
    submission_check(Product, submission_token, by=created_by)
    _check_ingredients(ingredients)
    product = Product(**fields)
    _save(product, message=_("This maker already has a product with this name."))
    product.ingredients.set(ingredients)
    audit_log(
        actor=created_by,
        action=AuditAction.CREATE,
        obj=product,
        changed_fields=[*fields, "ingredients", *submission_marks(submission_token)],
    )
    return product


@transaction.atomic
def product_update(
    *,
    product: Product,
    updated_by: User,
    ingredients: Sequence[Ingredient] | None,
    expected_version: int | None,
    **fields: Any,
) -> Product:
    """Change a product (PRODUCT_FIELDS) and the ingredients it is made of
    (`ingredients` None: unchanged, the form did not change them).

    `expected_version` is the version the edit form was opened with (None:
    not from a form). Only what differs is saved; the version is raised once
    and the audit event names the fields (and "ingredients"). Raises
    `StaleEditError` (clinic.concurrency) when someone saved the product since
    that version ("stale_edit") or the version is not one it had
    ("bad_version"); `ValidationError` for no ingredient or a name the maker
    already uses; `TypeError` for other fields. Nothing is written when it
    raises."""
    _reject_unknown(fields, PRODUCT_FIELDS, "not product fields")
    if ingredients is not None:
        _check_ingredients(ingredients)
    current = Product.objects.select_for_update().get(pk=product.pk)
    version_check(current, expected=expected_version)
    changed = _apply(current, fields)
    before = set(current.ingredients.values_list("pk", flat=True))
    ingredients_changed = ingredients is not None and before != {i.pk for i in ingredients}
    if changed or ingredients_changed:
        mark = version_bump(current)
        _save(current, message=_("This maker already has a product with this name."))
    if ingredients_changed:
        assert ingredients is not None
        current.ingredients.set(ingredients)
        changed.append("ingredients")
    if changed:
        audit_log(
            actor=updated_by,
            action=AuditAction.UPDATE,
            obj=current,
            changed_fields=[*changed, mark],
        )
    return current


# --- Batches ------------------------------------------------------------------------


@transaction.atomic
def batch_create(
    *,
    product: Product,
    created_by: User,
    lot_number: str,
    expiry_date: date,
    quantity_received: int,
    received_on: date,
    submission_token: uuid.UUID | None = None,
) -> Batch:
    """Record a lot received. An expired lot is refused: it could never be used
    (`ValidationError`). `submission_token` is the form's one-time token: the
    same form sent twice creates one (AlreadySubmittedError,
    clinic.concurrency, with `.obj`)."""
    submission_check(Batch, submission_token, by=created_by)
    if expiry_date < timezone.localdate():
        raise ValidationError({"expiry_date": _("This expiry date has passed.")})
    batch = Batch(
        product=product,
        lot_number=lot_number.strip(),
        expiry_date=expiry_date,
        quantity_received=quantity_received,
        received_on=received_on,
    )
    _save(batch, message=_("This product already has a batch with this lot number."))
    audit_log(
        actor=created_by,
        action=AuditAction.CREATE,
        obj=batch,
        changed_fields=[*BATCH_FIELDS, *submission_marks(submission_token)],
    )
    return batch


@transaction.atomic
def batch_recall(*, batch: Batch, recalled_by: User, reason: str) -> Batch:
    """Withdraw a batch for good: it can no longer be chosen for anyone."""
    reason = reason.strip()
    if not reason:
        raise ValidationError({"reason": _("Give the reason for the recall.")})
    current = Batch.objects.select_for_update().get(pk=batch.pk)
    if current.status == BatchStatus.RECALLED:
        raise BatchAlreadyRecalledError(_("This batch has already been recalled."))
    current.status = BatchStatus.RECALLED
    current.recalled_at = timezone.now()
    current.recalled_by = recalled_by
    current.recall_reason = reason
    current.full_clean()
    current.save(update_fields=["status", "recalled_at", "recalled_by", "recall_reason"])
    audit_log(
        actor=recalled_by,
        action=AuditAction.RECALLED,
        obj=current,
        changed_fields=["status", "recalled_at", "recalled_by", "recall_reason"],
    )
    return current


# --- Aftercare sheets ---------------------------------------------------------------


@transaction.atomic
def sheet_create(*, created_by: User, **fields: Any) -> AftercareSheet:
    """Add an aftercare sheet (SHEET_FIELDS, and optionally `submission_token`,
    the form's one-time token: the same form sent twice creates one,
    AlreadySubmittedError, clinic.concurrency, with `.obj`). Raises
    `ValidationError` for a title already used."""
    submission_token: uuid.UUID | None = fields.pop("submission_token", None)
    _reject_unknown(fields, SHEET_FIELDS, "not aftercare sheet fields")
    submission_check(AftercareSheet, submission_token, by=created_by)
    sheet = AftercareSheet(**fields)
    _save(sheet, message=_("An aftercare sheet with this title already exists."))
    audit_log(
        actor=created_by,
        action=AuditAction.CREATE,
        obj=sheet,
        changed_fields=[*fields, *submission_marks(submission_token)],
    )
    return sheet


@transaction.atomic
def sheet_update(
    *, sheet: AftercareSheet, updated_by: User, expected_version: int | None, **fields: Any
) -> AftercareSheet:
    """Change an aftercare sheet's text (SHEET_FIELDS: title, introduction and
    the advice, one piece per line). Sheets rendered before keep their text.

    `expected_version` is the version the edit form was opened with (None:
    not from a form). Raises `StaleEditError` (clinic.concurrency) when
    someone saved the sheet since that version ("stale_edit": the sections
    they changed, their text, who and when) or the version is not one it had
    ("bad_version"); `ValidationError` for a title already used; `TypeError`
    for other fields. Nothing is written when it raises."""
    _reject_unknown(fields, SHEET_FIELDS, "not aftercare sheet fields")
    current = AftercareSheet.objects.select_for_update().get(pk=sheet.pk)
    version_check(current, expected=expected_version)
    changed = _apply(current, fields)
    if changed:
        mark = version_bump(current)
        _save(current, message=_("An aftercare sheet with this title already exists."))
        audit_log(
            actor=updated_by,
            action=AuditAction.UPDATE,
            obj=current,
            changed_fields=[*changed, mark],
        )
    return current


# --- Protocols ----------------------------------------------------------------------


def _check_lines(lines: Sequence[CocktailLine]) -> None:
    products = [line.product.pk for line in lines]
    if len(products) != len(set(products)):
        raise ValidationError(_("Each product appears once in the cocktail."))
    for line in lines:
        if line.amount <= 0:
            raise ValidationError(_("Each amount must be more than zero."))


def _save_lines(protocol: Protocol, lines: Sequence[CocktailLine]) -> None:
    protocol.cocktail.all().delete()
    rows = [
        ProtocolCocktailLine(
            protocol=protocol,
            product=line.product,
            amount=line.amount,
            unit=line.unit,
            position=position,
        )
        for position, line in enumerate(lines)
    ]
    for row in rows:
        row.full_clean(validate_constraints=False)
    ProtocolCocktailLine.objects.bulk_create(rows)


def _lines_of(protocol: Protocol) -> list[tuple[int, Decimal, str]]:
    return [
        (line.product_id, line.amount, line.unit)
        for line in protocol.cocktail.order_by("position", "id")
    ]


@transaction.atomic
def protocol_create(
    *,
    created_by: User,
    lines: Sequence[CocktailLine],
    submission_token: uuid.UUID | None = None,
    **fields: Any,
) -> Protocol:
    """A protocol (PROTOCOL_FIELDS) and its default cocktail (`lines`), saved
    together. Raises `ValidationError` for a repeated product, an amount of
    zero or a name already used. `submission_token` is the form's one-time
    token: the same form sent twice creates one (AlreadySubmittedError,
    clinic.concurrency, with `.obj`)."""
    _reject_unknown(fields, PROTOCOL_FIELDS, "not protocol fields")
    submission_check(Protocol, submission_token, by=created_by)
    _check_lines(lines)
    protocol = Protocol(**fields)
    _save(protocol, message=_("A protocol with this name already exists."))
    _save_lines(protocol, lines)
    audit_log(
        actor=created_by,
        action=AuditAction.CREATE,
        obj=protocol,
        changed_fields=[*fields, "cocktail", *submission_marks(submission_token)],
    )
    return protocol


def _protocol_field_text(protocol: Protocol, name: str) -> tuple[str, str]:
    """A protocol's field as a stale-edit refusal shows it; the cocktail as its lines."""
    if name != "cocktail":
        return field_text(protocol, name)
    lines = protocol.cocktail.select_related("product").order_by("position", "id")
    return _("Default cocktail"), "; ".join(
        f"{line.product.name} {line.amount} {line.get_unit_display()}" for line in lines
    )


@transaction.atomic
def protocol_update(
    *,
    protocol: Protocol,
    updated_by: User,
    lines: Sequence[CocktailLine] | None,
    expected_version: int | None,
    **fields: Any,
) -> Protocol:
    """Change a protocol (PROTOCOL_FIELDS) and its default cocktail (`lines`:
    each product once, amounts above zero, in mL or mg; None: unchanged, the
    form did not change it), saved together.

    `expected_version` is the version the edit form was opened with (None:
    not from a form). The version is raised once per save that changes
    anything. Raises `StaleEditError` (clinic.concurrency) when someone saved
    the protocol since that version ("stale_edit": the fields and cocktail
    they changed, their values, who and when) or the version is not one it
    had ("bad_version"); `ValidationError` for a repeated product, an amount
    of zero or a name already used; `TypeError` for other fields. Nothing is
    written when it raises."""
    _reject_unknown(fields, PROTOCOL_FIELDS, "not protocol fields")
    if lines is not None:
        _check_lines(lines)
    current = Protocol.objects.select_for_update().get(pk=protocol.pk)
    version_check(
        current,
        expected=expected_version,
        describe=lambda name: _protocol_field_text(current, name),
    )
    changed = _apply(current, fields)
    wanted = [(line.product.pk, line.amount, line.unit) for line in lines or []]
    cocktail_changed = lines is not None and _lines_of(current) != wanted
    if changed or cocktail_changed:
        mark = version_bump(current)
        _save(current, message=_("A protocol with this name already exists."))
    if cocktail_changed:
        assert lines is not None
        _save_lines(current, lines)
        changed.append("cocktail")
    if changed:
        audit_log(
            actor=updated_by,
            action=AuditAction.UPDATE,
            obj=current,
            changed_fields=[*changed, mark],
        )
    return current

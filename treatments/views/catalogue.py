"""Views of the catalogue. Managers maintain it; practitioners read it (the
pages show them no edit buttons, and the edit routes refuse them)."""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.forms import BaseFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from clinic.access import signed_in_user, staff
from clinic.audit import audit_read, audit_read_patients
from clinic.concurrency import AlreadySubmittedError, StaleEditError
from clinic.models import AuditAction
from clinic.roles import Role
from clinic.spreadsheets import csv_writer
from patients.models import TreatmentArea
from treatments.forms.catalogue import (
    AftercareSheetForm,
    BaseCocktailFormSet,
    BatchForm,
    CocktailFormSet,
    IngredientForm,
    ProductForm,
    ProtocolForm,
    RecallForm,
    cocktail_initial,
)
from treatments.models import AftercareSheet, Batch, Ingredient, Product, Protocol
from treatments.selectors.catalogue import (
    batch_get,
    batch_recipients,
    batches_needing_attention,
    catalogue_summary,
    ingredient_get,
    ingredients_list,
    product_get,
    products_list,
    protocol_get,
    protocols_list,
    sheet_get,
    sheets_list,
)
from treatments.services import catalogue as services

READ_ROLES = (Role.PRACTITIONER, Role.MANAGER)


def _can_edit(request: HttpRequest) -> bool:
    return Role.MANAGER in signed_in_user(request).roles


def _already_saved(request: HttpRequest, url: str) -> HttpResponseRedirect:
    """The answer to a create form sent again: what it saved the first time."""
    messages.info(request, AlreadySubmittedError.MESSAGE)
    return HttpResponseRedirect(url)


def _show_errors(form: forms.BaseForm, error: ValidationError) -> None:
    """Put a service's refusal next to the field it concerns, or above the form."""
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)


def _status(*forms_: forms.BaseForm | BaseFormSet) -> int:
    for form in forms_:
        if isinstance(form, BaseFormSet):
            if form.is_bound and (form.total_error_count() or form.non_form_errors()):
                return 400
        elif form.is_bound and form.errors:
            return 400
    return 200


# --- Landing page -------------------------------------------------------------------


@staff(*READ_ROLES)
@require_GET
def catalogue(request: HttpRequest) -> HttpResponse:
    today = timezone.localdate()
    return render(
        request,
        "treatments/catalogue_home.html",
        {
            "summary": catalogue_summary(today=today),
            "attention": batches_needing_attention(today=today)[:50],
            "today": today,
            "can_edit": _can_edit(request),
            "tab": "home",
        },
    )


# --- Ingredients --------------------------------------------------------------------


@staff(*READ_ROLES)
@require_GET
def ingredient_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "treatments/ingredient_list.html",
        {"ingredients": ingredients_list(), "can_edit": _can_edit(request), "tab": "ingredients"},
    )


@staff(Role.MANAGER)
@require_http_methods(["GET", "POST"])
def ingredient_create(request: HttpRequest) -> HttpResponse:
    form = IngredientForm(request.POST or None)
    if form.saved_before(Ingredient, by=signed_in_user(request)) is not None:
        return _already_saved(request, reverse("treatments:ingredient_list"))
    if request.method == "POST" and form.is_valid():
        try:
            ingredient = services.ingredient_create(
                created_by=signed_in_user(request),
                submission_token=form.cleaned_data["submission_token"],
                **form.service_fields(),
            )
        except AlreadySubmittedError:
            return _already_saved(request, reverse("treatments:ingredient_list"))
        except ValidationError as error:
            _show_errors(form, error)
        else:
            messages.success(request, _("%(name)s is added.") % {"name": ingredient.name})
            return HttpResponseRedirect(reverse("treatments:ingredient_list"))
    return render(
        request,
        "treatments/ingredient_form.html",
        {"form": form, "creating": True, "tab": "ingredients"},
        status=_status(form),
    )


@staff(Role.MANAGER)
@require_http_methods(["GET", "POST"])
def ingredient_edit(request: HttpRequest, ingredient: uuid.UUID) -> HttpResponse:
    record = ingredient_get(ingredient_uuid=ingredient)
    form = IngredientForm(request.POST or None, instance=record)
    stale_status = 0
    if request.method == "POST" and form.is_valid():
        try:
            services.ingredient_update(
                ingredient=record,
                updated_by=signed_in_user(request),
                expected_version=form.cleaned_data["version"],
                **form.typed(form.service_fields()),
            )
        except StaleEditError as refusal:
            stale_status = form.show_stale(refusal)
        except ValidationError as error:
            _show_errors(form, error)
        else:
            messages.success(request, _("Ingredient saved."))
            return HttpResponseRedirect(reverse("treatments:ingredient_list"))
    return render(
        request,
        "treatments/ingredient_form.html",
        {"form": form, "ingredient": record, "creating": False, "tab": "ingredients"},
        status=stale_status or _status(form),
    )


# --- Products -----------------------------------------------------------------------


@staff(*READ_ROLES)
@require_GET
def product_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "treatments/product_list.html",
        {
            "products": products_list(),
            "today": timezone.localdate(),
            "can_edit": _can_edit(request),
            "tab": "products",
        },
    )


@staff(*READ_ROLES)
@require_GET
def product_detail(request: HttpRequest, product: uuid.UUID) -> HttpResponse:
    record = product_get(product_uuid=product)
    return render(
        request,
        "treatments/product_detail.html",
        {
            "product": record,
            "today": timezone.localdate(),
            "can_edit": _can_edit(request),
            "tab": "products",
        },
    )


@staff(Role.MANAGER)
@require_http_methods(["GET", "POST"])
def product_create(request: HttpRequest) -> HttpResponse:
    form = ProductForm(request.POST or None)
    if (earlier := form.saved_before(Product, by=signed_in_user(request))) is not None:
        return _already_saved(request, earlier.get_absolute_url())  # type: ignore[attr-defined]
    if request.method == "POST" and form.is_valid():
        try:
            product = services.product_create(
                created_by=signed_in_user(request),
                ingredients=list(form.cleaned_data["ingredients"]),
                submission_token=form.cleaned_data["submission_token"],
                **form.service_fields(),
            )
        except AlreadySubmittedError as repeated:
            return _already_saved(request, repeated.obj.get_absolute_url())  # type: ignore[attr-defined]
        except ValidationError as error:
            _show_errors(form, error)
        else:
            messages.success(request, _("%(name)s is added.") % {"name": product.name})
            return HttpResponseRedirect(product.get_absolute_url())
    return render(
        request,
        "treatments/product_form.html",
        {"form": form, "creating": True, "tab": "products"},
        status=_status(form),
    )


@staff(Role.MANAGER)
@require_http_methods(["GET", "POST"])
def product_edit(request: HttpRequest, product: uuid.UUID) -> HttpResponse:
    record = product_get(product_uuid=product)
    form = ProductForm(request.POST or None, instance=record)
    stale_status = 0
    if request.method == "POST" and form.is_valid():
        try:
            typed = form.typed({**form.service_fields(), "ingredients": None})
            services.product_update(
                product=record,
                updated_by=signed_in_user(request),
                ingredients=list(form.cleaned_data["ingredients"])
                if "ingredients" in typed
                else None,
                expected_version=form.cleaned_data["version"],
                **{name: value for name, value in typed.items() if name != "ingredients"},
            )
        except StaleEditError as refusal:
            stale_status = form.show_stale(refusal)
        except ValidationError as error:
            _show_errors(form, error)
        else:
            messages.success(request, _("Product saved."))
            return HttpResponseRedirect(record.get_absolute_url())
    return render(
        request,
        "treatments/product_form.html",
        {"form": form, "product": record, "creating": False, "tab": "products"},
        status=stale_status or _status(form),
    )


# --- Batches ------------------------------------------------------------------------


@staff(Role.MANAGER)
@require_http_methods(["GET", "POST"])
def batch_create(request: HttpRequest, product: uuid.UUID) -> HttpResponse:
    record = product_get(product_uuid=product)
    form = BatchForm(request.POST or None, product=record)
    if form.saved_before(Batch, by=signed_in_user(request)) is not None:
        return _already_saved(request, record.get_absolute_url())
    if request.method == "POST" and form.is_valid():
        try:
            batch = services.batch_create(
                product=record,
                created_by=signed_in_user(request),
                submission_token=form.cleaned_data["submission_token"],
                **form.service_fields(),
            )
        except AlreadySubmittedError:
            return _already_saved(request, record.get_absolute_url())
        except ValidationError as error:
            _show_errors(form, error)
        else:
            messages.success(request, _("Lot %(lot)s is added.") % {"lot": batch.lot_number})
            return HttpResponseRedirect(record.get_absolute_url())
    return render(
        request,
        "treatments/batch_form.html",
        {"form": form, "product": record, "tab": "products"},
        status=_status(form),
    )


def _batch_page(
    request: HttpRequest, batch: Batch, recall_form: RecallForm, *, status: int = 200
) -> HttpResponse:
    today = timezone.localdate()
    can_edit = _can_edit(request)
    recipients = batch_recipients(batch=batch) if can_edit else []
    if can_edit:
        # The list names patients and their contact details: one read each.
        audit_read(request, batch)
        audit_read_patients(request, batch, patient_refs=[r.patient.uuid for r in recipients])
    return render(
        request,
        "treatments/batch_detail.html",
        {
            "batch": batch,
            "product": batch.product,
            "usable": batch.is_usable_on(today),
            "expired": batch.expiry_date < today,
            "today": today,
            "recall_form": recall_form,
            "recipients": recipients,
            "can_edit": can_edit,
            "tab": "products",
        },
        status=status,
    )


@staff(*READ_ROLES)
@require_GET
def batch_detail(request: HttpRequest, batch: uuid.UUID) -> HttpResponse:
    return _batch_page(request, batch_get(batch_uuid=batch), RecallForm())


@staff(Role.MANAGER)
@require_POST
def batch_recall(request: HttpRequest, batch: uuid.UUID) -> HttpResponse:
    record = batch_get(batch_uuid=batch)
    form = RecallForm(request.POST)
    if form.is_valid():
        try:
            services.batch_recall(
                batch=record,
                recalled_by=signed_in_user(request),
                reason=form.cleaned_data["reason"],
            )
        except services.BatchAlreadyRecalledError as error:
            messages.error(request, error.message)
            return _batch_page(request, record, RecallForm(), status=409)
        except ValidationError as error:
            _show_errors(form, error)
        else:
            messages.warning(
                request,
                _("Lot %(lot)s is recalled. It can no longer be chosen for any patient.")
                % {"lot": record.lot_number},
            )
            return HttpResponseRedirect(record.get_absolute_url())
    return _batch_page(request, record, form, status=400)


@staff(Role.MANAGER)
@require_GET
def batch_recall_csv(request: HttpRequest, batch: uuid.UUID) -> HttpResponse:
    """Everyone who received the batch, for phoning or writing to them."""
    record = batch_get(batch_uuid=batch)
    recipients = batch_recipients(batch=record)
    audit_read(request, record, action=AuditAction.DOWNLOAD)
    audit_read_patients(
        request,
        record,
        patient_refs=[r.patient.uuid for r in recipients],
        action=AuditAction.DOWNLOAD,
    )
    filename = f"recall-{record.product.name}-{record.lot_number}.csv"
    safe_name = "".join(c if c.isalnum() or c in "-._" else "-" for c in filename)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{safe_name}"'
    response.write("\ufeff")  # spreadsheet programs read UTF-8 with the mark
    writer = csv_writer(response)
    writer.writerow(
        [
            _("Last name"),
            _("First name"),
            _("Date of birth"),
            _("Phone"),
            _("Email"),
            _("Reminders by"),
            _("Received"),
            _("Date"),
            _("Product"),
            _("Lot number"),
        ]
    )
    for recipient in recipients:
        patient = recipient.patient
        writer.writerow(
            [
                patient.last_name,
                patient.first_name,
                patient.date_of_birth.isoformat() if patient.date_of_birth else "",
                patient.phone.as_international if patient.phone else "",
                patient.email,
                patient.get_reminder_channel_display(),
                recipient.what,
                formats.date_format(timezone.localtime(recipient.received_at), "Y-m-d H:i"),
                record.product.name,
                record.lot_number,
            ]
        )
    return response


# --- Aftercare sheets ---------------------------------------------------------------


@staff(*READ_ROLES)
@require_GET
def sheet_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "treatments/aftercare_list.html",
        {"sheets": sheets_list(), "can_edit": _can_edit(request), "tab": "sheets"},
    )


@staff(*READ_ROLES)
@require_GET
def sheet_detail(request: HttpRequest, sheet: uuid.UUID) -> HttpResponse:
    return render(
        request,
        "treatments/aftercare_detail.html",
        {"sheet": sheet_get(sheet_uuid=sheet), "can_edit": _can_edit(request), "tab": "sheets"},
    )


@staff(Role.MANAGER)
@require_http_methods(["GET", "POST"])
def sheet_create(request: HttpRequest) -> HttpResponse:
    form = AftercareSheetForm(request.POST or None)
    if (earlier := form.saved_before(AftercareSheet, by=signed_in_user(request))) is not None:
        return _already_saved(
            request,
            reverse("treatments:sheet_detail", kwargs={"sheet": earlier.uuid}),  # type: ignore[attr-defined]
        )
    if request.method == "POST" and form.is_valid():
        try:
            sheet = services.sheet_create(
                created_by=signed_in_user(request),
                submission_token=form.cleaned_data["submission_token"],
                **form.service_fields(),
            )
        except AlreadySubmittedError as repeated:
            return _already_saved(
                request,
                reverse("treatments:sheet_detail", kwargs={"sheet": repeated.obj.uuid}),  # type: ignore[attr-defined]
            )
        except ValidationError as error:
            _show_errors(form, error)
        else:
            messages.success(request, _("%(title)s is added.") % {"title": sheet.title})
            return HttpResponseRedirect(
                reverse("treatments:sheet_detail", kwargs={"sheet": sheet.uuid})
            )
    return render(
        request,
        "treatments/aftercare_form.html",
        {"form": form, "creating": True, "tab": "sheets"},
        status=_status(form),
    )


@staff(Role.MANAGER)
@require_http_methods(["GET", "POST"])
def sheet_edit(request: HttpRequest, sheet: uuid.UUID) -> HttpResponse:
    record = sheet_get(sheet_uuid=sheet)
    form = AftercareSheetForm(request.POST or None, instance=record)
    stale_status = 0
    if request.method == "POST" and form.is_valid():
        try:
            services.sheet_update(
                sheet=record,
                updated_by=signed_in_user(request),
                expected_version=form.cleaned_data["version"],
                **form.typed(form.service_fields()),
            )
        except StaleEditError as refusal:
            stale_status = form.show_stale(refusal)
        except ValidationError as error:
            _show_errors(form, error)
        else:
            messages.success(request, _("Aftercare sheet saved."))
            return HttpResponseRedirect(
                reverse("treatments:sheet_detail", kwargs={"sheet": record.uuid})
            )
    return render(
        request,
        "treatments/aftercare_form.html",
        {"form": form, "sheet": record, "creating": False, "tab": "sheets"},
        status=stale_status or _status(form),
    )


# --- Protocols ----------------------------------------------------------------------


@staff(*READ_ROLES)
@require_GET
def protocol_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "treatments/protocol_list.html",
        {"protocols": protocols_list(), "can_edit": _can_edit(request), "tab": "protocols"},
    )


@staff(*READ_ROLES)
@require_GET
def protocol_detail(request: HttpRequest, protocol: uuid.UUID) -> HttpResponse:
    record = protocol_get(protocol_uuid=protocol)
    return render(
        request,
        "treatments/protocol_detail.html",
        {
            "protocol": record,
            "areas": [TreatmentArea(area).label for area in record.default_areas],
            "can_edit": _can_edit(request),
            "tab": "protocols",
        },
    )


def _protocol_form_page(
    request: HttpRequest,
    form: ProtocolForm,
    cocktail: BaseCocktailFormSet,
    *,
    protocol: Protocol | None = None,
    status: int = 0,
) -> HttpResponse:
    return render(
        request,
        "treatments/protocol_form.html",
        {
            "form": form,
            "cocktail": cocktail,
            "protocol": protocol,
            "creating": protocol is None,
            "tab": "protocols",
        },
        status=status or _status(form, cocktail),
    )


@staff(Role.MANAGER)
@require_http_methods(["GET", "POST"])
def protocol_create(request: HttpRequest) -> HttpResponse:
    form = ProtocolForm(request.POST or None)
    cocktail = CocktailFormSet(request.POST or None, prefix="cocktail")
    if (earlier := form.saved_before(Protocol, by=signed_in_user(request))) is not None:
        return _already_saved(request, earlier.get_absolute_url())  # type: ignore[attr-defined]
    if request.method == "POST" and form.is_valid() and cocktail.is_valid():
        try:
            protocol = services.protocol_create(
                created_by=signed_in_user(request),
                lines=cocktail.lines(),
                submission_token=form.cleaned_data["submission_token"],
                **form.service_fields(),
            )
        except AlreadySubmittedError as repeated:
            return _already_saved(request, repeated.obj.get_absolute_url())  # type: ignore[attr-defined]
        except ValidationError as error:
            _show_errors(form, error)
        else:
            messages.success(request, _("%(name)s is added.") % {"name": protocol.name})
            return HttpResponseRedirect(protocol.get_absolute_url())
    return _protocol_form_page(request, form, cocktail)


@staff(Role.MANAGER)
@require_http_methods(["GET", "POST"])
def protocol_edit(request: HttpRequest, protocol: uuid.UUID) -> HttpResponse:
    record = protocol_get(protocol_uuid=protocol)
    form = ProtocolForm(request.POST or None, instance=record)
    cocktail = CocktailFormSet(
        request.POST or None, prefix="cocktail", initial=cocktail_initial(record)
    )
    stale_status = 0
    if request.method == "POST" and form.is_valid() and cocktail.is_valid():
        lines = cocktail.lines()
        try:
            services.protocol_update(
                protocol=record,
                updated_by=signed_in_user(request),
                lines=lines if form.cocktail_typed(lines) else None,
                expected_version=form.cleaned_data["version"],
                **form.typed(form.service_fields()),
            )
        except StaleEditError as refusal:
            stale_status = form.show_stale(refusal)
            if not form.cocktail_typed(lines):
                # Left as it was: the cocktail shown is the one saved now.
                cocktail = CocktailFormSet(
                    prefix="cocktail",
                    initial=cocktail_initial(protocol_get(protocol_uuid=protocol)),
                )
        except ValidationError as error:
            _show_errors(form, error)
        else:
            messages.success(request, _("Protocol saved."))
            return HttpResponseRedirect(record.get_absolute_url())
    return _protocol_form_page(request, form, cocktail, protocol=record, status=stale_status)

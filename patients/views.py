"""Views of the patient register: thin, one access helper, one service each."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from clinic.access import staff
from clinic.audit import audit_log, audit_read
from clinic.models import AuditAction, User
from clinic.roles import Role
from patients.forms import PatientForm, PatientSearchForm
from patients.selectors import patient_get_for_user, patient_possible_duplicates, patient_search
from patients.services import patient_create, patient_update

REGISTER_ROLES = (Role.RECEPTIONIST, Role.PRACTITIONER)
READ_ROLES = (Role.RECEPTIONIST, Role.PRACTITIONER, Role.MANAGER)


def _user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)  # staff routes only
    return user


@staff(*READ_ROLES)
@require_GET
def patient_list(request: HttpRequest) -> HttpResponse:
    """The register's search page; answers htmx requests with the results only."""
    form = PatientSearchForm(request.GET or None)
    query = form.cleaned_data["q"] if form.is_valid() else ""
    results = patient_search(user=_user(request), query=query) if query else []
    if query:
        # A search shows personal data: record that it happened (not what was typed).
        audit_log(
            actor=request.user, action=AuditAction.VIEW, object_type="patients.patient_search"
        )
    context = {"form": form, "query": query, "results": results}
    template = "patients/_patient_results.html" if request.htmx else "patients/patient_list.html"  # type: ignore[attr-defined]
    return render(request, template, context)


def _duplicates(form: PatientForm, exclude: object = None) -> list:
    data = form.cleaned_data
    return patient_possible_duplicates(
        first_name=data["first_name"],
        last_name=data["last_name"],
        date_of_birth=data.get("date_of_birth"),
        email=data.get("email", ""),
        phone=data.get("phone") or "",
        exclude=exclude,  # type: ignore[arg-type]
    )


@staff(*REGISTER_ROLES)
@require_http_methods(["GET", "POST"])
def patient_create_view(request: HttpRequest) -> HttpResponse:
    form = PatientForm(request.POST or None)
    duplicates: list = []
    if request.method == "POST" and form.is_valid():
        duplicates = _duplicates(form)
        if duplicates and not form.cleaned_data["confirm_not_duplicate"]:
            # Show the possible matches first; the next post confirms.
            data = request.POST.copy()
            data["confirm_not_duplicate"] = "on"
            form = PatientForm(data)
            form.is_valid()
        else:
            patient = patient_create(created_by=_user(request), **form.service_fields())
            messages.success(request, _("%(name)s is registered.") % {"name": patient.full_name})
            return HttpResponseRedirect(patient.get_absolute_url())
    return render(
        request,
        "patients/patient_form.html",
        {"form": form, "duplicates": duplicates, "creating": True},
        status=200 if not form.errors else 400,
    )


@staff(*READ_ROLES)
@require_GET
def patient_detail(request: HttpRequest, patient: uuid.UUID) -> HttpResponse:
    record = patient_get_for_user(user=_user(request), patient_uuid=patient)
    audit_read(request, record, patient_ref=record.uuid)
    user = _user(request)
    return render(
        request,
        "patients/patient_detail.html",
        {"patient": record, "can_edit": user.has_any_role(REGISTER_ROLES)},
    )


@staff(*REGISTER_ROLES)
@require_http_methods(["GET", "POST"])
def patient_edit(request: HttpRequest, patient: uuid.UUID) -> HttpResponse:
    record = patient_get_for_user(user=_user(request), patient_uuid=patient)
    form = PatientForm(request.POST or None, instance=record)
    duplicates: list = []
    if request.method == "POST" and form.is_valid():
        duplicates = _duplicates(form, exclude=record)
        if duplicates and not form.cleaned_data["confirm_not_duplicate"]:
            data = request.POST.copy()
            data["confirm_not_duplicate"] = "on"
            form = PatientForm(data, instance=record)
            form.is_valid()
        else:
            patient_update(patient=record, updated_by=_user(request), **form.service_fields())
            messages.success(request, _("Contact details saved."))
            return HttpResponseRedirect(record.get_absolute_url())
    else:
        audit_read(request, record, patient_ref=record.uuid)
    return render(
        request,
        "patients/patient_form.html",
        {"form": form, "duplicates": duplicates, "patient": record, "creating": False},
        status=200 if not form.errors else 400,
    )

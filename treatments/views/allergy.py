"""Views of allergy tests (practitioners only) and the practitioner's task list."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from clinic.access import signed_in_user, staff
from clinic.audit import audit_log, audit_read, audit_read_patients
from clinic.concurrency import AlreadySubmittedError
from clinic.downloads import stored_file_response
from clinic.forms import submits
from clinic.models import AuditAction
from clinic.refusals import refusal_status
from clinic.roles import Role
from patients.images import MAX_UPLOAD_BYTES
from patients.models import Patient
from patients.selectors import patient_get_for_user
from treatments.forms.allergy import AllergyReadingForm, AllergyTestForm
from treatments.models import AllergyResult, AllergyTest
from treatments.selectors.allergy import (
    allergies_of,
    allergy_tasks,
    allergy_test_get,
    allergy_tests_of,
    format_local,
)
from treatments.services.allergy import (
    AllergyReadingRefusedError,
    allergy_test_give,
    allergy_test_read,
)


def _patient(request: HttpRequest, patient: uuid.UUID) -> Patient:
    return patient_get_for_user(user=signed_in_user(request), patient_uuid=patient)


def _list_url(patient: Patient) -> str:
    return reverse("treatments:allergy_tests", kwargs={"patient": patient.uuid})


@staff(Role.PRACTITIONER)
@require_GET
def allergy_tests(request: HttpRequest, patient: uuid.UUID) -> HttpResponse:
    """The patient's allergies on record and every allergy test, newest first."""
    record = _patient(request, patient)
    tests = list(allergy_tests_of(patient=record)[:100])
    allergies = list(allergies_of(patient=record))
    audit_log(
        actor=request.user,
        action=AuditAction.VIEW,
        object_type="treatments.allergytest",
        object_id="list",
        patient_ref=record.uuid,
    )
    return render(
        request,
        "treatments/allergy_list.html",
        {"patient": record, "tests": tests, "allergies": allergies, "now": timezone.now()},
    )


@submits(AllergyTestForm)
@staff(Role.PRACTITIONER)
@require_http_methods(["GET", "POST"])
def allergy_test_new(request: HttpRequest, patient: uuid.UUID) -> HttpResponse:
    record = _patient(request, patient)
    form = AllergyTestForm(request.POST or None, today=timezone.localdate())
    if request.method == "POST" and form.is_valid():
        try:
            test = allergy_test_give(
                patient=record, given_by=signed_in_user(request), **form.service_fields()
            )
        except AlreadySubmittedError as repeated:
            messages.info(request, repeated.message)
            return HttpResponseRedirect(repeated.obj.get_absolute_url())  # type: ignore[attr-defined]
        except ValidationError as error:
            if hasattr(error, "error_dict"):
                for field, errors in error.error_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                form.add_error(None, error)
        else:
            messages.success(
                request,
                _("Allergy test recorded. It can be read from %(when)s.")
                % {"when": format_local(test.read_due_at)},
            )
            return HttpResponseRedirect(test.get_absolute_url())
    return render(
        request,
        "treatments/allergy_form.html",
        {"form": form, "patient": record},
        status=400 if form.errors else 200,
    )


def _detail(
    request: HttpRequest,
    record: Patient,
    test: AllergyTest,
    form: AllergyReadingForm,
    *,
    refusal: str = "",
    status: int = 200,
) -> HttpResponse:
    now = timezone.now()
    return render(
        request,
        "treatments/allergy_detail.html",
        {
            "patient": record,
            "test": test,
            "form": form,
            "refusal": refusal,
            "now": now,
            "due_now": now >= test.read_due_at,
            "read_from": format_local(test.read_due_at),
            "positive": AllergyResult.POSITIVE,
        },
        status=status,
    )


@staff(Role.PRACTITIONER)
@require_GET
def allergy_test_detail(request: HttpRequest, patient: uuid.UUID, test: uuid.UUID) -> HttpResponse:
    record = _patient(request, patient)
    found = allergy_test_get(patient=record, test_uuid=test)
    audit_read(request, found, patient_ref=record.uuid)
    return _detail(request, record, found, AllergyReadingForm())


@submits(AllergyReadingForm)
@staff(Role.PRACTITIONER)
@require_POST
def allergy_test_read_view(
    request: HttpRequest, patient: uuid.UUID, test: uuid.UUID
) -> HttpResponse:
    record = _patient(request, patient)
    found = allergy_test_get(patient=record, test_uuid=test)
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_UPLOAD_BYTES + 1024 * 1024:
        # Refuse before reading the body: a huge upload is never spooled to disk.
        form = AllergyReadingForm()
        message = _("The photo is larger than 15 MB. Send a smaller one.")
        return _detail(request, record, found, form, refusal=message, status=413)
    form = AllergyReadingForm(request.POST, request.FILES)
    if not form.is_valid():
        return _detail(request, record, found, form, status=400)
    try:
        allergy_test_read(
            test=found,
            read_by=signed_in_user(request),
            result=form.cleaned_data["result"],
            reaction=form.cleaned_data["reaction"],
            photo=form.cleaned_data["photo"],
            submission_token=form.cleaned_data["submission_token"],
        )
    except AlreadySubmittedError as repeated:
        messages.info(request, repeated.message)
        return HttpResponseRedirect(_list_url(record))
    except AllergyReadingRefusedError as refused:
        found.refresh_from_db()
        return _detail(
            request, record, found, form, refusal=refused.message, status=refusal_status(refused)
        )
    except ValidationError as error:
        for field, errors in getattr(error, "error_dict", {None: error.error_list}).items():
            form.add_error(field if field in form.fields else None, errors)
        return _detail(request, record, found, form, status=400)
    if form.cleaned_data["result"] == AllergyResult.POSITIVE:
        messages.warning(
            request,
            _("Positive reading saved. The ingredients tested are now recorded as allergies."),
        )
    else:
        messages.success(request, _("Negative reading saved."))
    return HttpResponseRedirect(_list_url(record))


@staff(Role.PRACTITIONER)
@require_GET
def allergy_test_photo(request: HttpRequest, patient: uuid.UUID, test: uuid.UUID) -> FileResponse:
    """The photo of a reaction, only for someone who may see this patient's record."""
    record = _patient(request, patient)
    found = allergy_test_get(patient=record, test_uuid=test)
    if not found.photo:
        raise Http404
    response = stored_file_response(
        found.photo, content_type="image/jpeg", filename=f"{found.uuid}.jpg"
    )
    audit_read(request, found, patient_ref=record.uuid, action=AuditAction.DOWNLOAD)
    return response


@staff(Role.PRACTITIONER)
@require_GET
def tasks(request: HttpRequest) -> HttpResponse:
    """The practitioner's task list: allergy readings due now, overdue or coming up."""
    now = timezone.now()
    found = allergy_tasks(now=now)
    # One event per patient listed: the list names them with what they were tested for.
    shown = [test.patient.uuid for test in (*found.due, *found.upcoming)]
    if shown:
        audit_read_patients(
            request,
            None,
            patient_refs=shown,
            object_type="treatments.allergytest",
            object_id="tasks",
        )
    else:
        audit_log(
            actor=request.user,
            action=AuditAction.VIEW,
            object_type="treatments.allergytest",
            object_id="tasks",
        )
    return render(
        request,
        "treatments/tasks_list.html",
        {"due": found.due, "upcoming": found.upcoming, "now": now},
    )

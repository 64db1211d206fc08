"""Staff pages of a patient's data rights: produce and download a
subject-access export, record a request to erase. Practitioners and
managers, for a patient they may see; every request and download audited."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from clinic import dates
from clinic.access import refused_as, signed_in_user, staff
from clinic.audit import audit_log, audit_read
from clinic.downloads import stored_file_response
from clinic.models import AuditAction
from clinic.refusals import RefusedError, refusal_status
from clinic.roles import Role
from patients.selectors import patient_get_for_user
from treatments.forms.data_rights import ErasureRequestForm
from treatments.selectors.data_rights import (
    erasure_requests_of,
    export_get_for_user,
    exports_of,
)
from treatments.services.data_rights import erasure_request_record, subject_access_request
from treatments.views.documents import private_download

DATA_RIGHTS_TASK = "Patients' data rights are handled by a practitioner or a manager."


def _page(
    request: HttpRequest,
    patient: uuid.UUID,
    *,
    form: ErasureRequestForm | None = None,
    status: int = 200,
) -> HttpResponse:
    user = signed_in_user(request)
    record = patient_get_for_user(user=user, patient_uuid=patient)
    audit_read(request, record, patient_ref=record.uuid)
    return render(
        request,
        "treatments/data_rights.html",
        {
            "patient": record,
            "exports": exports_of(patient_id=record.pk),
            "erasures": erasure_requests_of(patient_id=record.pk),
            "erasure_form": form
            or ErasureRequestForm(initial={"received_on": timezone.localdate()}),
            "now": timezone.now(),
        },
        status=status,
    )


@staff(Role.PRACTITIONER, Role.MANAGER)
@refused_as(DATA_RIGHTS_TASK)
@require_GET
def data_rights(request: HttpRequest, patient: uuid.UUID) -> HttpResponse:
    """The patient's data rights: exports made and being made, erasure requests."""
    return _page(request, patient)


@staff(Role.PRACTITIONER, Role.MANAGER)
@refused_as(DATA_RIGHTS_TASK)
@require_POST
def subject_access_create(request: HttpRequest, patient: uuid.UUID) -> HttpResponse:
    """Queue a subject-access export; a second press while one is being made
    shows that one."""
    user = signed_in_user(request)
    record = patient_get_for_user(user=user, patient_uuid=patient)
    try:
        subject_access_request(patient=record, requested_by=user)
    except RefusedError as refusal:
        messages.error(request, refusal.message)
        return _page(request, patient, status=refusal_status(refusal))
    messages.success(
        request,
        _(
            "The export is being made. It usually takes under a minute; "
            "this page shows its progress."
        ),
    )
    return HttpResponseRedirect(reverse("treatments:data_rights", kwargs={"patient": record.uuid}))


@staff(Role.PRACTITIONER, Role.MANAGER)
@refused_as(DATA_RIGHTS_TASK)
@require_GET
def subject_access_status(
    request: HttpRequest, patient: uuid.UUID, export: uuid.UUID
) -> HttpResponse:
    """One export's row alone; the page polls it while the export is made."""
    found = export_get_for_user(
        user=signed_in_user(request), patient_uuid=patient, export_uuid=export
    )
    return render(
        request,
        "treatments/subject_access_row.html",
        {"patient": found.patient, "export": found, "now": timezone.now()},
    )


@staff(Role.PRACTITIONER, Role.MANAGER)
@refused_as(DATA_RIGHTS_TASK)
@require_GET
def subject_access_download(
    request: HttpRequest, patient: uuid.UUID, export: uuid.UUID
) -> HttpResponseBase:
    """The ZIP, checked on every hit: the user may see the patient, the export
    is the patient's, ready and not expired. Audited as a download."""
    found = export_get_for_user(
        user=signed_in_user(request), patient_uuid=patient, export_uuid=export
    )
    if not found.is_downloadable or (found.expires_at and found.expires_at <= timezone.now()):
        return render(
            request,
            "refusal.html",
            {"message": _("This export is no longer available: make a new one.")},
            status=410,
        )
    made = timezone.localtime(found.generated_at or found.queued_at).date().isoformat()
    response = stored_file_response(
        found.file,
        content_type="application/zip",
        as_attachment=True,
        filename=f"records-{made}-{found.uuid}.zip",
    )
    audit_log(
        actor=request.user, action=AuditAction.DOWNLOAD, obj=found, patient_ref=found.patient.uuid
    )
    return private_download(response)


@staff(Role.PRACTITIONER, Role.MANAGER)
@refused_as(DATA_RIGHTS_TASK)
@require_POST
def erasure_create(request: HttpRequest, patient: uuid.UUID) -> HttpResponse:
    """Record a request to erase: contact details and messaging consent
    erased at once, the clinical record kept until its retention ends."""
    user = signed_in_user(request)
    record = patient_get_for_user(user=user, patient_uuid=patient)
    form = ErasureRequestForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Check the marked fields."))
        return _page(request, patient, form=form, status=400)
    try:
        erasure = erasure_request_record(
            patient=record,
            recorded_by=user,
            received_on=form.cleaned_data["received_on"],
            notes=form.cleaned_data["notes"],
            submission_token=form.cleaned_data.get("submission_token"),
        )
    except RefusedError as refusal:
        form.add_error(refusal.field if refusal.field in form.fields else None, refusal.message)
        return _page(request, patient, form=form, status=409 if refusal.kind == "conflict" else 400)
    messages.success(
        request,
        _(
            "The request to erase is recorded. Contact details and messaging consent are erased; "
            "the clinical record is kept until %(until)s."
        )
        % {"until": dates.day(erasure.retain_until, year=True)},
    )
    return HttpResponseRedirect(reverse("treatments:data_rights", kwargs={"patient": record.uuid}))

"""Staff views of aftercare documents: the status block (polled while the PDF
is being prepared), download, send again, revoke links, regenerate; and
inviting a patient to the portal."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from clinic.access import signed_in_user, staff
from clinic.audit import audit_log
from clinic.concurrency import AlreadySubmittedError
from clinic.downloads import stored_file_response
from clinic.models import AuditAction, User
from clinic.roles import CLINICAL_DOCUMENT_ROLES, Role
from patients.selectors import patient_get_for_user
from treatments.forms.portal import PortalInviteForm, RevokeLinkForm, SendLinkForm
from treatments.models import PatientDocument
from treatments.selectors.portal import document_get_for_user, document_live_links
from treatments.services.aftercare import (
    AftercareEmailFailedError,
    DocumentNotReadyError,
    aftercare_regenerate,
    aftercare_send,
    download_links_revoke,
)
from treatments.services.portal import PortalInviteRefusedError, portal_invite


def _back(user: User, document: PatientDocument) -> HttpResponseRedirect:
    """The session page for practitioners; the patient's page for reception."""
    if user.has_any_role([Role.PRACTITIONER]):
        return HttpResponseRedirect(
            reverse("treatments:session_record", kwargs={"booking": document.session.booking.uuid})
        )
    return HttpResponseRedirect(document.patient.get_absolute_url())


def private_download(response: FileResponse) -> FileResponse:
    """Headers of every document download: never cached, never sniffed, no referrer."""
    response["Cache-Control"] = "no-store, private"
    response["X-Content-Type-Options"] = "nosniff"
    response["Referrer-Policy"] = "no-referrer"
    return response


def document_file_response(document: PatientDocument) -> FileResponse:
    """The sheet's PDF, downloaded; `Http404` when its file is gone."""
    response = stored_file_response(
        document.file,
        content_type="application/pdf",
        as_attachment=True,
        filename=f"aftercare-{document.uuid}.pdf",
    )
    return private_download(response)


@staff(Role.PRACTITIONER)
@require_GET
def document_status(request: HttpRequest, patient: uuid.UUID, document: uuid.UUID) -> HttpResponse:
    """The status block alone; the session page polls it while the sheet is prepared."""
    found = document_get_for_user(
        user=signed_in_user(request), patient_uuid=patient, document_uuid=document
    )
    return render(
        request,
        "treatments/document_status.html",
        {
            "patient": found.patient,
            "document": found,
            "live_links": document_live_links(document=found),
            "send_form": SendLinkForm(),
        },
    )


@staff(Role.PRACTITIONER)
@require_GET
def document_download(
    request: HttpRequest, patient: uuid.UUID, document: uuid.UUID
) -> FileResponse:
    found = document_get_for_user(
        user=signed_in_user(request), patient_uuid=patient, document_uuid=document
    )
    if not found.file or not found.sha256:
        raise Http404
    response = document_file_response(found)
    audit_log(
        actor=request.user,
        action=AuditAction.DOWNLOAD,
        obj=found,
        patient_ref=found.patient.uuid,
    )
    return response


@staff(Role.PRACTITIONER, Role.RECEPTIONIST)
@require_POST
def document_send(request: HttpRequest, patient: uuid.UUID, document: uuid.UUID) -> HttpResponse:
    """Email the patient a new link (links sent before stay valid unless revoked)."""
    user = signed_in_user(request)
    found = document_get_for_user(user=user, patient_uuid=patient, document_uuid=document)
    form = SendLinkForm(request.POST)
    token = form.cleaned_data["submission_token"] if form.is_valid() else None
    try:
        aftercare_send(document=found, sent_by=user, submission_token=token)
    except AlreadySubmittedError as repeated:
        messages.info(request, repeated.message)
        return _back(user, found)
    except DocumentNotReadyError:
        messages.error(request, _("The sheet is not ready yet. Send it once it is ready."))
        return _back(user, found)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return _back(user, found)
    except AftercareEmailFailedError:
        messages.error(
            request,
            _(
                "The email could not be sent just now: the page shows it as failed. "
                "Please try again in a few minutes."
            ),
        )
        return _back(user, found)
    messages.success(request, _("A new download link was emailed to the patient."))
    return _back(user, found)


@staff(Role.PRACTITIONER, Role.RECEPTIONIST)
@require_POST
def document_revoke(request: HttpRequest, patient: uuid.UUID, document: uuid.UUID) -> HttpResponse:
    """Stop one emailed link (or every live one) from opening."""
    user = signed_in_user(request)
    found = document_get_for_user(user=user, patient_uuid=patient, document_uuid=document)
    form = RevokeLinkForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("That link could not be found."))
        return _back(user, found)
    count = download_links_revoke(
        document=found, revoked_by=user, link_uuid=form.cleaned_data.get("link")
    )
    if count:
        messages.success(request, _("The links were revoked: they no longer open."))
    else:
        messages.info(request, _("There was no link to revoke."))
    return _back(user, found)


@staff(Role.PRACTITIONER)
@require_POST
def document_regenerate(
    request: HttpRequest, patient: uuid.UUID, document: uuid.UUID
) -> HttpResponse:
    """Make the sheet again ("Try again" after it could not be made, or after
    its protocol's sheet was corrected); the new file replaces the old one."""
    user = signed_in_user(request)
    found = document_get_for_user(user=user, patient_uuid=patient, document_uuid=document)
    aftercare_regenerate(document=found, requested_by=user)
    messages.success(request, _("The sheet is being prepared again."))
    return _back(user, found)


@staff(*CLINICAL_DOCUMENT_ROLES)
@require_POST
def portal_invite_view(request: HttpRequest, patient: uuid.UUID) -> HttpResponse:
    """Invite the patient to the portal: an account and a one-time sign-in link by email.
    Only roles that open the patient's clinical documents here may send one
    (the portal shows them); an email changed too recently by another role
    waits (409, said in plain words)."""
    user = signed_in_user(request)
    found = patient_get_for_user(user=user, patient_uuid=patient)
    form = PortalInviteForm(request.POST)
    token = form.cleaned_data["submission_token"] if form.is_valid() else None
    try:
        portal_invite(patient=found, invited_by=user, submission_token=token)
    except AlreadySubmittedError as repeated:
        messages.info(request, repeated.message)
        return HttpResponseRedirect(found.get_absolute_url())
    except PortalInviteRefusedError as refused:
        return render(
            request,
            "treatments/link_message.html",
            {"title": _("Portal invitation"), "text": refused.message},
            status=403 if refused.code == "not_allowed" else 409,
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    except OSError:
        messages.error(
            request, _("The email could not be sent just now. Please try again in a few minutes.")
        )
    else:
        messages.success(request, _("The patient was emailed a link to sign in to the portal."))
    return HttpResponseRedirect(found.get_absolute_url())

"""Views of consent: thin, one access helper, one service each.

Managers write and publish the forms (practitioners may read them);
practitioners take, read and withdraw patients' consents.
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
)
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from clinic.access import signed_in_user, staff
from clinic.audit import audit_log, audit_read
from clinic.concurrency import AlreadySubmittedError, StaleEditError
from clinic.downloads import stored_file_response
from clinic.forms import submits
from clinic.models import AuditAction
from clinic.roles import CLINICAL_DOCUMENT_ROLES, Role
from consent.forms import ConsentFormCreateForm, DraftForm, PublishForm, SignForm, WithdrawForm
from consent.models import ConsentForm, DocumentStatus, SignedConsent, SignedConsentPDF
from consent.selectors import (
    consent_forms_overview,
    consent_states_of,
    form_versions,
    patients_needing_reconsent,
    sections_match_text,
    signed_consent_get,
    signed_consents_of,
    text_matches_hash,
    version_current,
)
from consent.services import (
    VERSION_TEXT_FIELDS,
    consent_draft_save,
    consent_form_create,
    consent_pdf_retry,
    consent_sign,
    consent_version_publish,
    consent_withdraw,
    signed_sections,
)
from patients.models import Patient
from patients.selectors import patient_get_for_user

FORM_READERS = (Role.MANAGER, Role.PRACTITIONER)


def _form(form: uuid.UUID) -> ConsentForm:
    return get_object_or_404(ConsentForm, uuid=form)


# --- Forms and versions (managers write, practitioners read) ----------------------------------


@staff(*FORM_READERS)
@require_GET
def form_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "consent/form_list.html",
        {
            "forms": list(consent_forms_overview()),
            "can_write": Role.MANAGER in signed_in_user(request).roles,
        },
    )


@staff(Role.MANAGER)
@require_http_methods(["GET", "POST"])
def form_create(request: HttpRequest) -> HttpResponse:
    form = ConsentFormCreateForm(request.POST or None)
    if (earlier := form.saved_before(ConsentForm, by=signed_in_user(request))) is not None:
        messages.info(request, AlreadySubmittedError.MESSAGE)
        return HttpResponseRedirect(earlier.get_absolute_url())  # type: ignore[attr-defined]
    if request.method == "POST" and form.is_valid():
        try:
            created = consent_form_create(
                title=form.cleaned_data["title"],
                created_by=signed_in_user(request),
                submission_token=form.cleaned_data["submission_token"],
            )
        except AlreadySubmittedError as repeated:
            messages.info(request, repeated.message)
            return HttpResponseRedirect(repeated.obj.get_absolute_url())  # type: ignore[attr-defined]
        messages.success(request, _("Form created: now write its first version."))
        return HttpResponseRedirect(reverse("consent:draft_edit", kwargs={"form": created.uuid}))
    return render(
        request,
        "consent/form_create.html",
        {"form": form},
        status=400 if form.errors else 200,
    )


@staff(*FORM_READERS)
@require_GET
def form_detail(request: HttpRequest, form: uuid.UUID) -> HttpResponse:
    found = _form(form)
    versions = form_versions(form=found)
    return render(
        request,
        "consent/form_detail.html",
        {
            "consent_form": found,
            "versions": versions,
            "draft": next((v for v in versions if not v.is_published), None),
            "current": next((v for v in versions if v.is_published), None),
            "reconsent_count": patients_needing_reconsent(form=found),
            "can_write": Role.MANAGER in signed_in_user(request).roles,
        },
    )


@staff(Role.MANAGER)
@require_http_methods(["GET", "POST"])
def draft_edit(request: HttpRequest, form: uuid.UUID) -> HttpResponse:
    """Write or change the one draft; a new draft starts from the current text."""
    found = _form(form)
    draft = found.versions.filter(published_at__isnull=True).first()
    initial = {}
    if draft is None and (current := version_current(form=found)) is not None:
        initial = {name: getattr(current, name) for name in VERSION_TEXT_FIELDS}
    edit = DraftForm(request.POST or None, instance=draft, initial=initial)
    status = 200
    if request.method == "POST" and edit.is_valid():
        try:
            saved = consent_draft_save(
                form=found,
                saved_by=signed_in_user(request),
                expected_version=edit.cleaned_data["version"],
                **edit.typed(edit.texts()),
            )
        except StaleEditError as refusal:
            status = edit.show_stale(refusal)
        else:
            messages.success(request, _("Draft saved. Read the preview, then publish it."))
            return HttpResponseRedirect(
                reverse(
                    "consent:version_detail", kwargs={"form": found.uuid, "version": saved.uuid}
                )
            )
    if edit.errors and status == 200:
        status = 400
    return render(
        request,
        "consent/draft_form.html",
        {"consent_form": found, "form": edit, "draft": draft},
        status=status,
    )


def _version_page(
    request: HttpRequest,
    found: ConsentForm,
    version: uuid.UUID,
    *,
    stale: StaleEditError | None = None,
    status: int = 200,
) -> HttpResponse:
    shown = get_object_or_404(found.versions.select_related("published_by", "form"), uuid=version)
    return render(
        request,
        "consent/version_detail.html",
        {
            "consent_form": found,
            "version": shown,
            "can_write": Role.MANAGER in signed_in_user(request).roles,
            "stale": stale,
        },
        status=status,
    )


@staff(*FORM_READERS)
@require_GET
def version_detail(request: HttpRequest, form: uuid.UUID, version: uuid.UUID) -> HttpResponse:
    """A version as the patient will read it: the preview of a draft, or a published text."""
    return _version_page(request, _form(form), version)


@staff(Role.MANAGER)
@require_POST
def version_publish(request: HttpRequest, form: uuid.UUID, version: uuid.UUID) -> HttpResponse:
    found = _form(form)
    draft = get_object_or_404(found.versions, uuid=version)
    publish = PublishForm(request.POST)
    if not publish.is_valid():
        for error in publish.non_field_errors():
            messages.error(request, str(error))
        return _version_page(request, found, version, status=400)
    try:
        published = consent_version_publish(
            version=draft,
            published_by=signed_in_user(request),
            expected_version=publish.cleaned_data["version"],
        )
    except StaleEditError as refusal:
        # The preview shows the draft as it is now; its button carries its version.
        status = publish.show_stale(refusal)
        if refusal.is_stale:
            return _version_page(request, found, version, stale=publish.stale, status=status)
        for error in publish.non_field_errors():
            messages.error(request, str(error))
        return _version_page(request, found, version, status=status)
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
        return HttpResponseRedirect(found.get_absolute_url())
    messages.success(
        request,
        _("Version %(number)s is published: every new signature uses it.")
        % {"number": published.number},
    )
    return HttpResponseRedirect(found.get_absolute_url())


# --- A patient's consents (practitioners) ----------------------------------------------------


def _patient(request: HttpRequest, patient: uuid.UUID) -> Patient:
    return patient_get_for_user(user=signed_in_user(request), patient_uuid=patient)


@staff(Role.PRACTITIONER)
@require_GET
def patient_consents(request: HttpRequest, patient: uuid.UUID) -> HttpResponse:
    record = _patient(request, patient)
    audit_log(
        actor=request.user,
        action=AuditAction.VIEW,
        object_type="consent.signedconsent",
        object_id="list",
        patient_ref=record.uuid,
    )
    return render(
        request,
        "consent/patient_consents.html",
        {
            "patient": record,
            "states": consent_states_of(patient=record),
            "signed_list": list(signed_consents_of(patient=record)[:100]),
        },
    )


@submits(SignForm)
@staff(Role.PRACTITIONER)
@require_http_methods(["GET", "POST"])
def sign(request: HttpRequest, patient: uuid.UUID, form: uuid.UUID) -> HttpResponse:
    """The tablet page the patient reads and signs, then the practitioner countersigns."""
    record = _patient(request, patient)
    found = _form(form)
    current = version_current(form=found)
    if current is None:
        messages.error(request, _("This consent form has no published version yet."))
        return HttpResponseRedirect(
            reverse("consent:patient_consents", kwargs={"patient": record.uuid})
        )
    sign_form = SignForm(request.POST or None, version=current)
    if request.method == "POST" and sign_form.is_valid():
        data = sign_form.cleaned_data
        try:
            signed = consent_sign(
                patient=record,
                form=found,
                version_uuid=data["version"],
                sections_confirmed=sign_form.sections_confirmed(),
                photo_consent=data["photo_consent"] == "yes",
                signer_name=data["signer_name"],
                signature_data_url=data["signature"],
                witness=signed_in_user(request),
                witnessed=data["witnessed"],
                submission_token=data["submission_token"],
            )
        except AlreadySubmittedError as repeated:
            messages.info(request, repeated.message)
            return HttpResponseRedirect(repeated.obj.get_absolute_url())  # type: ignore[attr-defined]
        except ValidationError as exc:
            sign_form.add_error(None, exc)
        else:
            messages.success(request, _("Consent signed. The PDF copy is being prepared."))
            return HttpResponseRedirect(signed.get_absolute_url())
    if request.method == "POST":
        messages.error(request, _("The consent is not signed yet: see the marked parts."))
    else:
        audit_read(request, current, patient_ref=record.uuid)
    return render(
        request,
        "consent/sign.html",
        {"patient": record, "consent_form": found, "version": current, "form": sign_form},
        status=400 if sign_form.errors else 200,
    )


def _signed(request: HttpRequest, patient: uuid.UUID, signed: uuid.UUID) -> SignedConsent:
    return signed_consent_get(patient=_patient(request, patient), signed_uuid=signed)


def _signed_page(
    request: HttpRequest,
    found: SignedConsent,
    *,
    withdraw_form: WithdrawForm | None = None,
    status: int = 200,
) -> HttpResponse:
    withdrawal = getattr(found, "withdrawal", None)
    return render(
        request,
        "consent/signed_detail.html",
        {
            "patient": found.patient,
            "signed": found,
            "sections": signed_sections(found),
            "hash_ok": text_matches_hash(found),
            "sections_ok": sections_match_text(found),
            "withdrawal": withdrawal,
            "pdf": getattr(found, "pdf", None),
            "withdraw_form": (withdraw_form or WithdrawForm()) if withdrawal is None else None,
        },
        status=status,
    )


@staff(Role.PRACTITIONER)
@require_GET
def signed_detail(request: HttpRequest, patient: uuid.UUID, signed: uuid.UUID) -> HttpResponse:
    found = _signed(request, patient, signed)
    audit_read(request, found, patient_ref=found.patient.uuid)
    return _signed_page(request, found)


@staff(Role.PRACTITIONER)
@require_GET
def pdf_status(request: HttpRequest, patient: uuid.UUID, signed: uuid.UUID) -> HttpResponse:
    """The PDF's status box alone; the page polls it while the PDF is being prepared."""
    found = _signed(request, patient, signed)
    return render(
        request,
        "consent/_pdf_status.html",
        {"patient": found.patient, "signed": found, "pdf": getattr(found, "pdf", None)},
    )


@staff(*CLINICAL_DOCUMENT_ROLES)
@require_POST
def pdf_retry(request: HttpRequest, patient: uuid.UUID, signed: uuid.UUID) -> HttpResponse:
    """Make the PDF again after it could not be made ("Try again")."""
    found = _signed(request, patient, signed)
    try:
        consent_pdf_retry(signed=found, requested_by=signed_in_user(request))
    except SignedConsentPDF.DoesNotExist:
        raise Http404 from None
    messages.success(request, _("The PDF is being prepared again."))
    return HttpResponseRedirect(found.get_absolute_url())


@submits(WithdrawForm)
@staff(Role.PRACTITIONER)
@require_POST
def withdraw(request: HttpRequest, patient: uuid.UUID, signed: uuid.UUID) -> HttpResponse:
    """Record a withdrawal. Sent twice (a double click, two tabs), the second is
    answered 409 with a sentence, and the page shows the withdrawal that stands."""
    found = _signed(request, patient, signed)
    form = WithdrawForm(request.POST)
    if form.is_valid():
        try:
            consent_withdraw(
                signed=found,
                reason=form.cleaned_data["reason"],
                recorded_by=signed_in_user(request),
                submission_token=form.cleaned_data["submission_token"],
            )
        except AlreadySubmittedError as repeated:
            messages.info(request, repeated.message)
            return HttpResponseRedirect(found.get_absolute_url())
        except ValidationError as exc:
            if "already_withdrawn" not in _codes(exc):
                form.add_error(None, exc)
                return _signed_page(request, found, withdraw_form=form, status=400)
            messages.error(request, exc.messages[0])
            # Read it again: the page shows the withdrawal recorded first.
            again = signed_consent_get(patient=found.patient, signed_uuid=found.uuid)
            return _signed_page(request, again, status=409)
        messages.success(request, _("The withdrawal is recorded."))
        return HttpResponseRedirect(found.get_absolute_url())
    return _signed_page(request, found, withdraw_form=form, status=400)


def _codes(exc: ValidationError) -> set[str | None]:
    errors = exc.error_dict.values() if hasattr(exc, "error_dict") else [exc.error_list]
    return {error.code for field_errors in errors for error in field_errors}


def _private(response: HttpResponseBase) -> HttpResponseBase:
    response["Cache-Control"] = "no-store, private"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@staff(Role.PRACTITIONER)
@require_GET
def signature_image(
    request: HttpRequest, patient: uuid.UUID, signed: uuid.UUID
) -> HttpResponseBase:
    found = _signed(request, patient, signed)
    if not found.signature:
        # Removed when the record was anonymised.
        raise Http404
    response = stored_file_response(
        found.signature, content_type="image/png", filename=f"signature-{found.uuid}.png"
    )
    audit_read(request, found, patient_ref=found.patient.uuid)
    return _private(response)


@staff(Role.PRACTITIONER)
@require_GET
def signed_pdf(request: HttpRequest, patient: uuid.UUID, signed: uuid.UUID) -> HttpResponseBase:
    found = _signed(request, patient, signed)
    pdf = getattr(found, "pdf", None)
    if pdf is None or pdf.status != DocumentStatus.READY or not pdf.file:
        raise Http404
    response = stored_file_response(
        pdf.file,
        content_type="application/pdf",
        filename=f"consent-{found.uuid}.pdf",
        as_attachment=True,
    )
    audit_log(
        actor=request.user,
        action=AuditAction.DOWNLOAD,
        obj=pdf,
        object_id=str(found.uuid),
        patient_ref=found.patient.uuid,
    )
    return _private(response)

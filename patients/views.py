"""Views of the patient register: thin, one access helper, one service each."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from clinic import clinic_settings
from clinic.access import signed_in_user, staff
from clinic.audit import audit_log, audit_read
from clinic.concurrency import AlreadySubmittedError, StaleEditError, differs, field_text
from clinic.downloads import stored_file_response
from clinic.forms import submits
from clinic.models import AuditAction, AuditEvent
from clinic.roles import Role
from patients.contact_changes import contact_change_sentences
from patients.forms import (
    ConsultationForm,
    MedicalHistoryForm,
    PatientForm,
    PatientRegistrationForm,
    PatientSearchForm,
    PhotoCompareForm,
    PhotoForm,
)
from patients.images import MAX_UPLOAD_BYTES
from patients.models import HISTORY_QUESTIONS, Consultation, Patient
from patients.readiness import patient_page_readiness
from patients.screening import Severity, screen
from patients.search_audit import patient_search_audit
from patients.selectors import (
    consultation_newest,
    consultations_since,
    history_changes,
    history_current,
    history_get,
    history_is_valid,
    patient_get_for_user,
    patient_possible_duplicates,
    patient_search,
)
from patients.services import (
    AlreadyRegisteredError,
    AnonymisedRecordError,
    PatientRefusedError,
    PossibleDuplicateError,
    consultation_record,
    medical_history_record,
    patient_create,
    patient_update,
    photo_add,
)

REGISTER_ROLES = (Role.RECEPTIONIST, Role.PRACTITIONER)
READ_ROLES = (Role.RECEPTIONIST, Role.PRACTITIONER, Role.MANAGER)


@staff(*READ_ROLES)
@require_GET
def patient_list(request: HttpRequest) -> HttpResponse:
    """The register's search page; answers htmx requests with the results only."""
    form = PatientSearchForm(request.GET or None)
    query = form.cleaned_data["q"] if form.is_valid() else ""
    results = patient_search(user=signed_in_user(request), query=query) if query else []
    if query:
        # A search shows personal data: record that it happened (not what was
        # typed), once per search rather than per keystroke of the typeahead.
        patient_search_audit(request=request, query=query)
    context = {"form": form, "query": query, "results": results}
    template = "patients/_patient_results.html" if request.htmx else "patients/patient_list.html"  # type: ignore[attr-defined]
    return render(request, template, context)


def _unconfirmed_duplicates(
    request: HttpRequest, form: PatientForm, instance: Patient | None = None
) -> tuple[list[Patient], PatientForm]:
    """Possible duplicates the user has not yet seen, and the form to show them
    with (its next post confirms). An empty list means: go ahead and save.
    Used when editing; registration runs the check inside `patient_create`."""
    data = form.cleaned_data
    duplicates = patient_possible_duplicates(
        user=signed_in_user(request),
        first_name=data["first_name"],
        last_name=data["last_name"],
        date_of_birth=data.get("date_of_birth"),
        email=data.get("email", ""),
        phone=data.get("phone") or "",
        exclude=instance,
    )
    if not duplicates or data["confirm_not_duplicate"]:
        return [], form
    confirming = request.POST.copy()
    confirming["confirm_not_duplicate"] = "on"
    shown = PatientForm(confirming, instance=instance)
    shown.is_valid()
    return duplicates, shown


def _registration_form_again(request: HttpRequest, **changes: str) -> PatientRegistrationForm:
    """The posted registration form, shown again with `changes` to its hidden fields."""
    data = request.POST.copy()
    for name, value in changes.items():
        data[name] = value
    form = PatientRegistrationForm(data)
    form.is_valid()
    return form


@staff(*REGISTER_ROLES)
@require_http_methods(["GET", "POST"])
def patient_create_view(request: HttpRequest) -> HttpResponse:
    """Register a patient. Possible duplicates are shown, with links, and the
    form then confirms "a different person"; the same form sent twice leads
    to the first record."""
    form = PatientRegistrationForm(request.POST or None)
    duplicates: list[Patient] = []
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            patient = patient_create(
                created_by=signed_in_user(request),
                registration_token=form.cleaned_data["registration_token"],
                confirmed_different_person=form.cleaned_data["confirm_not_duplicate"],
                **form.service_fields(),
            )
        except PossibleDuplicateError as refusal:
            duplicates = refusal.duplicates
            form = _registration_form_again(request, confirm_not_duplicate="on")
        except AlreadyRegisteredError as refusal:
            messages.info(request, refusal.message)
            return HttpResponseRedirect(refusal.patient.get_absolute_url())
        except PatientRefusedError as refusal:
            # The form's token belongs to another record: a fresh one lets it be sent again.
            form = _registration_form_again(request, registration_token=str(uuid.uuid4()))
            form.add_error(refusal.field, refusal.message)
            status = 409
        else:
            messages.success(request, _("%(name)s is registered.") % {"name": patient.full_name})
            return HttpResponseRedirect(patient.get_absolute_url())
    if form.errors and status == 200:
        status = 400
    return render(
        request,
        "patients/patient_form.html",
        {"form": form, "duplicates": duplicates, "creating": True},
        status=status,
    )


@staff(*READ_ROLES)
@require_GET
def patient_detail(request: HttpRequest, patient: uuid.UUID) -> HttpResponse:
    record = patient_get_for_user(user=signed_in_user(request), patient_uuid=patient)
    audit_read(request, record, patient_ref=record.uuid)
    user = signed_in_user(request)
    return render(
        request,
        "patients/patient_detail.html",
        {
            "patient": record,
            "can_edit": user.has_any_role(REGISTER_ROLES),
            "is_practitioner": Role.PRACTITIONER in user.roles,
            "can_see_access": user.has_any_role((Role.PRACTITIONER, Role.MANAGER)),
            # The gates' answer for the bookings to come (patients.readiness).
            "readiness": patient_page_readiness(patient=record, at=timezone.now()),
        },
    )


@submits(PatientForm)
@staff(*REGISTER_ROLES)
@require_http_methods(["GET", "POST"])
def patient_edit(request: HttpRequest, patient: uuid.UUID) -> HttpResponse:
    """Change the contact details. A save opened before someone else's is
    refused (409) with what they changed, and what was typed is shown again."""
    record = patient_get_for_user(user=signed_in_user(request), patient_uuid=patient)
    if record.is_anonymised and request.method == "GET":
        messages.error(request, AnonymisedRecordError().message)
        return HttpResponseRedirect(record.get_absolute_url())
    # As saved: validating the form writes what was typed onto `record`.
    before = {"email": record.email, "phone": record.phone}
    form = PatientForm(request.POST or None, instance=record)
    duplicates: list[Patient] = []
    status = 200
    if request.method == "POST" and form.is_valid():
        duplicates, form = _unconfirmed_duplicates(request, form, instance=record)
        if not duplicates:
            try:
                saved = patient_update(
                    patient=record,
                    updated_by=signed_in_user(request),
                    expected_version=form.cleaned_data["version"],
                    **form.typed(form.service_fields()),
                )
            except StaleEditError as refusal:
                status = form.show_stale(refusal)
            except AnonymisedRecordError as refusal:
                form.add_error(None, refusal.message)
                status = 409
            else:
                # Say what a new email or number set off (patients.contact_changes).
                changed = {k: v for k, v in before.items() if differs(v, getattr(saved, k))}
                told = contact_change_sentences(patient=saved, previous=changed)
                messages.success(request, " ".join([_("Contact details saved."), *told]))
                return HttpResponseRedirect(record.get_absolute_url())
    else:
        audit_read(request, record, patient_ref=record.uuid)
    if form.errors and status == 200:
        status = 400
    return render(
        request,
        "patients/patient_form.html",
        {"form": form, "duplicates": duplicates, "patient": record, "creating": False},
        status=status,
    )


# --- Medical history (practitioners only) -----------------------------------------------


@staff(Role.PRACTITIONER)
@require_GET
def history_detail(request: HttpRequest, patient: uuid.UUID) -> HttpResponse:
    """The current history, its screening, and what changed since the previous one."""
    record = patient_get_for_user(user=signed_in_user(request), patient_uuid=patient)
    histories = list(
        record.histories.select_related("signed_by").order_by("-signed_at", "-id")[:20]
    )
    current = histories[0] if histories else None
    previous = histories[1] if len(histories) > 1 else None
    today = timezone.localdate()
    findings = screen(current, today=today) if current else []
    if current is not None:
        audit_read(request, current, patient_ref=record.uuid)
    else:
        audit_read(request, record, patient_ref=record.uuid)
    return render(
        request,
        "patients/history_detail.html",
        {
            "patient": record,
            "history": current,
            "history_valid": history_is_valid(current, today=today),
            "valid_days": clinic_settings.current().medical_history_valid_days,
            "absolutes": [f for f in findings if f.severity == Severity.ABSOLUTE],
            "cautions": [f for f in findings if f.severity == Severity.CAUTION],
            "changes": history_changes(current, previous) if current and previous else [],
            "previous": previous,
            "older": histories[1:],
            "groups": [
                (label, [(q, getattr(current, name)) for name, q in qs])
                for label, qs in HISTORY_QUESTIONS
            ]
            if current
            else [],
        },
    )


@staff(Role.PRACTITIONER)
@require_http_methods(["GET", "POST"])
def history_new(request: HttpRequest, patient: uuid.UUID) -> HttpResponse:
    """Take a new medical history, starting from the current answers. Signed
    from a page opened before a colleague signed another, it is refused (409)
    with the answers they changed; what was typed is kept on the page."""
    record = patient_get_for_user(user=signed_in_user(request), patient_uuid=patient)
    previous = history_current(patient=record)
    form = MedicalHistoryForm(request.POST or None, previous=previous)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            medical_history_record(
                patient=record,
                signed_by=signed_in_user(request),
                answers=form.answers(),
                based_on=form.based_on(),
                submission_token=form.cleaned_data["submission_token"],
            )
        except AlreadySubmittedError as repeated:
            messages.info(request, repeated.message)
        except StaleEditError as refusal:
            # Signed again only on purpose: from the history signed now, box unticked.
            previous = history_current(patient=record)
            status = form.show_stale_history(
                refusal,
                base=history_get(patient=record, based_on=form.based_on())
                if refusal.is_stale
                else None,
                current=previous,
            )
        else:
            messages.success(request, _("Medical history signed and saved."))
        if status == 200:
            return HttpResponseRedirect(
                reverse("patients:history", kwargs={"patient": record.uuid})
            )
    if request.method == "POST" and form.errors and form.stale is None:
        messages.error(
            request, _("Some answers are missing or need checking: see the marked questions.")
        )
    if form.errors and status == 200:
        status = 400
    if previous is not None:
        # The form shows the previous answers: a read of that history.
        audit_read(request, previous, patient_ref=record.uuid)
    return render(
        request,
        "patients/history_form.html",
        {"form": form, "patient": record, "previous": previous},
        status=status,
    )


@staff(Role.PRACTITIONER, Role.MANAGER)
@require_GET
def access_history(request: HttpRequest, patient: uuid.UUID) -> HttpResponse:
    """Who opened or changed this patient's record, and when. Practitioners also
    see what was opened; managers see only who and when."""
    user = signed_in_user(request)
    record = patient_get_for_user(user=user, patient_uuid=patient)
    # Recorded first: the page is counted and read after it, so both agree.
    audit_read(request, record, patient_ref=record.uuid)
    # With the records merged into this one: who opened those is part of its history.
    merged = Patient.objects.filter(merged_into=record).values("uuid")
    seen = Q(patient_ref=record.uuid) | Q(patient_ref__in=merged)
    page = Paginator(AuditEvent.objects.filter(seen).order_by("-at", "-id"), 50).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "patients/access_history.html",
        {"patient": record, "page": page, "show_what": Role.PRACTITIONER in user.roles},
    )


# --- Consultations (practitioners only) ------------------------------------------------------


@staff(Role.PRACTITIONER)
@require_GET
def consultation_list(request: HttpRequest, patient: uuid.UUID) -> HttpResponse:
    record = patient_get_for_user(user=signed_in_user(request), patient_uuid=patient)
    consultations = list(record.consultations.select_related("recorded_by")[:50])
    audit_log(
        actor=request.user,
        action=AuditAction.VIEW,
        object_type="patients.consultation",
        object_id="list",
        patient_ref=record.uuid,
    )
    return render(
        request,
        "patients/consultation_list.html",
        {"patient": record, "consultations": consultations},
    )


@staff(Role.PRACTITIONER)
@require_http_methods(["GET", "POST"])
def consultation_new(request: HttpRequest, patient: uuid.UUID) -> HttpResponse:
    """Record a consultation. Sent from a page opened before a colleague
    recorded one, it is refused once (409) with what theirs says; what was
    typed is kept, and sending it again records it beside theirs."""
    record = patient_get_for_user(user=signed_in_user(request), patient_uuid=patient)
    form = ConsultationForm(request.POST or None, newest=consultation_newest(patient=record))
    status = 200
    theirs: list[Consultation] = []
    if request.method == "POST" and form.is_valid():
        try:
            consultation_record(
                patient=record,
                recorded_by=signed_in_user(request),
                based_on=form.based_on(),
                submission_token=form.cleaned_data["submission_token"],
                **form.service_fields(),
            )
        except AlreadySubmittedError as repeated:
            messages.info(request, repeated.message)
        except StaleEditError as refusal:
            if refusal.is_stale:
                # A new consultation is a row of its own, not a change of theirs:
                # theirs is shown for reference, and the same form sent again is
                # recorded beside it.
                theirs = consultations_since(patient=record, based_on=form.based_on())
                seen = request.POST.copy()
                seen["based_on"] = str(theirs[0].uuid) if theirs else ""
                form = ConsultationForm(seen)
                form.is_valid()
                form.stale = refusal
                status = 409
            else:
                status = form.show_stale(refusal)
        else:
            messages.success(request, _("Consultation recorded."))
        if status == 200:
            return HttpResponseRedirect(
                reverse("patients:consultations", kwargs={"patient": record.uuid})
            )
    if form.errors and status == 200:
        status = 400
    for shown in theirs:
        audit_read(request, shown, patient_ref=record.uuid)
    return render(
        request,
        "patients/consultation_form.html",
        {
            "form": form,
            "patient": record,
            "theirs": [(c, _consultation_lines(c)) for c in theirs],
        },
        status=status,
    )


def _consultation_lines(consultation: Consultation) -> list[tuple[str, str]]:
    """A consultation as read: (label, value) for each field the form asks,
    choices by their labels, yes/no; an empty field left out."""
    lines = [field_text(consultation, name) for name in ConsultationForm.Meta.fields]
    return [(label, value) for label, value in lines if value]


# --- Photos (practitioners only) ------------------------------------------------------------


@submits(PhotoForm)
@staff(Role.PRACTITIONER)
@require_http_methods(["GET", "POST"])
def photo_list(request: HttpRequest, patient: uuid.UUID) -> HttpResponse:
    record = patient_get_for_user(user=signed_in_user(request), patient_uuid=patient)
    status = 200
    upload_error = ""
    form = PhotoForm(initial={"taken_on": timezone.localdate()})
    if request.method == "POST":
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > MAX_UPLOAD_BYTES + 1024 * 1024:
            # Refuse before reading the body: a huge upload is never spooled to disk.
            upload_error = _("The photo is larger than 15 MB. Send a smaller one.")
            status = 413
        else:
            form = PhotoForm(request.POST, request.FILES)
            if form.is_valid():
                try:
                    photo_add(
                        patient=record,
                        uploaded_by=signed_in_user(request),
                        image=form.cleaned_data["image"],
                        submission_token=form.cleaned_data["submission_token"],
                        **{k: form.cleaned_data[k] for k in ("area", "kind", "taken_on")},
                    )
                except AlreadySubmittedError as repeated:
                    messages.info(request, repeated.message)
                    return HttpResponseRedirect(
                        reverse("patients:photos", kwargs={"patient": record.uuid})
                    )
                messages.success(request, _("Photo added."))
                return HttpResponseRedirect(
                    reverse("patients:photos", kwargs={"patient": record.uuid})
                )
            status = 400
    photos = list(record.photos.all())
    audit_log(
        actor=request.user,
        action=AuditAction.VIEW,
        object_type="patients.photo",
        object_id="list",
        patient_ref=record.uuid,
    )
    by_area: dict[str, list] = {}
    for photo in photos:
        by_area.setdefault(photo.get_area_display(), []).append(photo)
    return render(
        request,
        "patients/photo_list.html",
        {"patient": record, "form": form, "by_area": by_area, "upload_error": upload_error},
        status=status,
    )


@staff(Role.PRACTITIONER)
@require_GET
def photo_file(request: HttpRequest, patient: uuid.UUID, photo: uuid.UUID) -> FileResponse:
    """The image itself, only for someone who may see this patient's record."""
    record = patient_get_for_user(user=signed_in_user(request), patient_uuid=patient)
    found = get_object_or_404(record.photos, uuid=photo)
    response = stored_file_response(
        found.image, content_type="image/jpeg", filename=f"{found.uuid}.jpg"
    )
    audit_read(request, found, patient_ref=record.uuid)
    return response


@staff(Role.PRACTITIONER)
@require_GET
def photo_compare(request: HttpRequest, patient: uuid.UUID) -> HttpResponse:
    """Two photos of the same area side by side (before and after, say)."""
    record = patient_get_for_user(user=signed_in_user(request), patient_uuid=patient)
    form = PhotoCompareForm(request.GET)
    pair = []
    error = ""
    if form.is_valid():
        found = {
            p.uuid: p
            for p in record.photos.filter(uuid__in=[form.cleaned_data["a"], form.cleaned_data["b"]])
        }
        pair = [found[k] for k in (form.cleaned_data["a"], form.cleaned_data["b"]) if k in found]
        if len(pair) != 2:
            error = _("Choose two photos of this patient.")
        elif pair[0].area != pair[1].area:
            error = _("Choose two photos of the same area.")
    else:
        error = _("Choose two photos to compare.")
    if error:
        messages.error(request, error)
        return HttpResponseRedirect(reverse("patients:photos", kwargs={"patient": record.uuid}))
    for photo in pair:
        audit_read(request, photo, patient_ref=record.uuid)
    return render(request, "patients/photo_compare.html", {"patient": record, "pair": pair})

"""The manager's pages for importing a patient list from another system:
upload, match the columns, check each row's problems (fix or leave out),
confirm, and follow the import's progress. patients.imports does the work.

Any manager may look at an import; only its uploader changes, confirms or
discards it (another manager's post is refused with a 403)."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods

from clinic.access import refused_as, signed_in_user, staff
from clinic.models import User
from clinic.refusals import RefusalKind, refusal_status
from clinic.roles import Role
from patients.import_forms import (
    ImportActionForm,
    ImportMappingForm,
    ImportRowForm,
    ImportUploadForm,
)
from patients.imports import (
    IMPORT_FIELDS,
    IMPORT_MAX_BYTES,
    IMPORT_MAX_CELL,
    IMPORT_MAX_ROWS,
    ImportRefusedError,
    import_progress,
    patient_import_cancel,
    patient_import_confirm,
    patient_import_leave_out_problems,
    patient_import_map,
    patient_import_row_fix,
    patient_import_row_leave_out,
    patient_import_stalled,
    patient_import_start_again,
    patient_import_upload,
    problem_rows,
    run_lost_before,
    sample_rows,
)
from patients.models import PatientImport, PatientImportStatus

IMPORT_TASK = gettext_lazy("Importing patients from another system is done by a manager.")
RECENT_IMPORTS = 10


def _job_for(user: User, job_uuid: uuid.UUID) -> PatientImport:
    """The import any manager may look at; 404 when there is none."""
    job = PatientImport.objects.select_related("created_by").filter(uuid=job_uuid).first()
    if job is None:
        raise Http404
    return job


def _owner_check(user: User, job: PatientImport) -> None:
    """Only the manager who uploaded an import changes, confirms or discards
    it: a post from anyone else is refused (403), whatever it carries."""
    if job.created_by_id != user.pk:
        raise ImportRefusedError(
            _("Only %(name)s, who uploaded this file, can change, import or discard it.")
            % {"name": job.created_by.get_full_name() or job.created_by.get_username()},
            code="import_not_yours",
            kind=RefusalKind.FORBIDDEN,
        )


def _form_errors(form: ImportActionForm) -> str:
    return " ".join(str(message) for errors in form.errors.values() for message in errors)


@staff(Role.MANAGER)
@refused_as(IMPORT_TASK)
@require_http_methods(["GET", "POST"])
def import_list(request: HttpRequest) -> HttpResponse:
    """Upload a patient list; the manager's recent imports."""
    user = signed_in_user(request)
    status = 200
    earlier = None
    form = ImportUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST":
        if form.is_valid():
            upload = form.cleaned_data["file"]
            if upload.size > IMPORT_MAX_BYTES:
                form.add_error(
                    "file",
                    _("The file is larger than %(mb)s MB: split the list into smaller files.")
                    % {"mb": IMPORT_MAX_BYTES // (1024 * 1024)},
                )
                status = 400
            else:
                try:
                    job = patient_import_upload(
                        created_by=user, data=upload.read(), file_name=upload.name or ""
                    )
                except ImportRefusedError as refusal:
                    form.add_error("file", refusal.message)
                    status = refusal_status(refusal)
                    found = getattr(refusal, "job", None)
                    earlier = found
                else:
                    return HttpResponseRedirect(reverse("patients:import_columns", args=[job.uuid]))
        else:
            status = 400
    jobs = (
        PatientImport.objects.exclude(status=PatientImportStatus.CANCELLED)
        .select_related("created_by")
        .only(
            "uuid", "file_name", "status", "row_count", "imported_count", "created_at",
            "started_at", "created_by__username", "created_by__first_name", "created_by__last_name",
        )[:RECENT_IMPORTS]
    )  # fmt: skip
    return render(
        request,
        "patients/import_list.html",
        {
            "form": form,
            "jobs": jobs,
            "earlier": earlier,
            # An import "importing" since before this lost its worker.
            "lost_before": run_lost_before(),
            "max_rows": f"{IMPORT_MAX_ROWS:,}",
            "max_mb": IMPORT_MAX_BYTES // (1024 * 1024),
        },
        status=status,
    )


@staff(Role.MANAGER)
@refused_as(IMPORT_TASK)
@require_http_methods(["GET", "POST"])
def import_columns(request: HttpRequest, job: uuid.UUID) -> HttpResponse:
    """Match the file's columns to the register's fields (guessed from the headers)."""
    user = signed_in_user(request)
    found = _job_for(user, job)
    if not found.can_change:
        return HttpResponseRedirect(found.get_absolute_url())
    samples = sample_rows(job=found)
    initial = {"version": found.version, **found.mapping}
    form = ImportMappingForm(
        request.POST or None, initial=initial, headers=found.headers, samples=samples
    )
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                _owner_check(user, found)
                patient_import_map(
                    job=found,
                    user=user,
                    mapping=form.mapping(),
                    expected_version=form.cleaned_data["version"],
                )
            except ImportRefusedError as refusal:
                form.add_error(
                    refusal.field if refusal.field in form.fields else None, refusal.message
                )
                status = refusal_status(refusal)
            else:
                return HttpResponseRedirect(found.get_absolute_url())
        else:
            status = 400
    return render(
        request,
        "patients/import_columns.html",
        {"job": found, "form": form, "samples": samples, "max_cell": f"{IMPORT_MAX_CELL:,}"},
        status=status,
    )


def _detail(request: HttpRequest, found: PatientImport, status: int = 200) -> HttpResponse:
    try:
        page = int(request.GET.get("page", "1"))
    except ValueError:
        page = 1
    rows, pages = problem_rows(job=found, page=page)
    labels = dict(IMPORT_FIELDS)
    dropped = []
    mapping = {k: int(v) for k, v in found.mapping.items()}
    # The rows are cleared once the import is done or discarded.
    for position in found.dropped[:50] if found.rows else []:
        cells = found.rows[position]
        names = [cells[mapping[n]] for n in ("first_name", "last_name") if n in mapping]
        dropped.append({"position": position, "line": position + 2, "name": " ".join(names)})
    ready = found.row_count - len(found.dropped) - len(found.problems)
    return render(
        request,
        "patients/import_detail.html",
        {
            "job": found,
            "rows": rows,
            "page": min(max(page, 1), pages),
            "pages": pages,
            "dropped": dropped,
            "ready": max(ready, 0),
            "progress": import_progress(job=found),
            "stalled": patient_import_stalled(job=found),
            "to_import": found.row_count - len(found.dropped),
            "mapped": [str(labels[n]) for n in labels if n in found.mapping],
        },
        status=status,
    )


@staff(Role.MANAGER)
@refused_as(IMPORT_TASK)
@require_http_methods(["GET", "POST"])
def import_detail(request: HttpRequest, job: uuid.UUID) -> HttpResponse:
    """The import: its rows' problems before it runs (fix, leave out, take
    back, import or discard), its progress while it runs, its result after."""
    user = signed_in_user(request)
    found = _job_for(user, job)
    if request.method == "GET":
        if found.status == PatientImportStatus.UPLOADED:
            return HttpResponseRedirect(reverse("patients:import_columns", args=[found.uuid]))
        return _detail(request, found)
    form = ImportActionForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return _detail(request, found, status=400)
    data = form.cleaned_data
    action = data["action"]
    try:
        _owner_check(user, found)
        if action == "confirm":
            patient_import_confirm(job=found, user=user, expected_version=data["version"])
            messages.success(request, _("The import has started."))
        elif action == "cancel":
            patient_import_cancel(job=found, user=user, expected_version=data["version"])
            messages.success(request, _("The import was discarded: nothing was imported."))
            return HttpResponseRedirect(reverse("patients:import_list"))
        elif action == "leave_out_problems":
            count = len(found.problems)
            patient_import_leave_out_problems(
                job=found, user=user, expected_version=data["version"]
            )
            messages.success(
                request,
                _("%(count)s rows with problems are left out of the import.") % {"count": count},
            )
        elif action == "start_again":
            if patient_import_start_again(job=found, user=user):
                messages.success(request, _("The import was asked to start again."))
            else:
                messages.warning(
                    request,
                    _("The background worker cannot be reached just now: try again in a minute."),
                )
        else:
            patient_import_row_leave_out(
                job=found,
                user=user,
                row=data["row"],
                leave_out=action == "leave_out",
                expected_version=data["version"],
            )
            text = (
                _("Line %(line)s is left out of the import.")
                if action == "leave_out"
                else _("Line %(line)s is back in the import.")
            )
            messages.success(request, text % {"line": data["row"] + 2})
    except ImportRefusedError as refusal:
        messages.error(request, refusal.message)
        found.refresh_from_db()
        return _detail(request, found, status=refusal_status(refusal))
    return HttpResponseRedirect(found.get_absolute_url())


@staff(Role.MANAGER)
@refused_as(IMPORT_TASK)
@require_http_methods(["GET", "POST"])
def import_row(request: HttpRequest, job: uuid.UUID, row: int) -> HttpResponse:
    """Correct one row's values before importing."""
    user = signed_in_user(request)
    found = _job_for(user, job)
    if not 0 <= row < len(found.rows):
        raise Http404
    if not found.can_change:
        return HttpResponseRedirect(found.get_absolute_url())
    labels = dict(IMPORT_FIELDS)
    fields = [(name, str(labels[name])) for name in labels if name in found.mapping]
    cells = found.rows[row]
    initial = {"version": found.version}
    initial.update({name: cells[int(found.mapping[name])] for name, _label in fields})
    form = ImportRowForm(request.POST or None, initial=initial, fields=fields)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                _owner_check(user, found)
                patient_import_row_fix(
                    job=found,
                    user=user,
                    row=row,
                    values=form.values(),
                    expected_version=form.cleaned_data["version"],
                )
            except ImportRefusedError as refusal:
                form.add_error(
                    refusal.field if refusal.field in form.fields else None, refusal.message
                )
                status = refusal_status(refusal)
            else:
                found.refresh_from_db()
                left = found.problems.get(str(row))
                if left:
                    messages.warning(
                        request,
                        _("Line %(line)s is saved but still has a problem: %(problem)s")
                        % {"line": row + 2, "problem": " ".join(left)},
                    )
                else:
                    messages.success(request, _("Line %(line)s is corrected.") % {"line": row + 2})
                return HttpResponseRedirect(found.get_absolute_url())
        else:
            status = 400
    return render(
        request,
        "patients/import_row.html",
        {
            "job": found,
            "form": form,
            "line": row + 2,
            "problems": found.problems.get(str(row), []),
        },
        status=status,
    )


@staff(Role.MANAGER)
@refused_as(IMPORT_TASK)
@require_GET
def import_progress_view(request: HttpRequest, job: uuid.UUID) -> HttpResponse:
    """The progress of a running import, polled by the import's page; once it
    has finished, the page is reloaded to show the result."""
    user = signed_in_user(request)
    found = _job_for(user, job)
    response = render(
        request,
        "patients/_import_progress.html",
        {
            "job": found,
            "progress": import_progress(job=found),
            "stalled": patient_import_stalled(job=found),
        },
    )
    if not found.is_running and request.headers.get("HX-Request"):
        response["HX-Refresh"] = "true"
    return response

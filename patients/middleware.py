"""Old addresses of a merged patient record lead to the record that stays.

Every page that takes a patient reads it through `patient_get_for_user`,
which raises `PatientMergedError` for a record merged into another (once it
has checked that the user may see the survivor). Here, and only here, that
becomes an answer: a page read (GET, HEAD) is redirected to the same address
with the survivor's uuid; a form sent to the old address (made before the
merge) is refused with a 409 that says where the record went and shows,
labelled, what the form carried, so nothing typed is lost: Back may land on
the record that stays, whose form is empty.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse

from clinic.forms import typed_values
from patients.selectors import PatientMergedError

SAFE_METHODS = ("GET", "HEAD")


class MergedPatientMiddleware:
    """Turn `PatientMergedError` into a redirect (reads) or a 409 (writes)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, PatientMergedError):
            return None
        old, new = str(exception.merged_uuid), str(exception.survivor_uuid)
        address = request.get_full_path()
        if old not in address:
            return None  # the record came from somewhere else: a plain 404
        moved_to = address.replace(old, new)
        if request.method in SAFE_METHODS:
            return HttpResponseRedirect(moved_to)
        match = request.resolver_match
        forms = getattr(match.func, "submitted_forms", ()) if match is not None else ()
        return render(
            request,
            "patients/patient_merged.html",
            {
                "moved_to": moved_to,
                "survivor_page": reverse("patients:detail", kwargs={"patient": new}),
                "typed": typed_values(request.POST, forms),
            },
            status=409,
        )

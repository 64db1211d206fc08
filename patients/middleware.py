"""Old addresses of a merged patient record lead to the record that stays.

Every page that takes a patient reads it through `patient_get_for_user`,
which raises `PatientMergedError` for a record merged into another (once it
has checked that the user may see the survivor). Here, and only here, that
becomes an answer: a page read (GET, HEAD) is redirected to the same address
with the survivor's uuid; a form sent to the old address (made before the
merge) is refused with a 409 that says where the record went, so nothing is
saved against the merged record and the browser's Back keeps what was typed.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse

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
        return render(
            request,
            "patients/patient_merged.html",
            {
                "moved_to": moved_to,
                "survivor_page": reverse("patients:detail", kwargs={"patient": new}),
            },
            status=409,
        )

"""Old addresses of a merged patient record lead to the record that stays.

Every page that takes a patient reads it through `patient_get_for_user`,
which raises `PatientMergedError` for a record merged into another (once it
has checked that the user may see the survivor). Here, and only here, that
becomes an answer: a page read (GET, HEAD) is redirected to the same address
with the survivor's uuid, the page then saying once that the record was
merged into this one (an old link or bookmark must not move the reader to
another record without a word); a form sent to the old address (made before
the merge) is refused with a 409 that names the record that stays and shows,
labelled and readable, what the form carried that the record that stays
does not hold (only what was typed: a value the form merely showed may be
the very misspelling the merge corrected), so nothing typed is lost: Back
may land on the record that stays, whose form is empty.
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _

from clinic import dates
from clinic.forms import typed_values
from patients.models import Patient
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
        survivor = exception.survivor or Patient.objects.filter(uuid=new).first()
        if request.method in SAFE_METHODS:
            if survivor is not None and request.method == "GET" and _is_page(request):
                messages.info(request, _merged_sentence(survivor))
            return HttpResponseRedirect(moved_to)
        match = request.resolver_match
        forms = getattr(match.func, "submitted_forms", ()) if match is not None else ()
        return render(
            request,
            "patients/patient_merged.html",
            {
                "moved_to": moved_to,
                "survivor": survivor,
                "survivor_page": reverse("patients:detail", kwargs={"patient": new}),
                "typed": typed_values(request.POST, forms, record=survivor),
            },
            status=409,
        )


def _is_page(request: HttpRequest) -> bool:
    """Whether the browser is opening a page (not loading a picture, a file
    or a part of a page), where a message is read."""
    if request.headers.get("HX-Request"):
        return False
    destination = request.headers.get("Sec-Fetch-Dest")
    return destination in (None, "", "document")


def _merged_sentence(survivor: Patient) -> str:
    return _(
        "This record was merged into %(name)s's record (born %(born)s): you are now on "
        "the record that stays."
    ) % {"name": survivor.full_name, "born": dates.birth_date(survivor.date_of_birth)}

"""Reception's view of reminders: the delivery log (per patient, per booking)
and the follow-up list. Read-only; no clinical detail."""

from __future__ import annotations

import uuid

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from clinic.access import signed_in_user, staff
from clinic.audit import audit_read, audit_read_patients
from clinic.roles import Role
from patients.selectors import patient_get_for_user
from treatments.selectors.booking import booking_get_for_user
from treatments.selectors.reminders import (
    courses_to_book,
    reminder_followups,
    reminder_log_for_booking,
    reminder_log_for_patient,
)
from treatments.services.reminders import patient_no_reminder_reason

READ_ROLES = (Role.RECEPTIONIST, Role.PRACTITIONER, Role.MANAGER)


@staff(*READ_ROLES)
@require_GET
def reminder_log(
    request: HttpRequest, patient: uuid.UUID | None = None, booking: uuid.UUID | None = None
) -> HttpResponse:
    user = signed_in_user(request)
    if booking is not None:
        record = booking_get_for_user(user=user, booking_uuid=booking)
        person = record.patient
        rows = reminder_log_for_booking(booking=record)
        audit_read(request, record, patient_ref=person.uuid)
    else:
        assert patient is not None
        record = None
        person = patient_get_for_user(user=user, patient_uuid=patient)
        rows = reminder_log_for_patient(patient=person)
        audit_read(request, person, patient_ref=person.uuid)
    return render(
        request,
        "treatments/reminder_log.html",
        {
            "patient": person,
            "booking": record,
            "reminders": rows,
            "no_reminders_reason": patient_no_reminder_reason(person),
        },
    )


def _page_number(request: HttpRequest, name: str) -> int | None:
    """The page asked for in `name` (1 when absent), or None when it is not
    a whole number. Out of range is not an error: the selector shows the
    nearest page that exists."""
    raw = request.GET.get(name, "").strip()
    if not raw:
        return 1
    if len(raw) > 9 or not raw.lstrip("-").isdigit():
        return None
    return int(raw)


@staff(*READ_ROLES)
@require_GET
def reminder_followups_view(request: HttpRequest) -> HttpResponse:
    failed_page = _page_number(request, "failed_page")
    courses_page = _page_number(request, "courses_page")
    if failed_page is None or courses_page is None:
        return HttpResponseBadRequest(
            _("A page of the follow-up list is a whole number, such as 2."),
            content_type="text/plain; charset=utf-8",
        )
    failed = reminder_followups(page=failed_page)
    to_book = courses_to_book(page=courses_page)
    patients = [row.patient for row in failed.rows] + [row.course.patient for row in to_book.rows]
    if patients:
        audit_read_patients(
            request,
            None,
            patient_refs=list(dict.fromkeys(p.uuid for p in patients)),
            object_type="treatments.followups",
        )
    return render(
        request,
        "treatments/reminder_followups.html",
        {"failed": failed, "courses_to_book": to_book},
    )

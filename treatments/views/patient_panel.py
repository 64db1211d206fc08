"""The parts of a patient's page served by treatments and loaded into it by
htmx, so the patient register needs to know nothing of bookings:

- the treatment panel: upcoming bookings with what stands in the way (in
  reception's words), those cancelled ahead of their time marked so,
  courses, links to book and to the reminder log (the
  summary at the top of the page judges the same bookings the same way:
  `treatments.selectors.patient_readiness`);
- the timeline: the patient's story up to now, newest first, a page at a time
  (`treatments.selectors.timeline`), clinical for practitioners, bookings
  alone for every other role.
"""

from __future__ import annotations

import uuid

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from clinic.access import signed_in_user, staff
from clinic.audit import audit_log
from clinic.models import AuditAction
from clinic.refusals import refusal_status
from clinic.roles import CLINICAL_DOCUMENT_ROLES, Role
from patients.contact_changes import email_hold
from patients.selectors import patient_get_for_user
from treatments.forms.portal import PortalInviteForm
from treatments.models import PortalAccount, TreatmentCourse
from treatments.selectors.patient_readiness import (
    UPCOMING_SHOWN,
    cancelled_to_come,
    reception_notes,
    upcoming_bookings,
)
from treatments.selectors.readiness import booking_readiness
from treatments.selectors.timeline import TimelineCursorError, cursor_parse, patient_timeline


@staff(Role.RECEPTIONIST, Role.PRACTITIONER, Role.MANAGER)
@require_GET
def patient_treatment_panel(request: HttpRequest, patient: uuid.UUID) -> HttpResponse:
    user = signed_in_user(request)
    record = patient_get_for_user(user=user, patient_uuid=patient)
    now = timezone.now()
    # The bookings the page's summary judges too (patients.readiness).
    upcoming = upcoming_bookings(patient=record, now=now)
    flags = booking_readiness(bookings=upcoming, at=now)
    # A session cancelled ahead of its time is listed at that time, marked
    # cancelled and not judged: reception looks for it among those to come
    # when the patient asks about it (the timeline has it once its time passes).
    full = len(upcoming) == UPCOMING_SHOWN
    cancelled = cancelled_to_come(
        patient=record, now=now, until=upcoming[-1].starts_at if full else None
    )
    listed = [(b, reception_notes(flags.get(b.pk, []))) for b in upcoming]
    listed += [(b, []) for b in cancelled]
    listed.sort(key=lambda row: (row[0].starts_at, row[0].pk))
    courses = list(
        TreatmentCourse.objects.filter(patient=record)
        .select_related("protocol")
        .order_by("-created_at")[:10]
    )
    audit_log(
        actor=user,
        action=AuditAction.VIEW,
        object_type="treatments.booking",
        object_id="list",
        patient_ref=record.uuid,
    )
    # Only roles that open the patient's clinical documents invite to the portal.
    can_invite = user.has_any_role(CLINICAL_DOCUMENT_ROLES)
    return render(
        request,
        "treatments/patient_treatment_panel.html",
        {
            "patient": record,
            "upcoming": listed,
            "courses": courses,
            "can_book": user.has_any_role((Role.RECEPTIONIST, Role.PRACTITIONER)),
            "can_invite": can_invite,
            "invite_form": PortalInviteForm(),
            "email_hold": email_hold(patient=record) if can_invite and record.email else None,
            "has_portal": PortalAccount.objects.filter(patient=record).exists(),
        },
    )


@staff(Role.RECEPTIONIST, Role.PRACTITIONER, Role.MANAGER)
@require_GET
def patient_timeline_view(request: HttpRequest, patient: uuid.UUID) -> HttpResponse:
    """The patient's timeline, newest first; `?older=` (the cursor an "Older
    entries" link carries) reads the next page. Practitioners see the
    clinical record; every other role the bookings alone (dates, protocol,
    status). Loaded into the patient's page by htmx (the entries of an older
    page are added below the others); opened directly, a page of its own. A
    damaged cursor is a 400 with a plain sentence."""
    user = signed_in_user(request)
    record = patient_get_for_user(user=user, patient_uuid=patient)
    clinical = Role.PRACTITIONER in user.roles
    token = request.GET.get("older", "")
    htmx = bool(request.htmx)  # type: ignore[attr-defined]
    try:
        before = cursor_parse(token) if token else None
    except TimelineCursorError as refused:
        return render(
            request,
            "treatments/patient_timeline_refused.html",
            {"patient": record, "sentence": refused.message},
            status=refusal_status(refused),
        )
    page = patient_timeline(patient=record, clinical=clinical, now=timezone.now(), before=before)
    audit_log(
        actor=user,
        action=AuditAction.VIEW,
        object_type="treatments.sessionrecord" if clinical else "treatments.booking",
        object_id="timeline",
        patient_ref=record.uuid,
    )
    if htmx and before is not None:
        template = "treatments/patient_timeline_entries.html"
    elif htmx:
        template = "treatments/patient_timeline.html"
    else:
        template = "treatments/patient_timeline_page.html"
    return render(request, template, {"patient": record, "page": page})

"""The treatment panel of a patient's page: upcoming bookings with what stands
in the way (in reception's words), courses, and links to book and to the
reminder log (the summary at the top of the page judges the same bookings the
same way: `treatments.selectors.patient_readiness`). Served here and loaded
into the patient page by htmx, so the patient register needs to know nothing
of bookings."""

from __future__ import annotations

import uuid

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from clinic.access import signed_in_user, staff
from clinic.audit import audit_log
from clinic.models import AuditAction
from clinic.roles import CLINICAL_DOCUMENT_ROLES, Role
from patients.contact_changes import email_hold
from patients.selectors import patient_get_for_user
from treatments.forms.portal import PortalInviteForm
from treatments.models import PortalAccount, TreatmentCourse
from treatments.selectors.patient_readiness import reception_notes, upcoming_bookings
from treatments.selectors.readiness import booking_readiness


@staff(Role.RECEPTIONIST, Role.PRACTITIONER, Role.MANAGER)
@require_GET
def patient_treatment_panel(request: HttpRequest, patient: uuid.UUID) -> HttpResponse:
    user = signed_in_user(request)
    record = patient_get_for_user(user=user, patient_uuid=patient)
    now = timezone.now()
    # The bookings the page's summary judges too (patients.readiness).
    upcoming = upcoming_bookings(patient=record, now=now)
    flags = booking_readiness(bookings=upcoming, at=now)
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
            "upcoming": [(b, reception_notes(flags.get(b.pk, []))) for b in upcoming],
            "courses": courses,
            "can_book": user.has_any_role((Role.RECEPTIONIST, Role.PRACTITIONER)),
            "can_invite": can_invite,
            "invite_form": PortalInviteForm(),
            "email_hold": email_hold(patient=record) if can_invite and record.email else None,
            "has_portal": PortalAccount.objects.filter(patient=record).exists(),
        },
    )

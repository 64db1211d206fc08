"""Reads of aftercare documents (staff) and of the patient portal (a patient's
own bookings and documents, nobody else's)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.http import Http404
from django.utils import timezone

from clinic.models import User
from consent.models import DocumentStatus, SignedConsent
from patients.models import Patient
from patients.selectors import patient_get_for_user
from treatments.models import (
    Booking,
    BookingStatus,
    DownloadLink,
    PatientDocument,
    PortalAccount,
    SessionRecord,
)


def document_get_for_user(
    *, user: User, patient_uuid: uuid.UUID, document_uuid: uuid.UUID
) -> PatientDocument:
    """A patient's document, if this staff member may see the patient; 404 otherwise."""
    patient = patient_get_for_user(user=user, patient_uuid=patient_uuid)
    try:
        return (
            PatientDocument.objects.select_related("session__booking", "patient")
            .filter(patient=patient)
            .get(uuid=document_uuid)
        )
    except PatientDocument.DoesNotExist:
        raise Http404 from None


def document_of_session(*, session: SessionRecord) -> PatientDocument | None:
    """The aftercare document made for `session`, or None before it is queued."""
    return PatientDocument.objects.filter(session=session).first()


def document_live_links(*, document: PatientDocument) -> list[DownloadLink]:
    """Links of the document that still open (emailed, not expired, not revoked)."""
    return list(
        DownloadLink.objects.filter(
            document=document,
            sent_at__isnull=False,
            revoked_at__isnull=True,
            expires_at__gt=timezone.now(),
        ).order_by("-created_at", "-id")
    )


def document_status_context(*, session: SessionRecord) -> dict[str, object]:
    """What templates/treatments/document_status.html needs, for a session page
    (two queries): the session's document, if any, and its live links."""
    document = PatientDocument.objects.select_related("patient").filter(session=session).first()
    return {
        "document": document,
        "live_links": document_live_links(document=document) if document else [],
    }


# --- The portal -------------------------------------------------------------------------


def portal_patient_of(user: User) -> Patient:
    """The patient this portal user is; 404 for anyone else."""
    account = (
        PortalAccount.objects.select_related("patient").filter(user_id=user.pk).first()
        if user.is_authenticated
        else None
    )
    if account is None:
        raise Http404
    return account.patient


@dataclass(frozen=True)
class PortalOverview:
    patient: Patient
    upcoming: list[Booking]
    documents: list[PatientDocument]
    consents: list[SignedConsent]


def portal_overview(*, patient: Patient) -> PortalOverview:
    """What the portal home lists, in a fixed number of queries."""
    upcoming = list(
        Booking.objects.filter(
            patient=patient, status=BookingStatus.BOOKED, starts_at__gt=timezone.now()
        )
        .select_related("protocol", "practitioner", "room")
        .order_by("starts_at", "id")
    )
    documents = list(
        PatientDocument.objects.filter(patient=patient)
        .exclude(file="")
        .exclude(sha256="")
        .select_related("session__booking__protocol")
        .order_by("-session__booking__starts_at", "-id")
    )
    consents = list(
        SignedConsent.objects.filter(patient=patient, pdf__status=DocumentStatus.READY)
        .select_related("version__form", "pdf")
        .order_by("-signed_at", "-id")
    )
    return PortalOverview(
        patient=patient, upcoming=upcoming, documents=documents, consents=consents
    )


def portal_document_get(*, user: User, document_uuid: uuid.UUID) -> PatientDocument:
    """One of this portal user's own aftercare sheets with a file; 404 otherwise."""
    patient = portal_patient_of(user)
    document = (
        PatientDocument.objects.filter(patient=patient, uuid=document_uuid)
        .exclude(file="")
        .exclude(sha256="")
        .first()
    )
    if document is None:
        raise Http404
    return document


def portal_consent_get(*, user: User, signed_uuid: uuid.UUID) -> SignedConsent:
    """One of this portal user's own signed consents with a ready PDF; 404 otherwise."""
    patient = portal_patient_of(user)
    signed = (
        SignedConsent.objects.filter(
            patient=patient, uuid=signed_uuid, pdf__status=DocumentStatus.READY
        )
        .select_related("pdf", "patient")
        .first()
    )
    if signed is None:
        raise Http404
    return signed

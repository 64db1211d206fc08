"""Everything the clinic holds about one patient, read once for the export.

`subject_access_collect` reads every kind of row that belongs to a patient
in a fixed number of queries, whatever the size of the record. `COVERED`
names every model the export reads and `NOT_EXPORTED` every model reaching a
patient that it leaves out, with the reason: the introspection test
(tests/treatments/test_subject_access.py) fails on a model reaching
patients.Patient that is in neither, so a new kind of record cannot be left
out of subject access by accident.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Prefetch, Q

from clinic.models import AuditEvent
from consent.models import SignedConsent
from patients.models import Consultation, ContactChange, MedicalHistory, Patient, Photo
from treatments.models import (
    AllergyTest,
    Booking,
    DownloadLink,
    ErasureRequest,
    PatientAllergy,
    PatientDocument,
    PortalAccount,
    Reminder,
    SubjectAccessExport,
    TreatmentCourse,
)

# Every model reaching a patient that the export reads, and where (the
# attribute of `SubjectAccessData`, or the path from one of its rows).
COVERED: dict[str, str] = {
    "patients.patient": "patient (and merged_records: the records merged into it)",
    "patients.medicalhistory": "histories",
    "patients.consultation": "consultations",
    "patients.photo": "photos",
    "patients.contactchange": "contact_changes",
    "consent.signedconsent": "consents",
    "consent.consentwithdrawal": "consents[].withdrawal",
    "consent.signedconsentpdf": "consents[].pdf",
    "treatments.allergytest": "allergy_tests",
    "treatments.patientallergy": "allergies",
    "treatments.treatmentcourse": "courses",
    "treatments.booking": "bookings",
    "treatments.bookingevent": "bookings[].events",
    "treatments.sessionrecord": "bookings[].record",
    "treatments.cocktailline": "bookings[].record.lines",
    "treatments.injectionpoint": "bookings[].record.lines[].points",
    "treatments.adverseevent": "bookings[].record.adverse_events",
    "treatments.adverseeventfollowup": "bookings[].record.adverse_events[].follow_ups",
    "treatments.sessionamendment": "bookings[].record.amendments",
    "treatments.dayofcheck": "bookings[].record.day_of_check",
    "treatments.cautionacknowledgement": "bookings[].record.caution_acknowledgements",
    "treatments.patientdocument": "documents",
    "treatments.downloadlink": "download_links",
    "treatments.portalaccount": "portal_account",
    "treatments.reminder": "reminders",
    "treatments.subjectaccessexport": "exports",
    "treatments.erasurerequest": "erasure_requests",
}

# Models reaching a patient that the export leaves out, and why.
NOT_EXPORTED: dict[str, str] = {
    "treatments.portallogintoken": (
        "one-time sign-in codes of the portal, stored as hashes: security data with "
        "nothing about the person; the portal account itself is exported"
    ),
    "treatments.linkattempt": (
        "network addresses of whoever tried a download link, kept a day for the rate "
        "limit: not data about the patient, and possibly about someone else"
    ),
}


@dataclass
class SubjectAccessData:
    """One patient's record as read for the export (rows in time order)."""

    patient: Patient
    made_at: datetime
    merged_records: list[Patient]
    histories: list[MedicalHistory]
    consultations: list[Consultation]
    photos: list[Photo]
    contact_changes: list[ContactChange]
    consents: list[SignedConsent]
    allergy_tests: list[AllergyTest]
    allergies: list[PatientAllergy]
    courses: list[TreatmentCourse]
    bookings: list[Booking]
    documents: list[PatientDocument]
    download_links: list[DownloadLink]
    portal_account: PortalAccount | None
    reminders: list[Reminder]
    exports: list[SubjectAccessExport]
    erasure_requests: list[ErasureRequest]
    access_log: list[AuditEvent]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def sessions(self) -> list[Booking]:
        """The bookings with a session record (treatments given)."""
        return [b for b in self.bookings if getattr(b, "session_record", None) is not None]

    @property
    def adverse_events(self) -> list[Any]:
        return [
            e
            for b in self.sessions
            for e in b.session_record.adverse_events.all()  # type: ignore[attr-defined]
        ]


def _record(booking: Booking) -> Any:
    try:
        return booking.record
    except ObjectDoesNotExist:
        return None


def subject_access_collect(*, patient: Patient, made_at: datetime) -> SubjectAccessData:
    """Read everything held about `patient` (a record that is not merged away)
    for a subject-access export made at `made_at` (aware, UTC).

    The access log is every audit event naming the patient or a record
    merged into it, oldest first. Runs a fixed number of queries (about 40)
    whatever the size of the record. Raises nothing of its own."""
    merged = list(Patient.objects.filter(merged_into=patient).order_by("merged_at", "id"))
    refs = [patient.uuid, *(m.uuid for m in merged)]
    who = ("recorded_by",)
    bookings = list(
        patient.bookings.select_related(
            "practitioner",
            "room",
            "protocol",
            "course",
            "record",
            "record__completed_by",
            "record__day_of_check",
            "record__day_of_check__asked_by",
        )
        .prefetch_related(
            Prefetch("events", queryset=_events_queryset()),
            "record__lines__batch__product",
            "record__lines__points",
            "record__adverse_events__recorded_by",
            "record__adverse_events__follow_ups__recorded_by",
            "record__amendments__by",
            "record__caution_acknowledgements__acknowledged_by",
        )
        .order_by("starts_at", "id")
    )
    for booking in bookings:
        booking.session_record = _record(booking)  # type: ignore[attr-defined]
    try:
        portal_account: PortalAccount | None = PortalAccount.objects.select_related("user").get(
            patient=patient
        )
    except PortalAccount.DoesNotExist:
        portal_account = None
    return SubjectAccessData(
        patient=patient,
        made_at=made_at,
        merged_records=merged,
        histories=list(patient.histories.select_related("signed_by").order_by("signed_at", "id")),
        consultations=list(
            patient.consultations.select_related(*who).order_by("recorded_at", "id")
        ),
        photos=list(patient.photos.select_related("uploaded_by").order_by("taken_on", "id")),
        contact_changes=list(
            patient.contact_changes.select_related("changed_by").order_by("changed_at", "id")
        ),
        consents=list(
            SignedConsent.objects.filter(patient=patient)
            .select_related(
                "version", "version__form", "witness", "withdrawal", "withdrawal__recorded_by"
            )
            .select_related("pdf")
            .order_by("signed_at", "id")
        ),
        allergy_tests=list(
            patient.allergy_tests.select_related("batch", "batch__product", "given_by", "read_by")
            .prefetch_related("ingredients", "products")
            .order_by("given_at", "id")
        ),
        allergies=list(
            patient.allergies.select_related("ingredient", "recorded_by").order_by(
                "recorded_at", "id"
            )
        ),
        courses=list(
            patient.courses.select_related("protocol", "created_by").order_by("created_at", "id")
        ),
        bookings=bookings,
        documents=list(
            PatientDocument.objects.filter(patient=patient)
            .select_related("session__booking")
            .order_by("queued_at", "id")
        ),
        download_links=list(
            DownloadLink.objects.filter(patient=patient).order_by("created_at", "id")
        ),
        portal_account=portal_account,
        reminders=list(
            Reminder.objects.filter(patient=patient).order_by("due_at", "id"),
        ),
        exports=list(
            SubjectAccessExport.objects.filter(patient=patient)
            .select_related("requested_by")
            .order_by("queued_at", "id")
        ),
        erasure_requests=list(
            ErasureRequest.objects.filter(patient=patient)
            .select_related("recorded_by")
            .order_by("recorded_at", "id")
        ),
        access_log=list(
            AuditEvent.objects.filter(Q(patient_ref__in=refs)).order_by("at", "id"),
        ),
    )


def _events_queryset() -> Any:
    from treatments.models import BookingEvent

    return BookingEvent.objects.select_related("by").order_by("at", "id")

"""Aftercare sheets: the PDF made after a completed session, the emailed
download links to it, and what staff do with both (send again, revoke,
regenerate).

The PDF is rendered by a Celery task from the protocol's aftercare sheet. A
document row is created once per session; rendering writes the file at the
document's one path, so a retry or a regeneration never makes a second copy.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import F
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from clinic.audit import audit_log
from clinic.background import enqueue
from clinic.concurrency import submission_check, submission_marks
from clinic.models import AuditAction, User
from clinic.pdf import store_replacing
from patients.contact_changes import email_hold
from patients.models import TreatmentArea
from treatments.models import (
    Booking,
    BookingStatus,
    CocktailLine,
    DownloadLink,
    PatientDocument,
    PatientDocumentStatus,
    SessionRecord,
)

logger = logging.getLogger(__name__)

PDF_TEMPLATE = "pdf/aftercare_sheet.html"
# A queued document whose task has not run after this long was lost (broker
# down, worker killed before it acknowledged): the sweep queues it again.
REQUEUE_AFTER = timedelta(minutes=2)
MAX_ATTEMPTS = 5
SYSTEM_LABEL = "system"


def sha256_hex(data: str | bytes) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def _actor_label(actor: User | None) -> str:
    return "" if actor is not None else SYSTEM_LABEL


# --- Queueing -----------------------------------------------------------------------


@transaction.atomic
def aftercare_queue(*, session: SessionRecord) -> PatientDocument:
    """Create the session's aftercare document (queued) and queue its rendering
    once the transaction commits. A second call returns the same document and
    queues nothing new. A broker that is down never fails the caller: the row
    stays queued and `aftercare_requeue_stale` tries again."""
    existing = PatientDocument.objects.filter(session=session).first()
    if existing is not None:
        return existing
    document = PatientDocument(
        patient_id=session.booking.patient_id,
        session=session,
        status=PatientDocumentStatus.QUEUED,
        queued_at=timezone.now(),
    )
    document.full_clean()
    document.save()
    audit_log(
        actor=None,
        actor_label=SYSTEM_LABEL,
        action=AuditAction.CREATE,
        obj=document,
        patient_ref=session.booking.patient.uuid,
    )
    document_id = document.pk
    transaction.on_commit(lambda: aftercare_enqueue(document_id=document_id))
    return document


def aftercare_enqueue(*, document_id: int) -> bool:
    """Send the render task to the broker; False (logged) if it cannot be reached."""
    from treatments.tasks.aftercare import aftercare_render as render_task

    return enqueue(render_task, document_id, label=f"aftercare document {document_id}")


@transaction.atomic
def aftercare_regenerate(*, document: PatientDocument, requested_by: User) -> PatientDocument:
    """Render the sheet again (after the protocol's sheet was corrected, say):
    the new file replaces the old one at the same path. Links already sent
    keep working and give the new file."""
    current = PatientDocument.objects.select_for_update().get(pk=document.pk)
    # The old file stays downloadable until the new one replaces it.
    current.status = PatientDocumentStatus.QUEUED
    current.queued_at = timezone.now()
    PatientDocument.objects.filter(pk=current.pk).update(
        status=current.status, queued_at=current.queued_at, attempts=0, error=""
    )
    audit_log(
        actor=requested_by,
        action=AuditAction.UPDATE,
        obj=current,
        patient_ref=current.patient.uuid,
        changed_fields=["file"],
    )
    document_id = current.pk
    transaction.on_commit(lambda: aftercare_enqueue(document_id=document_id))
    return current


def aftercare_requeue_stale() -> int:
    """Queue again the documents still waiting after REQUEUE_AFTER (their task
    was lost). Run every minute. Gives up after MAX_ATTEMPTS renders, which
    leaves the row failed for staff to see. Returns how many were queued."""
    now = timezone.now()
    stale = PatientDocument.objects.filter(
        status=PatientDocumentStatus.QUEUED, queued_at__lt=now - REQUEUE_AFTER
    )
    stale.filter(attempts__gte=MAX_ATTEMPTS).update(
        status=PatientDocumentStatus.FAILED, error="gave up after repeated attempts"
    )
    ids = list(stale.filter(attempts__lt=MAX_ATTEMPTS).values_list("pk", flat=True)[:200])
    queued = 0
    for pk in ids:
        # Restart the clock first, so the next sweep does not queue it twice.
        PatientDocument.objects.filter(pk=pk, status=PatientDocumentStatus.QUEUED).update(
            queued_at=timezone.now()
        )
        queued += aftercare_enqueue(document_id=pk)
    return queued


# --- Rendering ----------------------------------------------------------------------


def next_session_of(session: SessionRecord) -> Booking | None:
    """The next booked session: of the same course if there is one, otherwise
    the patient's next booked session of any kind."""
    booking = session.booking
    upcoming = Booking.objects.filter(
        patient_id=booking.patient_id,
        status=BookingStatus.BOOKED,
        starts_at__gt=booking.starts_at,
    ).order_by("starts_at", "id")
    if booking.course_id is not None:
        in_course = upcoming.filter(course_id=booking.course_id).first()
        if in_course is not None:
            return in_course
    return upcoming.first()


def aftercare_context(document: PatientDocument) -> dict[str, Any]:
    """Everything the PDF shows. Patient text goes to the template as plain
    strings, which the template escapes."""
    session = document.session
    booking = session.booking
    sheet = booking.protocol.aftercare_sheet
    areas = list(
        dict.fromkeys(
            str(TreatmentArea(area).label)
            for area in CocktailLine.objects.filter(session=session)
            .order_by("id")
            .values_list("area", flat=True)
        )
    )
    if not areas:
        areas = [str(TreatmentArea(a).label) for a in booking.protocol.default_areas]
    return {
        "clinic_name": settings.CLINIC_NAME,
        "clinic_site": settings.SITE_URL,
        "clinic_email": settings.DEFAULT_FROM_EMAIL,
        "clinic_phone": settings.CLINIC_PHONE,
        "clinic_address": settings.CLINIC_ADDRESS,
        "patient": document.patient,
        "session": session,
        "booking": booking,
        "protocol": booking.protocol,
        "sheet": sheet,
        "areas": areas,
        "next_session": next_session_of(session),
        "document": document,
    }


def aftercare_render(*, document_id: int) -> PatientDocument:
    """Render the document's PDF and mark it ready (or failed, with the kind of
    error only). Idempotent: a second run writes the same path and the same
    row; the checksum changes only if the content does. The first time a
    document becomes ready the patient is emailed a download link."""
    from clinic.pdf import render_pdf

    with transaction.atomic():
        # The row alone, then read with what it points at: a join locked and
        # re-checked after a wait drops a row that changed meanwhile (moved to
        # another record by a merge), and locking the patient with it would
        # hold up every booking of theirs.
        PatientDocument.objects.select_for_update().filter(pk=document_id).values_list(
            "pk", flat=True
        ).get()
        row = PatientDocument.objects.select_related(
            "patient",
            "session__booking__protocol__aftercare_sheet",
            "session__booking__patient",
        ).get(pk=document_id)
        row.attempts += 1
        PatientDocument.objects.filter(pk=row.pk).update(attempts=row.attempts)
    first_time = row.generated_at is None
    try:
        pdf = render_pdf(PDF_TEMPLATE, aftercare_context(row))
    except Exception as exc:
        # The kind of error only: a message could quote patient text.
        logger.warning("Aftercare document %s failed to render (%s)", row.uuid, type(exc).__name__)
        PatientDocument.objects.filter(pk=row.pk).update(
            status=PatientDocumentStatus.FAILED, error=type(exc).__name__[:200]
        )
        row.refresh_from_db()
        return row
    digest = sha256_hex(pdf)
    name = row.file.field.upload_to(row, "")
    storage = row.file.storage
    with transaction.atomic():
        # Under the row lock: two renders of one document never interleave writes.
        locked = PatientDocument.objects.select_for_update().get(pk=row.pk)
        if locked.sha256 != digest or not storage.exists(name):
            store_replacing(storage, name, pdf)
        PatientDocument.objects.filter(pk=row.pk).update(
            status=PatientDocumentStatus.READY,
            file=name,
            sha256=digest,
            error="",
            generated_at=timezone.now(),
        )
    row.refresh_from_db()
    if first_time and row.patient.email:
        try:
            aftercare_send(document=row, sent_by=None)
        except Exception as exc:
            logger.warning(
                "Aftercare document %s: the email could not be sent (%s)",
                row.uuid,
                type(exc).__name__,
            )
    return row


# --- Download links -------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedLink:
    """A link just made: the raw token exists only here and in the email."""

    link: DownloadLink
    token: str

    @property
    def url(self) -> str:
        path = reverse("treatments:link_open", kwargs={"token": self.token})
        return settings.SITE_URL.rstrip("/") + path


class DocumentNotReadyError(Exception):
    """The document has no file yet: nothing to link to."""


@transaction.atomic
def download_link_create(
    *, document: PatientDocument, created_by: User | None, marks: list[str] | None = None
) -> IssuedLink:
    """A new link for the document's patient: 256 random bits, only the
    SHA-256 kept, expiring after DOWNLOAD_LINK_DAYS. Earlier links stay valid
    until they expire or are revoked. `marks` are listed among the audit
    event's changed fields (a form's submission marker)."""
    if not document.file or not document.sha256:
        raise DocumentNotReadyError
    token = secrets.token_urlsafe(32)
    now = timezone.now()
    link = DownloadLink(
        patient_id=document.patient_id,
        document=document,
        token_hash=sha256_hex(token),
        created_at=now,
        expires_at=now + timedelta(days=settings.DOWNLOAD_LINK_DAYS),
    )
    link.full_clean()
    link.save()
    audit_log(
        actor=created_by,
        actor_label=_actor_label(created_by),
        action=AuditAction.CREATE,
        obj=link,
        patient_ref=document.patient.uuid,
        changed_fields=marks or [],
    )
    return IssuedLink(link=link, token=token)


def _send_link_email(*, document: PatientDocument, issued: IssuedLink) -> None:
    patient = document.patient
    context = {
        "clinic_name": settings.CLINIC_NAME,
        "patient": patient,
        "session_date": document.session.booking.starts_at,
        "url": issued.url,
        "expires_at": issued.link.expires_at,
        "days": settings.DOWNLOAD_LINK_DAYS,
    }
    subject = " ".join(render_to_string("emails/aftercare_subject.txt", context).split())
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("emails/aftercare_message.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[patient.email],
    )
    message.attach_alternative(
        render_to_string("emails/aftercare_message.html", context), "text/html"
    )
    message.send()


def aftercare_send(
    *,
    document: PatientDocument,
    sent_by: User | None,
    submission_token: uuid.UUID | None = None,
) -> DownloadLink:
    """Email the patient a new download link to the sheet (the link is saved
    first; an email that fails leaves an unused link, never a lost one).
    `sent_by` None: the first, automatic email of a sheet just made.
    `submission_token` is the "email a new link" form's one-time token: sent
    twice, one link and one email (`AlreadySubmittedError`, clinic.concurrency,
    with `.obj`, the link made first).

    Raises `ValidationError` when the patient has no email address (code
    "no_email"), or when it was changed less than 24 hours ago by staff who
    cannot open clinical documents (code "email_hold", with the wait in
    plain words: patients.contact_changes.email_hold); nothing is sent."""
    if not document.patient.email:
        raise ValidationError(
            _("This patient has no email address. Add one to send the sheet."), code="no_email"
        )
    hold = email_hold(patient=document.patient)
    if hold is not None:
        raise ValidationError(hold.sentence, code="email_hold")
    with transaction.atomic():
        submission_check(DownloadLink, submission_token, by=sent_by)
        issued = download_link_create(
            document=document, created_by=sent_by, marks=submission_marks(submission_token)
        )
    _send_link_email(document=document, issued=issued)
    return issued.link


@transaction.atomic
def download_links_revoke(
    *, document: PatientDocument, revoked_by: User, link_uuid: Any = None
) -> int:
    """Revoke one link of the document (or all its live ones): they answer
    "not found" from now on. Returns how many were revoked."""
    now = timezone.now()
    links = DownloadLink.objects.select_for_update().filter(
        document=document, revoked_at__isnull=True, expires_at__gt=now
    )
    if link_uuid is not None:
        links = links.filter(uuid=link_uuid)
    revoked = list(links)
    for link in revoked:
        DownloadLink.objects.filter(pk=link.pk).update(revoked_at=now)
        audit_log(
            actor=revoked_by,
            action=AuditAction.UPDATE,
            obj=link,
            patient_ref=document.patient.uuid,
            changed_fields=["revoked_at"],
        )
    return len(revoked)


class LinkGoneError(Exception):
    """Unknown, revoked or not downloadable: answered as "not found"."""


class LinkExpiredError(Exception):
    """The link is past its expiry: answered as "gone"."""


def download_link_find(*, token: str, now: datetime | None = None) -> DownloadLink:
    """The live link for this raw token, or LinkGoneError / LinkExpiredError."""
    now = now or timezone.now()
    if not token or len(token) > 200:
        raise LinkGoneError
    link = (
        DownloadLink.objects.select_related("document", "patient")
        .filter(token_hash=sha256_hex(token))
        .first()
    )
    if link is None or link.revoked_at is not None:
        raise LinkGoneError
    if link.expires_at <= now:
        raise LinkExpiredError
    if not link.document.file or not link.document.sha256:
        raise LinkGoneError
    return link


@transaction.atomic
def download_link_use(*, link: DownloadLink) -> DownloadLink:
    """Count a download through the link and audit it against the patient."""
    now = timezone.now()
    DownloadLink.objects.filter(pk=link.pk).update(downloads=F("downloads") + 1, last_used_at=now)
    audit_log(
        actor=None,
        actor_label="patient (download link)",
        action=AuditAction.DOWNLOAD,
        obj=link.document,
        patient_ref=link.patient.uuid,
    )
    link.refresh_from_db()
    return link

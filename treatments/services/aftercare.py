"""Aftercare sheets: the PDF made after a completed session, the emailed
download links to it, and what staff do with both (send again, revoke,
regenerate).

The PDF goes through the clinic's one document pipeline (clinic.documents):
a document row is created once per session, rendered by a Celery task,
retried after a failure and given up as failed after MAX_ATTEMPTS; rendering
writes the file at the document's one path, so a retry or a regeneration
never makes a second copy.

The email of a link is owed from the moment the sheet is queued for a
patient with an email address (`email_status` pending), and sent once the
sheet is ready, by whichever comes first of the render task and the sweep:
the sender claims the row (pending to sending, under its lock) before it
makes the link, so the two never both send. The link opens nothing until
the email is recorded as sent; a failed email is recorded (its type only)
for staff to see and send again, and its link stays dead. No transaction is
open while the mail server is spoken to, and the call is bounded by
EMAIL_TIMEOUT.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import F
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from clinic import clinic_settings
from clinic.audit import audit_log
from clinic.background import enqueue
from clinic.concurrency import submission_check, submission_marks
from clinic.documents import (
    document_queue,
    document_render,
    document_requeue_due,
    document_retry,
    sha256_hex,
)
from clinic.models import AuditAction, User
from clinic.refusals import RefusalKind, RefusedError
from patients.contact_changes import email_hold
from patients.models import TreatmentArea
from treatments.models import (
    Booking,
    BookingStatus,
    CocktailLine,
    DownloadLink,
    EmailStatus,
    PatientDocument,
    PatientDocumentStatus,
    SessionRecord,
)

logger = logging.getLogger(__name__)

PDF_TEMPLATE = "pdf/aftercare_sheet.html"
SYSTEM_LABEL = "system"
# How the sheet is read for rendering: with what it shows.
RENDER_RELATED = (
    "patient",
    "session__booking__protocol__aftercare_sheet",
    "session__booking__patient",
)
# The bound on each exchange with the mail server when EMAIL_TIMEOUT is not set.
DEFAULT_EMAIL_TIMEOUT = 20
# An email claimed this long ago and never recorded as sent or failed was
# interrupted (its worker died): it is shown as failed, never sent again
# unasked, since it may have left. Far above the time a send can take.
EMAIL_STUCK_AFTER = timedelta(minutes=10)
EMAIL_FIELDS = ("email_status", "email_claimed_at", "emailed_at", "email_error")
# Owed emails the sweep sends per run.
EMAIL_SWEEP_BATCH = 20

# `email_error` codes other than an error's type.
NO_EMAIL = "no_email"
EMAIL_HOLD = "email_hold"
INTERRUPTED = "interrupted"


def _actor_label(actor: User | None) -> str:
    return "" if actor is not None else SYSTEM_LABEL


# --- Queueing -----------------------------------------------------------------------


def aftercare_enqueue(*, document_id: int) -> bool:
    """Send the render task to the broker; False (logged) if it cannot be reached."""
    from treatments.tasks.aftercare import aftercare_render as render_task

    return enqueue(render_task, document_id, label=f"aftercare document {document_id}")


def _enqueue(pk: int) -> bool:
    return aftercare_enqueue(document_id=pk)


@transaction.atomic
def aftercare_queue(*, session: SessionRecord) -> PatientDocument:
    """Create the session's aftercare document (queued) and queue its rendering
    once the transaction commits; the email of a link is owed when the patient
    has an email address. A second call returns the same document and queues
    nothing new. A broker that is down never fails the caller: the row stays
    queued and `aftercare_requeue_stale` tries again."""
    existing = PatientDocument.objects.filter(session=session).first()
    if existing is not None:
        return existing
    patient = session.booking.patient
    document = document_queue(
        row=PatientDocument(
            patient_id=patient.pk,
            session=session,
            email_status=EmailStatus.PENDING if patient.email else EmailStatus.NONE,
        ),
        enqueue=_enqueue,
    )
    audit_log(
        actor=None,
        actor_label=SYSTEM_LABEL,
        action=AuditAction.CREATE,
        obj=document,
        patient_ref=patient.uuid,
    )
    return document


@transaction.atomic
def aftercare_regenerate(*, document: PatientDocument, requested_by: User) -> PatientDocument:
    """Render the sheet again (staff's "Try again" after it could not be made,
    or after the protocol's sheet was corrected): the new file replaces the
    old one at the same path. Links already sent keep working and give the
    new file; no new email is sent for a remake."""
    current = document_retry(model=PatientDocument, pk=document.pk, enqueue=_enqueue)
    audit_log(
        actor=requested_by,
        action=AuditAction.UPDATE,
        obj=current,
        patient_ref=document.patient.uuid,
        changed_fields=["file"],
    )
    return current


def aftercare_requeue_stale() -> int:
    """The sweep, every minute: queue again the sheets whose next attempt has
    come (task lost, or a render failed and waited), give up those that had
    MAX_ATTEMPTS, mark interrupted emails failed, and send the emails owed for
    sheets that are ready (the render task normally sends them at once; the
    claim makes sure one email leaves either way). Returns how many render
    tasks were queued."""
    queued = document_requeue_due(model=PatientDocument, enqueue=_enqueue)
    aftercare_emails_interrupted()
    owed = PatientDocument.objects.filter(
        status=PatientDocumentStatus.READY, email_status=EmailStatus.PENDING
    ).values_list("pk", flat=True)[:EMAIL_SWEEP_BATCH]
    for pk in list(owed):
        aftercare_email_owed_send(document_id=pk)
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
        **clinic_settings.printed(),
        "clinic_site": settings.SITE_URL,
        "patient": document.patient,
        "session": session,
        "booking": booking,
        "protocol": booking.protocol,
        "sheet": sheet,
        "areas": areas,
        "next_session": next_session_of(session),
        "document": document,
    }


def aftercare_render_pdf(document: PatientDocument) -> bytes:
    """The sheet's PDF bytes (the renderer of the document pipeline)."""
    from clinic.pdf import render_pdf

    return render_pdf(PDF_TEMPLATE, aftercare_context(document))


def aftercare_render(*, document_id: int) -> PatientDocument:
    """Render the document's PDF and record the outcome through the document
    pipeline (ready; or queued again after a wait; or failed, with the kind
    of error only). Idempotent: a second run writes the same path and the
    same row; the checksum changes only if the content does. Once the sheet
    is ready, the email owed for it (if any) is sent, once.

    Raises `PatientDocument.DoesNotExist` for a document that is gone."""
    row = document_render(
        model=PatientDocument,
        pk=document_id,
        renderer=aftercare_render_pdf,
        related=RENDER_RELATED,
    )
    if row.status == PatientDocumentStatus.READY and row.email_status == EmailStatus.PENDING:
        aftercare_email_owed_send(document_id=row.pk)
        row.refresh_from_db(fields=EMAIL_FIELDS)
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


class DocumentNotReadyError(RefusedError):
    """The document has no file yet: nothing to link to."""

    code = "document_not_ready"
    kind = RefusalKind.CONFLICT
    default_message = gettext_lazy("The PDF is not made yet: try again in a minute.")


@transaction.atomic
def download_link_create(
    *, document: PatientDocument, created_by: User | None, marks: list[str] | None = None
) -> IssuedLink:
    """A new link for the document's patient: 256 random bits, only the
    SHA-256 kept, expiring after DOWNLOAD_LINK_DAYS. It opens nothing until
    `download_link_sent` records its email as sent. Earlier links stay valid
    until they expire or are revoked. `marks` are listed among the audit
    event's changed fields (a form's submission marker). Raises
    `DocumentNotReadyError` when the document has no file yet."""
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


def _email_timeout() -> float:
    """Seconds each exchange with the mail server may take."""
    return getattr(settings, "EMAIL_TIMEOUT", None) or DEFAULT_EMAIL_TIMEOUT


def _send_link_email(*, document: PatientDocument, issued: IssuedLink) -> None:
    patient = document.patient
    context = {
        **clinic_settings.printed(),
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
        connection=get_connection(timeout=_email_timeout()),
    )
    message.attach_alternative(
        render_to_string("emails/aftercare_message.html", context), "text/html"
    )
    message.send()


class AftercareEmailFailedError(RefusedError):
    """The mail server did not take the email; the document shows it as failed."""

    code = "email_failed"
    kind = RefusalKind.CONFLICT
    default_message = gettext_lazy("The email could not be sent: the sheet shows it as failed.")


@dataclass(frozen=True)
class _Claimed:
    """An email claimed for sending: the document (read with what the email
    shows) and the link it carries, not yet usable."""

    document: PatientDocument
    issued: IssuedLink


def _email_claim(
    *,
    document_id: int,
    sent_by: User | None,
    owed_only: bool,
    marks: list[str] | None = None,
) -> _Claimed | None:
    """Claim the document's email for this sender, in the caller's
    transaction, under the row's lock: the email becomes `sending`, and an
    unusable link is made for it. `owed_only`: claim only an email owed
    (pending; the automatic email), else any not being sent right now (staff
    sending again). None when there is nothing to claim. An owed email that
    cannot go (no address, or one on hold) is recorded failed, with its code."""
    locked = (
        PatientDocument.objects.select_for_update()
        .filter(pk=document_id)
        .values_list("status", "email_status", "sha256")
        .first()
    )
    if locked is None:
        return None
    status, email_status, made = locked
    if owed_only and (status != PatientDocumentStatus.READY or email_status != EmailStatus.PENDING):
        return None
    if not made:  # never made yet: nothing to link to (a remake keeps the last file)
        return None
    if not owed_only and email_status == EmailStatus.SENDING:
        raise ValidationError(
            _("An email with a link is being sent right now. Wait a minute, then look again."),
            code="sending",
        )
    document = PatientDocument.objects.select_related("patient", "session__booking").get(
        pk=document_id
    )
    refusal = None if document.patient.email else NO_EMAIL
    if refusal is None and email_hold(patient=document.patient) is not None:
        refusal = EMAIL_HOLD
    if refusal is not None:
        PatientDocument.objects.filter(pk=document_id).update(
            email_status=EmailStatus.FAILED, email_error=refusal
        )
        logger.info("Aftercare document %s: email not sent (%s)", document_id, refusal)
        return None
    issued = download_link_create(document=document, created_by=sent_by, marks=marks)
    PatientDocument.objects.filter(pk=document_id).update(
        email_status=EmailStatus.SENDING, email_claimed_at=timezone.now(), email_error=""
    )
    return _Claimed(document=document, issued=issued)


def _email_deliver(claimed: _Claimed) -> bool:
    """Send the claimed email, outside any transaction, then record the
    outcome: sent (and the link usable from now on), or failed (the link
    revoked unused, the error's type kept). Answers whether it left."""
    document, link = claimed.document, claimed.issued.link
    try:
        _send_link_email(document=document, issued=claimed.issued)
    except Exception as exc:
        kind = type(exc).__name__[:200]
        with transaction.atomic():
            now = timezone.now()
            DownloadLink.objects.filter(pk=link.pk).update(revoked_at=now)
            PatientDocument.objects.filter(pk=document.pk).update(
                email_status=EmailStatus.FAILED, email_error=kind
            )
        # The type only: the message of a refused recipient quotes the address.
        logger.warning("Aftercare document %s: the email could not be sent (%s)", document.pk, kind)
        return False
    with transaction.atomic():
        now = timezone.now()
        DownloadLink.objects.filter(pk=link.pk).update(sent_at=now)
        PatientDocument.objects.filter(pk=document.pk).update(
            email_status=EmailStatus.SENT, emailed_at=now, email_error=""
        )
    return True


def aftercare_email_owed_send(*, document_id: int) -> bool:
    """Send the email owed for a ready sheet, if it is still owed: whoever
    claims it first (the render task or the sweep) sends it, the other finds
    nothing to do. Call outside any transaction: none is held while the mail
    server is spoken to. Answers whether an email left. Raises nothing for a
    failed send: it is recorded on the document for staff."""
    with transaction.atomic():
        claimed = _email_claim(document_id=document_id, sent_by=None, owed_only=True)
    if claimed is None:
        return False
    return _email_deliver(claimed)


def aftercare_emails_interrupted(*, now: datetime | None = None) -> int:
    """Record as failed the emails claimed more than EMAIL_STUCK_AFTER ago and
    never recorded (their sender died): staff see them and decide whether to
    send again, since they may have left. Their links stay unusable. Returns
    how many."""
    cutoff = (now or timezone.now()) - EMAIL_STUCK_AFTER
    with transaction.atomic():
        stuck = list(
            PatientDocument.objects.select_for_update(skip_locked=True)
            .filter(email_status=EmailStatus.SENDING, email_claimed_at__lt=cutoff)
            .values_list("pk", flat=True)
        )
        if not stuck:
            return 0
        DownloadLink.objects.filter(
            document_id__in=stuck, sent_at__isnull=True, revoked_at__isnull=True
        ).update(revoked_at=timezone.now())
        PatientDocument.objects.filter(pk__in=stuck).update(
            email_status=EmailStatus.FAILED, email_error=INTERRUPTED
        )
    for pk in stuck:
        logger.warning("Aftercare document %s: the email was interrupted", pk)
    return len(stuck)


def aftercare_send(
    *,
    document: PatientDocument,
    sent_by: User | None,
    submission_token: uuid.UUID | None = None,
) -> DownloadLink:
    """Email the patient a new download link to the sheet, now (staff sending
    it again, after a failed email say). The link opens once the email is
    recorded as sent; an email that fails is recorded on the document and its
    link never opens. `sent_by` None: sent by the clinic's system.
    `submission_token` is the "email a new link" form's one-time token: sent
    twice, one link and one email (`AlreadySubmittedError`, clinic.concurrency,
    with `.obj`, the link made first).

    Raises `ValidationError` when the patient has no email address (code
    "no_email"), when it was changed less than 24 hours ago by staff who
    cannot open clinical documents (code "email_hold", with the wait in
    plain words: patients.contact_changes.email_hold), or when an email of
    this sheet is being sent right now (code "sending"); nothing is sent.
    Raises `DocumentNotReadyError` before the sheet is made, and
    `AftercareEmailFailedError` when the mail server did not take it."""
    if not document.patient.email:
        raise ValidationError(
            _("This patient has no email address. Add one to send the sheet."), code="no_email"
        )
    hold = email_hold(patient=document.patient)
    if hold is not None:
        raise ValidationError(hold.sentence, code="email_hold")
    if not document.file or not document.sha256:
        raise DocumentNotReadyError
    with transaction.atomic():
        submission_check(DownloadLink, submission_token, by=sent_by)
        claimed = _email_claim(
            document_id=document.pk,
            sent_by=sent_by,
            owed_only=False,
            marks=submission_marks(submission_token),
        )
    if claimed is None:
        # Unmade meanwhile (a remake), or its address went since the checks above.
        document.refresh_from_db(fields=["sha256"])
        if not document.sha256:
            raise DocumentNotReadyError
        raise AftercareEmailFailedError
    if not _email_deliver(claimed):
        raise AftercareEmailFailedError
    return claimed.issued.link


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


class LinkGoneError(RefusedError):
    """Unknown, revoked or not downloadable: answered as "not found"."""

    code = "link_gone"
    kind = RefusalKind.GONE
    default_message = gettext_lazy("This link does not open any more.")


class LinkExpiredError(RefusedError):
    """The link is past its expiry: answered as "gone"."""

    code = "link_expired"
    kind = RefusalKind.GONE
    default_message = gettext_lazy("This link has expired.")


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
    # A link whose email was never recorded as sent opens nothing.
    if link is None or link.revoked_at is not None or link.sent_at is None:
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

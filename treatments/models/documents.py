"""Patient documents (aftercare sheets as PDFs) and their private download links."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from clinic.documents import DocumentStatus, GeneratedDocument
from treatments.models.session import SessionRecord

# What a stored token digest looks like: the SHA-256 of the token, in hex.
SHA256_HEX = r"^[0-9a-f]{64}$"

# --- Patient documents, download links and the portal ----------------------------------


# The aftercare sheet's states are those of every generated document.
PatientDocumentStatus = DocumentStatus


class EmailStatus(models.TextChoices):
    """Where the emailed link to a sheet stands (treatments.services.aftercare)."""

    NONE = "none", _("not emailed")
    PENDING = "pending", _("waiting to be sent")
    SENDING = "sending", _("being sent")
    SENT = "sent", _("sent")
    FAILED = "failed", _("email failed")


def _document_path(instance: PatientDocument, filename: str) -> str:
    # Named by migration 0005; the path itself is `PatientDocument.file_name`.
    return instance.file_name()


class PatientDocument(GeneratedDocument):
    """A PDF made for a patient: the aftercare sheet of a completed session,
    made through the clinic's one document pipeline (clinic.documents).
    Regenerating replaces the file at the same path; never a second copy.

    The email of a link to it is tracked here too: owed (pending) from the
    moment the sheet is queued for a patient with an email address, claimed
    by one sender at a time (sending), then sent or failed, for staff to see
    and send again."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, related_name="documents"
    )
    session = models.OneToOneField(
        SessionRecord, on_delete=models.PROTECT, related_name="aftercare_document"
    )
    email_status = models.CharField(
        max_length=10, choices=EmailStatus.choices, default=EmailStatus.NONE, editable=False
    )
    # When the email now being sent (or last tried) was claimed by its sender.
    email_claimed_at = models.DateTimeField(null=True, blank=True, editable=False)
    emailed_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Why the last email did not leave: a code or the error's type, never its message.
    email_error = models.CharField(max_length=200, blank=True, editable=False)

    document_label = "Aftercare document"

    class Meta(GeneratedDocument.Meta):
        ordering = ["-queued_at", "-id"]
        verbose_name = _("patient document")
        verbose_name_plural = _("patient documents")
        constraints = [
            *GeneratedDocument.Meta.constraints,
            models.CheckConstraint(
                condition=~Q(email_status="sending") | Q(email_claimed_at__isnull=False),
                name="document_sending_has_claim",
            ),
            models.CheckConstraint(
                condition=~Q(email_status="sent") | Q(emailed_at__isnull=False),
                name="document_sent_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"Aftercare sheet {self.uuid} ({self.status})"

    def file_name(self) -> str:
        return f"documents/{self.uuid}.pdf"

    @property
    def email_failure(self) -> str:
        """Why the last email did not leave, in staff's words ("" unless it failed)."""
        if self.email_status != EmailStatus.FAILED:
            return ""
        reasons = {
            "no_email": _("The patient has no email address."),
            "email_hold": _(
                "The email address was changed recently by staff who do not open clinical "
                "documents: it can be used once the 24-hour wait ends."
            ),
            "interrupted": _(
                "Sending was interrupted: the patient may or may not have received it. "
                "Its link does not open."
            ),
        }
        return str(
            reasons.get(
                self.email_error, _("The mail server did not accept it. Its link does not open.")
            )
        )

    @property
    def email_in_flight(self) -> bool:
        """An email owed or being sent."""
        return self.email_status in (EmailStatus.PENDING, EmailStatus.SENDING)

    @property
    def awaits_change(self) -> bool:
        """Something will change without staff doing anything: the sheet is being
        made, or its email is about to leave (the status block polls meanwhile)."""
        return self.status == DocumentStatus.QUEUED or (
            self.status == DocumentStatus.READY and self.email_in_flight
        )


class DownloadLink(models.Model):
    """A link emailed to a patient for one document. Only the SHA-256 of its
    random token is stored; it opens only once its email is recorded as sent
    (`sent_at`), expires, can be revoked, and the download also asks for the
    patient's date of birth."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, related_name="download_links"
    )
    document = models.ForeignKey(PatientDocument, on_delete=models.PROTECT, related_name="links")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    # Set when the email carrying it left; until then the link opens nothing.
    sent_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)
    downloads = models.PositiveIntegerField(default=0)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("download link")
        verbose_name_plural = _("download links")
        constraints = [
            models.CheckConstraint(
                condition=Q(token_hash__regex=SHA256_HEX), name="link_token_is_sha256"
            ),
            models.CheckConstraint(
                condition=Q(expires_at__gt=F("created_at")), name="link_expires_after_creation"
            ),
        ]

    def __str__(self) -> str:
        return f"Download link {self.uuid}"

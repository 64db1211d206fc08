"""Patient documents (aftercare sheets as PDFs) and their private download links."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from treatments.models.session import SessionRecord

if TYPE_CHECKING:
    pass


# What a stored token digest looks like: the SHA-256 of the token, in hex.
SHA256_HEX = r"^[0-9a-f]{64}$"

# --- Patient documents, download links and the portal ----------------------------------


class PatientDocumentStatus(models.TextChoices):
    QUEUED = "queued", _("being prepared")
    READY = "ready", _("ready")
    FAILED = "failed", _("failed")


def _document_path(instance: PatientDocument, filename: str) -> str:
    return f"documents/{instance.uuid}.pdf"


class PatientDocument(models.Model):
    """A PDF made for a patient: the aftercare sheet of a completed session.
    Regenerating replaces the file at the same path; never a second copy."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, related_name="documents"
    )
    session = models.OneToOneField(
        SessionRecord, on_delete=models.PROTECT, related_name="aftercare_document"
    )
    status = models.CharField(
        max_length=10, choices=PatientDocumentStatus.choices, default=PatientDocumentStatus.QUEUED
    )
    file = models.FileField(upload_to=_document_path, blank=True, editable=False)
    sha256 = models.CharField(max_length=64, blank=True, editable=False)
    attempts = models.PositiveIntegerField(default=0, editable=False)
    error = models.CharField(max_length=200, blank=True, editable=False)
    queued_at = models.DateTimeField(editable=False)
    generated_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-queued_at", "-id"]
        verbose_name = _("patient document")
        verbose_name_plural = _("patient documents")
        indexes = [models.Index(fields=["status", "queued_at"], name="document_status_idx")]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="ready") | (~Q(file="") & ~Q(sha256="")),
                name="document_ready_has_file",
            ),
        ]

    def __str__(self) -> str:
        return f"Aftercare sheet {self.uuid} ({self.status})"


class DownloadLink(models.Model):
    """A link emailed to a patient for one document. Only the SHA-256 of its
    random token is stored; it expires, can be revoked, and the download also
    asks for the patient's date of birth."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, related_name="download_links"
    )
    document = models.ForeignKey(PatientDocument, on_delete=models.PROTECT, related_name="links")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
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

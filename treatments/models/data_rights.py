"""Patients' data rights under UK GDPR: subject-access exports (Art. 15) and
erasure requests with the retention of the clinical record (Art. 17)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from clinic.documents import GeneratedDocument

# How long a finished export stays downloadable before the purge deletes its
# file: long enough to hand it over, short enough that a copy of the whole
# record does not linger on the server.
SUBJECT_ACCESS_KEEP = timedelta(days=7)


class SubjectAccessExport(GeneratedDocument):
    """A ZIP of everything held about one patient (a readable PDF summary, an
    HL7 FHIR bundle, the photos and documents), made in the background
    through the clinic's one document pipeline (clinic.documents).

    `progress` (0-100) is written by the renderer as it goes, for the page
    that polls it. After `expires_at` the purge deletes the file and sets
    `purged_at`; the row stays as the record that the request was met."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, related_name="subject_access_exports"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", editable=False
    )
    progress = models.PositiveSmallIntegerField(default=0, editable=False)
    # When the file is deleted (generated + SUBJECT_ACCESS_KEEP); empty until ready.
    expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    purged_at = models.DateTimeField(null=True, blank=True, editable=False)
    size_bytes = models.PositiveBigIntegerField(default=0, editable=False)

    document_label = "Subject access export"

    class Meta(GeneratedDocument.Meta):
        ordering = ["-queued_at", "-id"]
        verbose_name = _("subject access export")
        verbose_name_plural = _("subject access exports")
        constraints = [
            *GeneratedDocument.Meta.constraints,
            models.CheckConstraint(
                condition=Q(progress__lte=100), name="subject_access_progress_percent"
            ),
        ]
        indexes = [
            # The pipeline's sweep (the inherited name would pass 30 characters).
            models.Index(fields=["status", "next_attempt_at"], name="subject_access_due_idx"),
            models.Index(
                fields=["expires_at"],
                condition=Q(purged_at__isnull=True, expires_at__isnull=False),
                name="subject_access_expiry_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"Subject access export {self.uuid} ({self.status})"

    def file_name(self) -> str:
        return f"subject-access/{self.uuid}.zip"

    @property
    def is_downloadable(self) -> bool:
        return self.status == "ready" and self.purged_at is None


class ErasureStatus(models.TextChoices):
    # Contact details and messaging consent erased; the clinical record is
    # kept until `retain_until` (Art. 17(3)(c) and (h)).
    RETAINED = "retained", _("clinical record kept until the retention period ends")
    # The retention period ended and the record was anonymised.
    ANONYMISED = "anonymised", _("record anonymised")


class ErasureRequest(models.Model):
    """A patient's request to erase their data (UK GDPR Art. 17), what was
    erased at once, and until when the clinical record is kept and why."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, related_name="erasure_requests"
    )
    received_on = models.DateField(_("request received on"))
    notes = models.TextField(_("notes"), blank=True, max_length=2000)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", editable=False
    )
    recorded_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(
        max_length=12, choices=ErasureStatus.choices, default=ErasureStatus.RETAINED
    )
    # Names of the fields erased at once (never their values).
    erased_fields = models.JSONField(default=list, blank=True, editable=False)
    # The last treatment the retention period runs from (None: never treated).
    last_treated_on = models.DateField(null=True, blank=True, editable=False)
    retain_until = models.DateField(editable=False)
    # Why the record is kept that long, in the manager's words.
    retention_reason = models.TextField(editable=False)
    anonymised_at = models.DateTimeField(null=True, blank=True, editable=False)
    submission_token = models.UUIDField(null=True, blank=True, unique=True, editable=False)

    class Meta:
        ordering = ["-recorded_at", "-id"]
        verbose_name = _("erasure request")
        verbose_name_plural = _("erasure requests")
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="anonymised") | Q(anonymised_at__isnull=False),
                name="erasure_anonymised_has_time",
            ),
        ]
        indexes = [
            models.Index(
                fields=["retain_until"],
                condition=Q(status="retained"),
                name="erasure_retained_due_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"Erasure request {self.uuid} ({self.status})"

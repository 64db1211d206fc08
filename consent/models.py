"""Consent forms written as versions, and the consents patients sign.

A version's text is frozen once published (database trigger, migration 0002):
the clinic changes a form by publishing a new version, and future signatures
use it. A signed consent keeps the sections the patient read, as data (name,
heading, text), the exact canonical text written from them and its SHA-256, so
the record proves what was agreed whatever happens to the form later. It is
never edited; withdrawing it is a new record.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

# DocumentStatus: the states of a signed consent's PDF, importable from here as before.
from clinic.documents import DocumentStatus as DocumentStatus
from clinic.documents import GeneratedDocument

# The sections every consent form explains, in the order the patient reads
# them; each is confirmed separately when signing.
CONSENT_SECTIONS: tuple[tuple[str, object], ...] = (
    ("procedure", _("The procedure")),
    ("benefits", _("Expected benefits")),
    ("common_side_effects", _("Common side effects")),
    ("rare_complications", _("Rare complications")),
    ("alternatives", _("Alternatives")),
    ("aftercare", _("Aftercare")),
)
CONSENT_SECTION_NAMES = tuple(name for name, _label in CONSENT_SECTIONS)
# The last section of a signed consent: the photographs wording and the patient's choice.
PHOTOGRAPHS = "photographs"
SIGNED_SECTION_KEYS = frozenset({"name", "heading", "text"})


def signed_sections_validate(value: object) -> None:
    """Refuse anything but a non-empty list of {"name", "heading", "text"} (each a
    non-empty string, names distinct): the shape of `SignedConsent.sections`."""
    if not isinstance(value, list) or not value:
        raise ValidationError(
            _("A signed consent records the sections the patient read."), code="no_sections"
        )
    names = set()
    for item in value:
        if (
            not isinstance(item, dict)
            or set(item) != SIGNED_SECTION_KEYS
            or not all(isinstance(item[key], str) and item[key] for key in SIGNED_SECTION_KEYS)
            or item["name"] in names
        ):
            raise ValidationError(
                _("Each signed section has its own name, a heading and a text."),
                code="bad_section",
            )
        names.add(item["name"])


def sections_text(sections: Sequence[Mapping[str, str]]) -> str:
    """The canonical text of signed sections: a "## heading" line then the text,
    a blank line between sections. Written (and hashed) at signing only; nothing
    reads sections back out of it, since a text may itself hold such a line."""
    return "\n\n".join(f"## {s['heading']}\n{s['text']}" for s in sections) + "\n"


class ConsentForm(models.Model):
    """A consent form the clinic uses (one per kind of treatment, say)."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    title = models.CharField(_("title"), max_length=150, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", editable=False
    )

    class Meta:
        ordering = ["title"]
        verbose_name = _("consent form")
        verbose_name_plural = _("consent forms")

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("consent:form_detail", kwargs={"form": self.uuid})


class ConsentFormVersion(models.Model):
    """The text of a consent form. A draft (published_at empty) may be edited;
    once published the database refuses any change or deletion."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    form = models.ForeignKey(ConsentForm, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField(_("version"), editable=False)
    procedure = models.TextField(_("the procedure"), max_length=5000)
    benefits = models.TextField(_("expected benefits"), max_length=5000)
    common_side_effects = models.TextField(_("common side effects"), max_length=5000)
    rare_complications = models.TextField(_("rare complications"), max_length=5000)
    alternatives = models.TextField(_("alternatives"), max_length=5000)
    aftercare = models.TextField(_("aftercare"), max_length=5000)
    photo_consent_text = models.TextField(
        _("photographs"),
        max_length=2000,
        help_text=_("What the patient agrees to when they allow photographs (a separate choice)."),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", editable=False
    )
    published_at = models.DateTimeField(null=True, blank=True, editable=False)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
        editable=False,
    )
    # Not the published number above: raised by every save of the draft, so an
    # edit opened at an older one is refused (clinic.concurrency).
    version = models.PositiveIntegerField(_("record version"), default=1, editable=False)

    class Meta:
        ordering = ["form", "-number"]
        verbose_name = _("consent form version")
        verbose_name_plural = _("consent form versions")
        constraints = [
            models.UniqueConstraint(
                fields=["form", "number"], name="consent_version_number_unique"
            ),
            # One draft at a time per form: the manager edits it, then publishes.
            models.UniqueConstraint(
                fields=["form"],
                condition=Q(published_at__isnull=True),
                name="consent_one_draft_per_form",
            ),
            models.CheckConstraint(
                condition=Q(published_at__isnull=True, published_by__isnull=True)
                | Q(published_at__isnull=False, published_by__isnull=False),
                name="consent_version_published_by_whom",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.form.title} v{self.number}"

    @property
    def is_published(self) -> bool:
        return self.published_at is not None

    @property
    def sections(self) -> list[tuple[str, str, str]]:
        """(name, heading, text) of each section, in reading order."""
        return [(name, str(label), getattr(self, name)) for name, label in CONSENT_SECTIONS]


def _signature_path(instance: SignedConsent, filename: str) -> str:
    return f"consent/signatures/{instance.uuid}.png"


class SignedConsent(models.Model):
    """A patient's signature on one published version, witnessed by a
    practitioner. Never changed or deleted (database trigger); withdrawal is a
    `ConsentWithdrawal`."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, related_name="signed_consents"
    )
    version = models.ForeignKey(
        ConsentFormVersion, on_delete=models.PROTECT, related_name="signatures"
    )
    # The exact text the patient read, as one canonical string, and its hash.
    text = models.TextField(editable=False)
    text_sha256 = models.CharField(max_length=64, editable=False)
    # The same sections as data, in reading order: [{"name", "heading", "text"}],
    # the six of CONSENT_SECTIONS then PHOTOGRAPHS. Every page and the PDF show these.
    sections = models.JSONField(editable=False)
    sections_confirmed = ArrayField(models.CharField(max_length=40), editable=False)
    photo_consent = models.BooleanField(_("agrees to photographs"))
    signer_name = models.CharField(_("name typed by the patient"), max_length=200)
    signature = models.FileField(upload_to=_signature_path, editable=False)
    signature_sha256 = models.CharField(max_length=64, editable=False)
    signed_at = models.DateTimeField(editable=False)
    witness = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", editable=False
    )
    # The one-time token of the signing page that made this record: the same
    # page sent twice (a double tap) finds it instead of a second signature.
    submission_token = models.UUIDField(null=True, blank=True, unique=True, editable=False)

    class Meta:
        ordering = ["-signed_at", "-id"]
        verbose_name = _("signed consent")
        verbose_name_plural = _("signed consents")
        indexes = [models.Index(fields=["patient", "-signed_at"], name="consent_patient_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(text_sha256__regex=r"^[0-9a-f]{64}$")
                & Q(signature_sha256__regex=r"^[0-9a-f]{64}$"),
                name="consent_hashes_are_sha256",
            ),
            models.CheckConstraint(
                condition=~Q(signer_name=""), name="consent_signer_name_required"
            ),
            # A JSON array holding at least one object: never empty, never a bare string.
            models.CheckConstraint(
                condition=Q(sections__contains=[{}]), name="consent_sections_recorded"
            ),
        ]

    def __str__(self) -> str:
        return f"Consent {self.uuid}"

    def get_absolute_url(self) -> str:
        return reverse(
            "consent:signed_detail", kwargs={"patient": self.patient.uuid, "signed": self.uuid}
        )

    def clean(self) -> None:
        # Here rather than as a field validator: those skip an empty list.
        try:
            signed_sections_validate(self.sections)
        except ValidationError as exc:
            raise ValidationError({"sections": exc.error_list}) from None


class ConsentWithdrawal(models.Model):
    """The patient withdrew a consent: a new event, the signature stays as it was."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    signed_consent = models.OneToOneField(
        SignedConsent, on_delete=models.PROTECT, related_name="withdrawal"
    )
    reason = models.TextField(_("reason"), max_length=2000)
    withdrawn_at = models.DateTimeField(editable=False)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", editable=False
    )

    class Meta:
        verbose_name = _("consent withdrawal")
        verbose_name_plural = _("consent withdrawals")
        constraints = [
            models.CheckConstraint(condition=~Q(reason=""), name="consent_withdrawal_reason"),
        ]

    def __str__(self) -> str:
        return f"Withdrawal of {self.signed_consent_id}"


def _consent_pdf_path(instance: SignedConsentPDF, filename: str) -> str:
    # Named by migration 0001; the path itself is `SignedConsentPDF.file_name`.
    return instance.file_name()


class SignedConsentPDF(GeneratedDocument):
    """The PDF copy of a signed consent, made in the background through the
    clinic's one document pipeline (clinic.documents): its states, retries and
    failure are those of every generated document. Regenerating replaces the
    file at the same path: there is never a second copy."""

    signed_consent = models.OneToOneField(
        SignedConsent, on_delete=models.PROTECT, related_name="pdf", primary_key=True
    )

    document_label = "Signed consent PDF"

    class Meta(GeneratedDocument.Meta):
        verbose_name = _("signed consent PDF")
        verbose_name_plural = _("signed consent PDFs")

    def __str__(self) -> str:
        return f"PDF of {self.signed_consent_id} ({self.status})"

    def file_name(self) -> str:
        return f"consent/pdf/{self.signed_consent.uuid}.pdf"

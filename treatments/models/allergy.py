"""Allergy tests (given, then read 24 hours later) and the allergies they reveal."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Greatest
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from treatments.models.catalogue import Batch, Ingredient, Product

if TYPE_CHECKING:
    pass


ALLERGY_READING_DELAY = timedelta(hours=24)
# A test entered more than this after the time given was given on paper and
# entered late: it needs a reason, and the wait still runs from the entry.
ALLERGY_LATE_ENTRY_AFTER = timedelta(minutes=15)
# How far the time given may lie after the entry (clocks differ) or before it.
ALLERGY_GIVEN_AT_GRACE = timedelta(minutes=1)
ALLERGY_GIVEN_AT_MAX_AGE = timedelta(days=7)


class AllergyResult(models.TextChoices):
    NEGATIVE = "negative", _("Negative: no reaction")
    POSITIVE = "positive", _("Positive: reaction")


def _allergy_photo_path(instance: AllergyTest, filename: str) -> str:
    return f"allergy/{instance.uuid}.jpg"


class AllergyTest(models.Model):
    """A test micro-injection of the ingredients to be used, read 24 hours later.

    The row is written twice: when the test is given, then once when it is
    read. The database holds the rules: the 24-hour wait runs from the later of
    the time given and the time the test was entered (`read_due_at` =
    max(given, entered) + 24 h), so typing an earlier time given never
    shortens it; a test entered more than 15 minutes after it was given is a
    late entry and carries a reason; the reading cannot come before
    `read_due_at`; a positive result needs a description; what was given is
    never changed and a read test is never changed at all (trigger,
    migrations 0002 and 0006).
    """

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, related_name="allergy_tests"
    )
    ingredients = models.ManyToManyField(
        Ingredient, related_name="allergy_tests", verbose_name=_("ingredients tested")
    )
    products = models.ManyToManyField(
        Product, related_name="allergy_tests", blank=True, verbose_name=_("products tested")
    )
    batch = models.ForeignKey(
        Batch,
        on_delete=models.PROTECT,
        related_name="allergy_tests",
        null=True,
        blank=True,
        verbose_name=_("batch of the test substance"),
    )
    site = models.CharField(
        _("site"), max_length=100, help_text=_("For example: inner left forearm.")
    )
    given_at = models.DateTimeField(_("given at"))
    given_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", editable=False
    )
    # When the test was entered here, by the server's clock: never typed.
    entered_at = models.DateTimeField(_("entered at"), editable=False)
    late_entry_reason = models.CharField(
        _("reason for the late entry"),
        max_length=300,
        blank=True,
        help_text=_("Why the test is entered more than 15 minutes after it was given."),
    )
    read_due_at = models.DateTimeField(editable=False)

    result = models.CharField(_("result"), max_length=10, choices=AllergyResult.choices, blank=True)
    reaction = models.TextField(_("description of the reaction"), blank=True, max_length=2000)
    photo = models.FileField(upload_to=_allergy_photo_path, blank=True, editable=False)
    read_at = models.DateTimeField(null=True, blank=True, editable=False)
    read_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
        editable=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # The one-time token of the form that created this row: the same form sent
    # twice (a double click, a resent request) finds it instead of a second row.
    submission_token = models.UUIDField(null=True, blank=True, unique=True, editable=False)

    class Meta:
        ordering = ["-given_at", "-id"]
        verbose_name = _("allergy test")
        verbose_name_plural = _("allergy tests")
        indexes = [
            models.Index(fields=["patient", "-given_at"], name="allergy_patient_idx"),
            models.Index(
                fields=["read_due_at"], condition=Q(read_at__isnull=True), name="allergy_due_idx"
            ),
        ]
        constraints = [
            # The wait runs from the entry, or from the time given if later:
            # an earlier time typed never brings the reading forward.
            models.CheckConstraint(
                condition=Q(
                    read_due_at=Greatest(F("given_at"), F("entered_at")) + ALLERGY_READING_DELAY
                ),
                name="allergy_read_due_24h_after_entry",
            ),
            models.CheckConstraint(
                condition=Q(
                    given_at__lte=F("entered_at") + ALLERGY_GIVEN_AT_GRACE,
                    given_at__gte=F("entered_at") - ALLERGY_GIVEN_AT_MAX_AGE,
                ),
                name="allergy_given_within_week_before_entry",
                violation_error_message=_(
                    "The time given cannot be in the future or more than 7 days ago."
                ),
            ),
            # A late entry says why; a test entered on time has no reason.
            models.CheckConstraint(
                condition=(
                    Q(given_at__lt=F("entered_at") - ALLERGY_LATE_ENTRY_AFTER)
                    & ~Q(late_entry_reason="")
                )
                | (
                    Q(given_at__gte=F("entered_at") - ALLERGY_LATE_ENTRY_AFTER)
                    & Q(late_entry_reason="")
                ),
                name="allergy_late_entry_has_reason",
                violation_error_message=_(
                    "A test entered more than 15 minutes after it was given needs a reason."
                ),
            ),
            models.CheckConstraint(
                condition=Q(read_at__isnull=True) | Q(read_at__gte=F("read_due_at")),
                name="allergy_read_after_24h",
                violation_error_message=_("An allergy test is read 24 hours after it is given."),
            ),
            # Unread: no result. Read: a result, who and when.
            models.CheckConstraint(
                condition=Q(read_at__isnull=True, read_by__isnull=True, result="")
                | (Q(read_at__isnull=False, read_by__isnull=False) & ~Q(result="")),
                name="allergy_reading_complete",
            ),
            models.CheckConstraint(
                condition=~Q(result="positive") | ~Q(reaction=""),
                name="allergy_positive_described",
                violation_error_message=_("Describe the reaction seen."),
            ),
        ]

    def __str__(self) -> str:
        return f"Allergy test {self.uuid}"

    def get_absolute_url(self) -> str:
        return reverse(
            "treatments:allergy_test_detail",
            kwargs={"patient": self.patient.uuid, "test": self.uuid},
        )

    @property
    def is_read(self) -> bool:
        return self.read_at is not None

    @property
    def is_late_entry(self) -> bool:
        """Entered more than 15 minutes after it was given (given on paper)."""
        return self.given_at < self.entered_at - ALLERGY_LATE_ENTRY_AFTER


class PatientAllergy(models.Model):
    """An ingredient this patient must never be given. Made by a positive
    allergy test (or recorded from the history); blocks every later cocktail
    containing it."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, related_name="allergies"
    )
    ingredient = models.ForeignKey(
        Ingredient, on_delete=models.PROTECT, related_name="patient_allergies"
    )
    source_test = models.ForeignKey(
        AllergyTest,
        on_delete=models.PROTECT,
        related_name="allergies_found",
        null=True,
        blank=True,
        editable=False,
    )
    notes = models.TextField(_("notes"), blank=True, max_length=2000)
    recorded_at = models.DateTimeField(auto_now_add=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", editable=False
    )

    class Meta:
        ordering = ["ingredient__name"]
        verbose_name = _("allergy")
        verbose_name_plural = _("allergies")
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "ingredient"], name="allergy_once_per_ingredient"
            ),
        ]

    def __str__(self) -> str:
        return f"Allergy of {self.patient_id} to {self.ingredient_id}"

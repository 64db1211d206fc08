"""Reminders: the outbox of messages to patients, sent by the dispatch task."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from treatments.models.allergy import AllergyTest
from treatments.models.booking import Booking, TreatmentCourse

if TYPE_CHECKING:
    pass


# --- Reminders: the outbox ---------------------------------------------------------


class ReminderKind(models.TextChoices):
    SESSION = "session", _("session reminder")
    ALLERGY_READING = "allergy_reading", _("allergy reading due")
    COURSE_NEXT = "course_next", _("next session of the course not booked")
    MAINTENANCE = "maintenance", _("maintenance session due")


class ReminderChannel(models.TextChoices):
    EMAIL = "email", _("Email")
    SMS = "sms", _("Text message")
    TASK = "task", _("Task list")


class ReminderStatus(models.TextChoices):
    PLANNED = "planned", _("Planned")
    # Claimed by a dispatch tick and being sent, until `claimed_until`.
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


class Reminder(models.Model):
    """One message to send at one moment: PostgreSQL is the schedule.

    Rows are written in the same transaction as the booking (or test, or
    course) they are about. A beat tick claims the due ones in a short
    transaction (SELECT ... FOR UPDATE SKIP LOCKED, then status "sending"
    with a lease, `claimed_until`), sends them with no transaction open, and
    records each outcome in a second short transaction. A row whose lease
    ran out (its worker died mid-send) is claimed again. The unique constraints make a
    second row for the same purpose impossible, so a retry or a second beat
    can never plan a duplicate. `slot_starts_at` is the session time the
    reminder was planned for: moving the booking cancels the planned rows and
    plans new ones for the new time, and the log keeps both.
    """

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=20, choices=ReminderKind.choices)
    channel = models.CharField(max_length=10, choices=ReminderChannel.choices)
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, related_name="reminders"
    )
    booking = models.ForeignKey(
        Booking, on_delete=models.PROTECT, related_name="reminders", null=True, blank=True
    )
    allergy_test = models.ForeignKey(
        AllergyTest, on_delete=models.PROTECT, related_name="reminders", null=True, blank=True
    )
    course = models.ForeignKey(
        TreatmentCourse,
        on_delete=models.PROTECT,
        related_name="reminders",
        null=True,
        blank=True,
    )
    # The staff member to tell (the practitioner, for an allergy reading).
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="reminders",
        null=True,
        blank=True,
    )
    lead_minutes = models.PositiveIntegerField(default=0)
    slot_starts_at = models.DateTimeField(null=True, blank=True)
    # When it was meant to go, and when it will go (held past quiet hours).
    intended_at = models.DateTimeField()
    due_at = models.DateTimeField()
    status = models.CharField(
        max_length=10, choices=ReminderStatus.choices, default=ReminderStatus.PLANNED
    )
    # While "sending": no other tick takes the row before this moment.
    claimed_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    provider_message_id = models.CharField(max_length=200, blank=True)
    error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["due_at", "id"]
        verbose_name = _("reminder")
        verbose_name_plural = _("reminders")
        indexes = [
            models.Index(fields=["due_at"], condition=Q(status="planned"), name="reminder_due_idx"),
            models.Index(fields=["patient", "-due_at"], name="reminder_patient_idx"),
            models.Index(fields=["booking"], name="reminder_booking_idx"),
            # The follow-up list: the failed rows of the last days, not every row.
            models.Index(
                fields=["updated_at"],
                condition=Q(status="failed"),
                name="reminder_failed_idx",
            ),
            models.Index(
                fields=["claimed_until"],
                condition=Q(status="sending"),
                name="reminder_claimed_idx",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["booking", "kind", "lead_minutes", "slot_starts_at"],
                condition=Q(booking__isnull=False),
                name="reminder_once_per_booking_slot",
            ),
            models.UniqueConstraint(
                fields=["allergy_test", "kind"],
                condition=Q(allergy_test__isnull=False),
                name="reminder_once_per_allergy_test",
            ),
            models.UniqueConstraint(
                fields=["course", "kind", "intended_at"],
                condition=Q(course__isnull=False, booking__isnull=True),
                name="reminder_once_per_course_moment",
            ),
            models.CheckConstraint(
                condition=Q(due_at__gte=F("intended_at")) | Q(kind="session"),
                name="reminder_held_not_advanced",
            ),
            models.CheckConstraint(
                condition=~Q(status="sent") | Q(sent_at__isnull=False),
                name="reminder_sent_has_time",
            ),
            # A lease while being sent, and only then.
            models.CheckConstraint(
                condition=Q(status="sending", claimed_until__isnull=False)
                | (~Q(status="sending") & Q(claimed_until__isnull=True)),
                name="reminder_lease_while_sending",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} reminder {self.uuid} ({self.status})"

"""The patient register: identity, contact details, messaging preferences."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from phonenumber_field.modelfields import PhoneNumberField


class ReminderChannel(models.TextChoices):
    EMAIL = "email", _("Email")
    SMS = "sms", _("Text message (SMS)")
    NONE = "none", _("No reminders")


class Patient(models.Model):
    """A person the clinic treats. URLs carry `uuid`, never the sequential key."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    first_name = models.CharField(_("first name"), max_length=100)
    last_name = models.CharField(_("last name"), max_length=100)
    date_of_birth = models.DateField(_("date of birth"))
    email = models.EmailField(_("email"), blank=True)
    phone = PhoneNumberField(_("mobile phone"), blank=True)
    address = models.TextField(_("address"), blank=True, max_length=500)
    postcode = models.CharField(_("postcode"), max_length=12, blank=True)
    emergency_contact_name = models.CharField(_("emergency contact"), max_length=150, blank=True)
    emergency_contact_phone = PhoneNumberField(_("emergency contact phone"), blank=True)
    gp_details = models.CharField(
        _("GP (doctor) and practice"), max_length=200, blank=True, help_text=_("Optional.")
    )
    reminder_channel = models.CharField(
        _("reminders by"),
        max_length=10,
        choices=ReminderChannel.choices,
        default=ReminderChannel.EMAIL,
    )
    consents_to_messages = models.BooleanField(
        _("agrees to receive reminders and aftercare messages"), default=False
    )
    # Lower-cased name, email, phone digits and birth date, kept by the
    # services, so that one indexed column answers the search box.
    search_text = models.TextField(editable=False, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
        editable=False,
    )

    class Meta:
        ordering = ["last_name", "first_name", "id"]
        indexes = [models.Index(fields=["last_name", "first_name"], name="patient_name_idx")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(date_of_birth__gte="1900-01-01"),
                name="patient_born_after_1900",
                violation_error_message=_("Check the year: the date of birth is before 1900."),
            ),
            # A reminder channel needs the matching contact detail.
            models.CheckConstraint(
                condition=~models.Q(reminder_channel="sms") | ~models.Q(phone=""),
                name="patient_sms_needs_phone",
                violation_error_message=_("Text-message reminders need a mobile number."),
            ),
            models.CheckConstraint(
                condition=~models.Q(reminder_channel="email") | ~models.Q(email=""),
                name="patient_email_needs_address",
                violation_error_message=_("Email reminders need an email address."),
            ),
        ]

    def __str__(self) -> str:
        return self.full_name

    def get_absolute_url(self) -> str:
        return reverse("patients:detail", kwargs={"patient": self.uuid})

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"

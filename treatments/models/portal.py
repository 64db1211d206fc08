"""The patient portal: accounts, one-time sign-in tokens and the attempts
throttled on download and sign-in links.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from treatments.models.documents import SHA256_HEX, DownloadLink

if TYPE_CHECKING:
    pass


class PortalAccount(models.Model):
    """A patient's sign-in to the portal: a user with no staff role, tied to
    one patient record. Sign-in is by a one-time link sent by email."""

    patient = models.OneToOneField(
        "patients.Patient", on_delete=models.PROTECT, related_name="portal_account"
    )
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="portal_account"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("portal account")
        verbose_name_plural = _("portal accounts")

    def __str__(self) -> str:
        return f"Portal account of {self.patient_id}"


class PortalLoginToken(models.Model):
    """A one-time sign-in link for the portal (hash of the token only)."""

    account = models.ForeignKey(PortalAccount, on_delete=models.CASCADE, related_name="tokens")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("portal sign-in link")
        verbose_name_plural = _("portal sign-in links")
        constraints = [
            models.CheckConstraint(
                condition=Q(token_hash__regex=SHA256_HEX), name="portal_token_is_sha256"
            ),
        ]

    def __str__(self) -> str:
        return f"Portal sign-in link {self.pk}"


class LinkAttempt(models.Model):
    """A wrong token or date of birth at a public link page, by address (an
    IPv6 client by its /64, `clinic.proxies.address_key`): counted to slow
    down guessing (no patient data kept). A wrong date of birth names its
    download link too: a link has so many (LINK_WRONG_BIRTH_DATE_LIMIT)."""

    ip = models.GenericIPAddressField()
    link = models.ForeignKey(
        DownloadLink, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["ip", "at"], name="link_attempt_ip_idx")]

    def __str__(self) -> str:
        return f"Failed link attempt from {self.ip}"

"""Helpers for consent tests: drawn signatures and ready-made signed consents."""

from __future__ import annotations

import base64
import hashlib
import io
from typing import Any

from django.core.files.base import ContentFile
from django.utils import timezone
from PIL import Image, ImageDraw

from consent.models import ConsentFormVersion, DocumentStatus, SignedConsent, SignedConsentPDF
from consent.services import consent_sections, consent_text
from patients.models import Patient
from tests.factories import UserFactory


def png_bytes(
    width: int = 600, height: int = 200, *, ink: bool = True, mode: str = "RGBA"
) -> bytes:
    image = Image.new(mode, (width, height), (255, 255, 255, 0) if mode == "RGBA" else "white")
    if ink:
        draw = ImageDraw.Draw(image)
        draw.line([(20, 150), (120, 40), (220, 160), (320, 50), (420, 140)], fill="black", width=4)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def data_url(raw: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(raw).decode("ascii")


def drawn_signature() -> str:
    return data_url(png_bytes())


def signed_consent_for(
    *, patient: Patient, version: ConsentFormVersion, **extra: Any
) -> SignedConsent:
    """A signed consent written directly (as the service would), with its queued PDF row."""
    text = consent_text(version=version, photo_consent=True)
    png = png_bytes()
    signed = SignedConsent(
        patient=patient,
        version=version,
        text=text,
        text_sha256=hashlib.sha256(text.encode()).hexdigest(),
        sections=consent_sections(version=version, photo_consent=True),
        sections_confirmed=["procedure"],
        photo_consent=True,
        signer_name=patient.full_name,
        signature_sha256=hashlib.sha256(png).hexdigest(),
        signed_at=extra.pop("signed_at", None) or timezone.now(),
        witness=extra.pop("witness", None) or UserFactory(),
        **extra,
    )
    signed.signature.save(f"{signed.uuid}.png", ContentFile(png), save=False)
    signed.save()
    SignedConsentPDF.objects.create(
        signed_consent=signed, status=DocumentStatus.QUEUED, queued_at=timezone.now()
    )
    return signed

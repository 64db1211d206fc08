"""A signature picture that declares an enormous size is refused from its
header, before Pillow expands a pixel: a plain 400, what was typed kept,
nothing signed."""

from __future__ import annotations

import re
import struct
import zlib

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from clinic.models import User
from consent.models import ConsentFormVersion, SignedConsent, SignedConsentPDF
from consent.services import signature_png_clean
from patients.models import Patient
from tests.conftest import sign_in
from tests.consent.helpers import data_url
from tests.consent.test_views import sign_data
from tests.factories import ConsentFormFactory, ConsentFormVersionFactory, PatientFactory

pytestmark = pytest.mark.django_db


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_declaring(width: int, height: int) -> bytes:
    """A few dozen bytes whose header claims `width` x `height` RGBA pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("width", "height"),
    [(100_000, 100_000), (12_000, 12_000), (2_401, 100), (1_300, 1_300)],
    ids=["pillow-bomb-error", "pillow-bomb-warning", "too-wide", "too-many-pixels"],
)
def test_a_signature_declaring_too_many_pixels_is_refused_as_too_large(
    width: int, height: int
) -> None:
    with pytest.raises(ValidationError) as refused:
        signature_png_clean(data_url(png_declaring(width, height)))
    assert refused.value.code == "too_large"
    assert "too large" in refused.value.messages[0]


def test_a_signature_of_100000_pixels_square_gets_a_400_keeps_the_typing_and_signs_nothing(
    practitioner: User,
) -> None:
    patient: Patient = PatientFactory(first_name="Amelia", last_name="Hart")
    version: ConsentFormVersion = ConsentFormVersionFactory(form=ConsentFormFactory())
    client = sign_in(Client(), practitioner)
    url = reverse("consent:sign", kwargs={"patient": patient.uuid, "form": version.form.uuid})
    data = sign_data(
        version,
        signer_name="Amelia Typed-Name",
        signature=data_url(png_declaring(100_000, 100_000)),
    )
    response = client.post(url, data)
    assert response.status_code == 400
    body = response.content.decode()
    assert "The signature picture is too large. Clear it and sign again." in body
    assert 'value="Amelia Typed-Name"' in body
    assert re.search(r'<input[^>]*name="witnessed"[^>]*checked', body)
    assert SignedConsent.objects.count() == 0
    assert SignedConsentPDF.objects.count() == 0

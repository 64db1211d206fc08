"""What an uploaded picture may not carry into storage: no EXIF, no XMP, no
JPEG comment, no PNG text chunk; and a picture declaring a huge size is a
plain refusal, never a server error."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, override_settings
from django.urls import reverse
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from clinic.models import User
from patients.images import ImageRejectedError, clean_photo
from patients.models import Photo
from tests.conftest import sign_in
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

SENTINEL = "SENTINEL-12-Harley-Street"


@pytest.fixture(autouse=True)
def media_root(tmp_path: Path):
    with override_settings(
        STORAGES={
            **settings.STORAGES,
            "default": {
                "BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": str(tmp_path)},
            },
        }
    ):
        yield tmp_path


def jpeg_with_comment_exif_and_xmp() -> bytes:
    image = Image.new("RGB", (320, 240), (180, 140, 120))
    exif = Image.Exif()
    exif[0x010E] = SENTINEL  # ImageDescription
    exif[0x9286] = SENTINEL  # UserComment (written as plain bytes by Pillow)
    xmp = f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description>{SENTINEL}</rdf:Description>'
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, comment=SENTINEL.encode(), xmp=xmp.encode())
    return out.getvalue()


def png_with_text_chunks() -> bytes:
    image = Image.new("RGB", (320, 240), (90, 140, 200))
    info = PngInfo()
    info.add_text("comment", SENTINEL)  # lands in Pillow's info["comment"]
    info.add_text("Description", SENTINEL)  # tEXt
    info.add_itxt("Address", SENTINEL, lang="en", tkey="Address")  # iTXt
    info.add_text("Location", SENTINEL, zip=True)  # zTXt (compressed)
    out = io.BytesIO()
    image.save(out, "PNG", pnginfo=info)
    return out.getvalue()


def test_the_sample_files_do_carry_the_sentinel() -> None:
    jpeg = jpeg_with_comment_exif_and_xmp()
    assert jpeg.count(SENTINEL.encode()) >= 3  # comment, EXIF, XMP
    with Image.open(io.BytesIO(jpeg)) as image:
        assert image.info["comment"] == SENTINEL.encode()
    with Image.open(io.BytesIO(png_with_text_chunks())) as image:
        image.load()
        assert image.text["Description"] == SENTINEL
        assert image.text["Location"] == SENTINEL


@pytest.mark.parametrize(
    ("content", "name"),
    [(jpeg_with_comment_exif_and_xmp(), "face.jpg"), (png_with_text_chunks(), "face.png")],
    ids=["jpeg-comment-exif-xmp", "png-text-itxt-ztxt"],
)
@time_machine.travel("2026-01-06 10:00 +00:00", tick=False)
def test_a_stored_photo_keeps_no_metadata_typed_into_the_original(
    practitioner: User, media_root: Path, content: bytes, name: str
) -> None:
    patient = PatientFactory()
    client = sign_in(Client(), practitioner)
    response = client.post(
        reverse("patients:photos", kwargs={"patient": patient.uuid}),
        {
            "area": "face",
            "kind": "before",
            "taken_on": "2026-01-05",
            "image": SimpleUploadedFile(name, content, content_type="image/jpeg"),
        },
    )
    assert response.status_code == 302
    stored = (media_root / Photo.objects.get().image.name).read_bytes()
    assert SENTINEL.encode() not in stored
    with Image.open(io.BytesIO(stored)) as image:
        assert "comment" not in image.info
        assert "exif" not in image.info
        assert "xmp" not in image.info


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def test_a_photo_declaring_100000_pixels_square_is_refused_plainly() -> None:
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _chunk(b"IEND", b"")
    )
    with pytest.raises(ImageRejectedError) as refused:
        clean_photo(io.BytesIO(bomb), size=len(bomb))
    assert refused.value.code == "too_large"
    assert "too many pixels" in refused.value.message

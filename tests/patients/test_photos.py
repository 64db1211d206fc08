"""Photos: only real JPEG/PNG, metadata stripped, private, served with checks."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, override_settings
from django.urls import reverse
from PIL import Image

from clinic.models import AuditAction, AuditEvent, User
from patients.models import Patient, Photo
from tests.conftest import sign_in
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db


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


def jpeg_with_gps() -> bytes:
    image = Image.new("RGB", (640, 480), (200, 120, 90))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0110] = "PhoneModel 12"  # Model
    exif[0x8825] = {1: "N", 2: (51.0, 27.0, 0.0), 3: "W", 4: (2.0, 35.0, 0.0)}  # GPS position
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


def png_bytes(size: tuple[int, int] = (300, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", size, (10, 200, 10, 128)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def patient() -> Patient:
    return PatientFactory()


def upload(client: Client, patient: Patient, content: bytes, name: str = "face.jpg", **extra: str):
    data = {
        "area": "face",
        "kind": "before",
        "taken_on": "2026-11-01",
        "image": SimpleUploadedFile(name, content, content_type="image/jpeg"),
        **extra,
    }
    return client.post(reverse("patients:photos", kwargs={"patient": patient.uuid}), data)


def test_a_jpeg_is_stored_without_any_metadata(
    patient: Patient, practitioner: User, client: Client, media_root: Path
) -> None:
    original = jpeg_with_gps()
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(0x8825)  # the test file has GPS
    response = upload(sign_in(client, practitioner), patient, original)
    assert response.status_code == 302
    photo = Photo.objects.get()
    stored = (media_root / photo.image.name).read_bytes()
    with Image.open(io.BytesIO(stored)) as image:
        assert image.format == "JPEG"
        assert len(image.getexif()) == 0
        assert "exif" not in image.info
    assert b"PhoneModel" not in stored
    assert photo.image.name == f"photos/{photo.uuid}.jpg"  # nothing from the original name
    assert (
        AuditEvent.objects.filter(action=AuditAction.CREATE, object_type="patients.photo").count()
        == 1
    )


def test_a_png_is_accepted_and_re_encoded(
    patient: Patient, practitioner: User, client: Client
) -> None:
    assert (
        upload(sign_in(client, practitioner), patient, png_bytes(), "scan.png").status_code == 302
    )
    assert Photo.objects.get().width == 300


def mpo_with_metadata() -> bytes:
    """A multi-picture JPEG as many phones write it: the photo, then a
    second picture, with the camera's EXIF."""
    photo = Image.new("RGB", (640, 480), (200, 30, 30))
    second = Image.new("RGB", (320, 240), (30, 30, 200))
    exif = Image.Exif()
    exif[0x0110] = "PhoneModel 12"  # Model
    buffer = io.BytesIO()
    photo.save(buffer, "MPO", save_all=True, append_images=[second], exif=exif)
    return buffer.getvalue()


def test_a_multi_picture_jpeg_keeps_its_first_picture_as_a_plain_jpeg(
    patient: Patient, practitioner: User, client: Client, media_root: Path
) -> None:
    original = mpo_with_metadata()
    with Image.open(io.BytesIO(original)) as probe:
        assert (probe.format, probe.n_frames) == ("MPO", 2)  # what phones send
    with time_machine.travel(datetime(2026, 11, 10, 10, tzinfo=UTC), tick=False):
        response = upload(sign_in(client, practitioner), patient, original)
    assert response.status_code == 302
    photo = Photo.objects.get()
    stored = (media_root / photo.image.name).read_bytes()
    with Image.open(io.BytesIO(stored)) as image:
        assert image.format == "JPEG"
        assert getattr(image, "n_frames", 1) == 1
        assert image.size == (640, 480)
        red, _green, blue = image.getpixel((10, 10))
        assert red > 150 > blue
        assert len(image.getexif()) == 0
    assert b"PhoneModel" not in stored


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (b"<html><script>alert(1)</script></html>", "photo.jpg", "not a JPEG or PNG"),
        (
            b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
            "photo.jpg",
            "not a JPEG or PNG",
        ),
        (b"GIF89a" + b"\x00" * 100, "photo.gif", "not a JPEG or PNG"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 50, "broken.jpg", "not a JPEG or PNG"),
        (b"", "empty.jpg", "empty"),
    ],
)
def test_files_that_are_not_photos_are_refused(
    patient: Patient, practitioner: User, client: Client, content: bytes, name: str, message: str
) -> None:
    response = upload(sign_in(client, practitioner), patient, content, name)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert Photo.objects.count() == 0


def test_a_decompression_bomb_is_refused(
    patient: Patient, practitioner: User, client: Client
) -> None:
    bomb = png_bytes((10_000, 10_000))  # 100 megapixels, a few hundred kilobytes on disk
    response = upload(sign_in(client, practitioner), patient, bomb, "bomb.png")
    assert response.status_code == 400
    assert "too many pixels" in response.content.decode()


def test_a_photo_over_15_mb_is_refused(
    patient: Patient, practitioner: User, client: Client
) -> None:
    big = png_bytes() + b"\x00" * (15 * 1024 * 1024)
    response = upload(sign_in(client, practitioner), patient, big, "big.png")
    assert response.status_code == 400
    assert "larger than 15 MB" in response.content.decode()


def test_a_200_mb_upload_is_refused_before_it_is_read(
    patient: Patient, practitioner: User, client: Client
) -> None:
    sign_in(client, practitioner)
    response = client.generic(
        "POST",
        reverse("patients:photos", kwargs={"patient": patient.uuid}),
        data=b"x" * 1024,
        content_type="multipart/form-data; boundary=zzz",
        CONTENT_LENGTH=str(200 * 1024 * 1024),
    )
    assert response.status_code == 413
    assert "larger than 15 MB" in response.content.decode()


def test_photos_are_served_only_through_the_checked_view(
    patient: Patient, practitioner: User, receptionist: User, client: Client, media_root: Path
) -> None:
    upload(sign_in(client, practitioner), patient, jpeg_with_gps())
    photo = Photo.objects.get()
    url = reverse("patients:photo_file", kwargs={"patient": patient.uuid, "photo": photo.uuid})
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in response["Cache-Control"]
    assert (
        AuditEvent.objects.filter(action=AuditAction.VIEW, object_id=str(photo.uuid)).count() == 1
    )
    # No public media URL exists, and reception is refused.
    assert client.get(f"/media/{photo.image.name}").status_code == 404
    assert sign_in(Client(), receptionist).get(url).status_code == 403


def test_another_patients_photo_is_not_found_under_this_patient(
    patient: Patient, practitioner: User, client: Client
) -> None:
    other = PatientFactory()
    upload(sign_in(client, practitioner), other, jpeg_with_gps())
    photo = Photo.objects.get()
    url = reverse("patients:photo_file", kwargs={"patient": patient.uuid, "photo": photo.uuid})
    assert client.get(url).status_code == 404
    compare = reverse("patients:photo_compare", kwargs={"patient": patient.uuid})
    response = client.get(compare, {"a": photo.uuid, "b": photo.uuid}, follow=True)
    assert "Choose two photos of this patient." in response.content.decode()


def test_two_photos_of_one_area_compare_side_by_side(
    patient: Patient, practitioner: User, client: Client
) -> None:
    sign_in(client, practitioner)
    upload(client, patient, jpeg_with_gps(), kind="before", taken_on="2026-09-01")
    upload(client, patient, png_bytes(), "after.png", kind="after", taken_on="2026-11-01")
    upload(client, patient, png_bytes(), "neck.png", area="neck")
    before, after = Photo.objects.filter(area="face").order_by("taken_on")
    neck = Photo.objects.get(area="neck")
    compare = reverse("patients:photo_compare", kwargs={"patient": patient.uuid})
    page = client.get(compare, {"a": before.uuid, "b": after.uuid})
    assert page.status_code == 200
    assert [p.kind for p in page.context["pair"]] == ["before", "after"]
    response = client.get(compare, {"a": before.uuid, "b": neck.uuid}, follow=True)
    assert "same area" in response.content.decode()
    response = client.get(compare, {"a": "nonsense"}, follow=True)
    assert "Choose two photos" in response.content.decode()


def test_a_future_date_is_refused(patient: Patient, practitioner: User, client: Client) -> None:
    response = upload(
        sign_in(client, practitioner), patient, jpeg_with_gps(), taken_on="2999-01-01"
    )
    assert response.status_code == 400
    assert "cannot be in the future" in response.content.decode()


@pytest.mark.parametrize("count", [1, 6])
def test_photo_page_has_a_fixed_query_budget(
    patient: Patient, practitioner: User, client: Client, count: int, django_assert_max_num_queries
) -> None:
    sign_in(client, practitioner)
    for _ in range(count):
        upload(client, patient, png_bytes(), "p.png")
    with django_assert_max_num_queries(8):
        assert (
            client.get(reverse("patients:photos", kwargs={"patient": patient.uuid})).status_code
            == 200
        )

"""One person, one spelling: names stored composed (NFC) however typed, the
duplicate warning seeing a first and last name swapped, names written in
Chinese, Japanese or Korean shown family name first with no space, and the
aftercare sheet kept to one page for any length of name."""

from __future__ import annotations

import importlib
import subprocess
import unicodedata
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.apps import apps as django_apps
from django.conf import settings
from django.test import Client, override_settings
from django.urls import reverse

from clinic.models import User
from clinic.names import person_name
from patients.models import Patient
from patients.services import PossibleDuplicateError, patient_create, patient_update
from tests.clinic_settings_support import settings_saved
from tests.conftest import sign_in
from tests.factories import PatientFactory, UserFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


@pytest.fixture(autouse=True)
def frozen_clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def zoe(receptionist: User) -> Patient:
    return patient_create(
        created_by=receptionist,
        first_name="Zoë",
        last_name="Müller",
        date_of_birth=date(1985, 3, 14),
        email="zoe.muller@example.org",
        reminder_channel="email",
    )


# --- The duplicate warning sees swapped names --------------------------------------------


def test_a_registration_with_first_and_last_name_swapped_is_warned_of_the_same_person(
    client: Client, zoe: Patient, receptionist: User
) -> None:
    sign_in(client, receptionist)
    page = client.get(reverse("patients:create")).content.decode()
    token = page.split('name="registration_token" value="')[1].split('"')[0]

    response = client.post(
        reverse("patients:create"),
        {
            "first_name": "Muller",
            "last_name": "Zoe",
            "date_of_birth": "1985-03-14",
            "reminder_channel": "none",
            "registration_token": token,
        },
    )

    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-testid="possible-duplicates"' in body
    assert zoe.get_absolute_url() in body
    assert Patient.objects.count() == 1


def test_swapped_names_born_another_day_are_not_the_same_person(
    zoe: Patient, receptionist: User
) -> None:
    other = patient_create(
        created_by=receptionist,
        first_name="Muller",
        last_name="Zoe",
        date_of_birth=date(1985, 3, 15),
        reminder_channel="none",
    )
    assert other.pk != zoe.pk
    with pytest.raises(PossibleDuplicateError):
        patient_create(
            created_by=receptionist,
            first_name="MÜLLER",
            last_name="zoë",
            date_of_birth=date(1985, 3, 14),
            reminder_channel="none",
        )


# --- Names stored composed ---------------------------------------------------------------


def test_a_name_typed_decomposed_is_stored_composed(client: Client, receptionist: User) -> None:
    sign_in(client, receptionist)
    page = client.get(reverse("patients:create")).content.decode()
    token = page.split('name="registration_token" value="')[1].split('"')[0]

    response = client.post(
        reverse("patients:create"),
        {
            "first_name": nfd("Renée"),
            "last_name": nfd("Ångström"),
            "date_of_birth": "1960-05-05",
            "emergency_contact_name": nfd("Søren Ångström"),
            "reminder_channel": "none",
            "registration_token": token,
        },
    )

    assert response.status_code == 302
    patient = Patient.objects.get()
    assert (patient.first_name, patient.last_name) == ("Renée", "Ångström")
    assert patient.first_name == unicodedata.normalize("NFC", patient.first_name)
    assert patient.emergency_contact_name == "Søren Ångström"


def test_an_edit_sending_the_same_name_decomposed_changes_nothing(
    zoe: Patient, receptionist: User
) -> None:
    saved = patient_update(
        patient=zoe, updated_by=receptionist, expected_version=1, first_name=nfd("Zoë")
    )
    assert saved.version == 1  # the same name: no change, no new version
    saved = patient_update(
        patient=zoe, updated_by=receptionist, expected_version=1, last_name=nfd("Müller-Lee")
    )
    assert saved.last_name == "Müller-Lee"
    assert Patient.objects.get(pk=zoe.pk).last_name == "Müller-Lee"


def test_the_migration_composes_names_stored_decomposed() -> None:
    patient = PatientFactory(first_name="Zoë", last_name="Müller")
    staff = UserFactory(first_name="Hélène", last_name="Bélanger")
    Patient.objects.filter(pk=patient.pk).update(
        first_name=nfd("Zoë"), last_name=nfd("Müller"), gp_details=nfd("Dr Ångström")
    )
    User.objects.filter(pk=staff.pk).update(first_name=nfd("Hélène"))
    untouched = PatientFactory(first_name="Amelia", last_name="Hart")
    version_before = Patient.objects.get(pk=untouched.pk).version
    migration = importlib.import_module("patients.migrations.0012_names_nfc")

    migration.names_to_nfc(django_apps, None)

    patient.refresh_from_db()
    staff.refresh_from_db()
    assert (patient.first_name, patient.last_name) == ("Zoë", "Müller")
    assert patient.first_name == unicodedata.normalize("NFC", "Zoë")
    assert patient.gp_details == "Dr Ångström"
    assert staff.first_name == unicodedata.normalize("NFC", "Hélène")
    assert Patient.objects.get(pk=untouched.pk).version == version_before


# --- The display name --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "last", "shown"),
    [
        ("小明", "王", "王小明"),
        ("太郎", "山田", "山田太郎"),
        ("민준", "김", "김민준"),
        ("さくら", "佐々木", "佐々木さくら"),
        ("Zoë", "Müller", "Zoë Müller"),
        ("Γιώργος", "Παπαδόπουλος", "Γιώργος Παπαδόπουλος"),
        ("Ming", "王", "Ming 王"),  # mixed scripts: as typed
        ("", "王", "王"),
    ],
)
def test_a_name_in_chinese_japanese_or_korean_is_shown_family_name_first(
    first: str, last: str, shown: str
) -> None:
    assert person_name(first, last) == shown
    assert PatientFactory.build(first_name=first, last_name=last).full_name == shown


def test_pages_show_a_cjk_name_family_name_first(client: Client, receptionist: User) -> None:
    patient = PatientFactory(first_name="小明", last_name="王")
    sign_in(client, receptionist)
    body = client.get(patient.get_absolute_url()).content.decode()
    assert "王小明" in body
    assert "小明 王" not in body


# --- The aftercare sheet stays on one page whatever the name -------------------------------


LONG_NAME = (
    "Bartholomew Maximilian Alexander Fitzgerald",
    (
        "Wolfeschlegelsteinhausenbergerdorffvoralternwarengewissenhaftschaferswessenschafe"
        "warenwohlgepflegeundsorgfaltigkeitbeschutzen"
    )[:100],
)


def _pages(data: bytes, tmp_path: Path) -> int:
    path = tmp_path / "sheet.pdf"
    path.write_bytes(data)
    info = subprocess.run(
        ["pdfinfo", str(path)], capture_output=True, check=True, text=True, timeout=60
    ).stdout
    return int(next(line for line in info.splitlines() if line.startswith("Pages:")).split()[1])


@pytest.fixture
def media_root(tmp_path: Path) -> Iterator[Path]:
    storages = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "media")},
        },
    }
    with override_settings(STORAGES=storages, MEDIA_ROOT=str(tmp_path / "media")):
        yield tmp_path


def test_the_aftercare_sheet_stays_on_one_page_with_a_140_character_name(
    media_root: Path, settings: Any, practitioner: User, receptionist: User
) -> None:
    """Every demo sheet, with every area of its protocol and the next session
    booked, at the longest; the PDFs are left in the test's directory to look at."""
    from tests.treatments.test_aftercare import (
        book_next,
        completed_session,
        file_bytes,
        ready_document,
    )
    from treatments.demo import catalogue as demo_catalogue
    from treatments.models import Protocol

    settings_saved(clinic_phone="+442079460000", clinic_address="1 High Street, London")
    first, last = LONG_NAME
    assert len(f"{first} {last}") >= 140
    demo_catalogue.seed(practitioner=practitioner, reception=receptionist)
    pages = {}
    for protocol in Protocol.objects.select_related("aftercare_sheet").order_by("name"):
        record = completed_session(
            patient=PatientFactory(first_name=first, last_name=last, email="p@example.org"),
            protocol=protocol,
            areas=tuple(protocol.default_areas),
        )
        book_next(record)
        data = file_bytes(ready_document(record))
        (media_root / f"{protocol.pk}.pdf").write_bytes(data)
        pages[protocol.name] = _pages(data, media_root)

    assert pages == dict.fromkeys(pages, 1)


def test_the_aftercare_sheet_prints_a_chinese_name_family_name_first(media_root: Path) -> None:
    from tests.treatments.test_aftercare import completed_session, file_bytes, ready_document

    patient = PatientFactory(first_name="小明", last_name="王", email="p@example.org")
    data = file_bytes(ready_document(completed_session(patient=patient)))
    (media_root / "chinese.pdf").write_bytes(data)

    text = subprocess.run(
        ["pdftotext", str(media_root / "chinese.pdf"), "-"],
        capture_output=True,
        check=True,
        text=True,
        timeout=60,
    ).stdout
    assert "王小明" in text
    assert "小明 王" not in text

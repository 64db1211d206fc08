"""Erasure and retention (UK GDPR Art. 17, 5(1)(e)): a request to erase
erases the contact details used for messages at once and keeps the clinical
record for the retention period (8 years after the last treatment for
adults; the 25th birthday, or the 26th if treated at 17, for children), told
to the manager with the reason; when the period ends the daily run
anonymises the record and leaves the audit trail's references intact. Each
step is audited and in the patient's access history."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.conf import settings
from django.test import Client, override_settings
from django.urls import reverse
from PIL import Image

from clinic.models import AuditAction, AuditEvent, User
from patients.images import clean_photo
from patients.models import Patient, Photo
from patients.services import photo_add
from tests.conftest import sign_in
from tests.factories import PatientFactory
from treatments.models import (
    AdverseEvent,
    Booking,
    BookingStatus,
    ErasureRequest,
    ErasureStatus,
    Reminder,
    ReminderStatus,
    Room,
    SessionRecord,
)
from treatments.services.data_rights import (
    erasure_request_record,
    retention_anonymise_due,
    retention_for,
)

pytestmark = pytest.mark.django_db

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=LONDON)
LAST_TREATED = date(2020, 3, 14)


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture(autouse=True)
def media_root(tmp_path: Path) -> Iterator[Path]:
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


def treated(
    patient: Patient, practitioner: User, day: date, *, event: bool = False, hour: int = 10
) -> Booking:
    """A completed session on `day` at `hour` (clinic time)."""
    starts = datetime(day.year, day.month, day.day, hour, 0, tzinfo=LONDON)
    booking = Booking.objects.create(
        patient=patient,
        practitioner=practitioner,
        room=Room.objects.create(name=f"Room {patient.pk} {day}"),
        protocol=_protocol(),
        starts_at=starts,
        ends_at=starts + timedelta(minutes=45),
        status=BookingStatus.COMPLETED,
        created_by=practitioner,
    )
    record = SessionRecord.objects.create(
        booking=booking,
        numbing_cream=False,
        completed_at=booking.ends_at,
        completed_by=practitioner,
    )
    if event:
        AdverseEvent.objects.create(
            session=record,
            effect="bruising",
            severity="mild",
            onset=booking.ends_at,
            recorded_by=practitioner,
        )
    return booking


def _protocol() -> object:
    from tests.factories import ProtocolFactory
    from treatments.models import Protocol

    return Protocol.objects.first() or ProtocolFactory()


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 90)).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture
def adult(practitioner: User) -> Patient:
    patient = PatientFactory(
        first_name="Amelia",
        last_name="Hart",
        date_of_birth=date(1980, 5, 2),
        email="amelia@example.org",
        phone="+447911000001",
        address="1 High Street",
        postcode="N1 1AA",
        emergency_contact_name="Tom Hart",
        gp_details="Dr Rees",
        consents_to_messages=True,
    )
    treated(patient, practitioner, LAST_TREATED)
    return patient


def erase(patient: Patient, by: User) -> ErasureRequest:
    return erasure_request_record(patient=patient, recorded_by=by, received_on=NOW.date())


# --- At once ------------------------------------------------------------------------------


def test_a_request_to_erase_erases_contact_details_and_messaging_consent_and_keeps_the_record(
    adult: Patient, practitioner: User
) -> None:
    Reminder.objects.create(
        kind="maintenance",
        channel="email",
        patient=adult,
        lead_minutes=0,
        intended_at=NOW + timedelta(days=3),
        due_at=NOW + timedelta(days=3),
    )
    erasure = erase(adult, practitioner)
    adult.refresh_from_db()
    assert (adult.email, str(adult.phone), adult.reminder_channel) == ("", "", "none")
    assert adult.consents_to_messages is False
    assert "amelia@example.org" not in adult.search_text
    # The clinical record and the identity stay.
    assert adult.first_name == "Amelia"
    assert SessionRecord.objects.filter(booking__patient=adult).count() == 1
    assert Reminder.objects.get(patient=adult).status == ReminderStatus.CANCELLED
    assert set(erasure.erased_fields) == {
        "email",
        "phone",
        "reminder_channel",
        "consents_to_messages",
    }
    assert erasure.retain_until == date(2028, 3, 14)
    assert "8 years after the last treatment (Sat 14 Mar 2020)" in erasure.retention_reason
    assert "17(3)(c) and (h)" in erasure.retention_reason
    events = AuditEvent.objects.filter(patient_ref=adult.uuid)
    assert {(e.action, e.object_type) for e in events} >= {
        (AuditAction.CREATE, "treatments.erasurerequest"),
        (AuditAction.UPDATE, "patients.patient"),
    }
    changed = events.get(action=AuditAction.UPDATE, object_type="patients.patient")
    assert set(changed.changed_fields) == set(erasure.erased_fields)


def test_a_second_request_while_one_is_kept_is_refused(adult: Patient, practitioner: User) -> None:
    from treatments.services.data_rights import ErasureRefusedError

    erase(adult, practitioner)
    with pytest.raises(ErasureRefusedError):
        erase(adult, practitioner)
    assert ErasureRequest.objects.filter(patient=adult).count() == 1


# --- Retention periods --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("born", "treated_on", "until"),
    [
        # An adult: 8 years after the last treatment.
        (date(1980, 5, 2), date(2020, 3, 14), date(2028, 3, 14)),
        # Treated at 16: until the 25th birthday (later than 8 years on).
        (date(2004, 6, 1), date(2020, 9, 1), date(2029, 6, 1)),
        # Treated at 17: until the 26th birthday.
        (date(2003, 6, 1), date(2020, 9, 1), date(2029, 6, 1)),
        # Treated at 17 a day before turning 18: still the 26th birthday.
        (date(2002, 9, 2), date(2020, 9, 1), date(2028, 9, 2)),
        # Treated on the 18th birthday: an adult.
        (date(2002, 9, 1), date(2020, 9, 1), date(2028, 9, 1)),
    ],
)
def test_the_retention_follows_the_age_at_the_last_treatment(
    born: date, treated_on: date, until: date, practitioner: User
) -> None:
    patient = PatientFactory(date_of_birth=born)
    treated(patient, practitioner, treated_on)
    assert retention_for(patient, today=NOW.date()).retain_until == until


def test_the_retention_runs_from_the_last_treatment(adult: Patient, practitioner: User) -> None:
    treated(adult, practitioner, date(2022, 1, 10))
    assert retention_for(adult, today=NOW.date()).retain_until == date(2030, 1, 10)


# --- Anonymisation at the end ------------------------------------------------------------


def _run_on(day: date, capture: Any = None) -> dict[str, int]:
    with time_machine.travel(datetime(day.year, day.month, day.day, 3, 0, tzinfo=LONDON)):
        if capture is None:
            return retention_anonymise_due()
        # Files are deleted once the anonymisation commits.
        with capture(execute=True):
            return retention_anonymise_due()


def test_the_record_is_anonymised_the_day_after_the_retention_ends_not_before(
    adult: Patient, practitioner: User, django_capture_on_commit_callbacks: Any
) -> None:
    photo_add(
        patient=adult,
        uploaded_by=practitioner,
        area="face",
        kind="before",
        taken_on=NOW.date(),
        image=clean_photo(io.BytesIO(jpeg()), size=len(jpeg())),
    )
    photo_file = Path(Photo.objects.get(patient=adult).image.path)
    assert photo_file.exists()
    erasure = erase(adult, practitioner)
    trail_before = list(
        AuditEvent.objects.filter(patient_ref=adult.uuid).values_list("pk", flat=True)
    )
    assert erasure.retain_until == date(2028, 3, 14)

    assert _run_on(date(2028, 3, 14)) == {"anonymised": 0, "postponed": 0}
    adult.refresh_from_db()
    assert adult.first_name == "Amelia"

    assert _run_on(date(2028, 3, 15), django_capture_on_commit_callbacks) == {
        "anonymised": 1,
        "postponed": 0,
    }
    adult.refresh_from_db()
    assert (adult.first_name, adult.last_name) == ("Anonymised", "record")
    assert adult.date_of_birth == date(1900, 1, 1)
    assert (adult.address, adult.postcode, adult.emergency_contact_name, adult.gp_details) == (
        "",
        "",
        "",
        "",
    )
    assert "amelia" not in adult.search_text
    assert "hart" not in adult.search_text
    assert not Photo.objects.filter(patient=adult).exists()
    assert not photo_file.exists()
    # The clinical record stays, anonymous, and so does the whole trail, naming the record.
    assert SessionRecord.objects.filter(booking__patient=adult).count() == 1
    trail_after = AuditEvent.objects.filter(patient_ref=adult.uuid)
    assert set(trail_before) < set(trail_after.values_list("pk", flat=True))
    done = trail_after.get(action=AuditAction.UPDATE, actor_label="scheduled task")
    assert {"first_name", "date_of_birth", "photos"} <= set(done.changed_fields)
    erasure.refresh_from_db()
    assert erasure.status == ErasureStatus.ANONYMISED

    # Idempotent: a second run does nothing and writes nothing.
    count = AuditEvent.objects.count()
    assert _run_on(date(2028, 3, 16)) == {"anonymised": 0, "postponed": 0}
    assert AuditEvent.objects.count() == count


def test_a_patient_with_an_upcoming_booking_or_an_open_side_effect_is_not_anonymised(
    practitioner: User,
) -> None:
    returning = PatientFactory(date_of_birth=date(1980, 1, 1))
    treated(returning, practitioner, LAST_TREATED)
    erase(returning, practitioner)
    starts = datetime(2028, 4, 2, 10, 0, tzinfo=LONDON)
    Booking.objects.create(
        patient=returning,
        practitioner=practitioner,
        room=Room.objects.create(name="Upcoming"),
        protocol=_protocol(),
        starts_at=starts,
        ends_at=starts + timedelta(minutes=45),
        status=BookingStatus.BOOKED,
        created_by=practitioner,
    )
    unresolved = PatientFactory(date_of_birth=date(1980, 1, 1))
    treated(unresolved, practitioner, LAST_TREATED, event=True, hour=14)
    erase(unresolved, practitioner)

    assert _run_on(date(2028, 3, 15)) == {"anonymised": 0, "postponed": 2}
    for patient in (returning, unresolved):
        patient.refresh_from_db()
        assert patient.first_name != "Anonymised"
        assert ErasureRequest.objects.get(patient=patient).status == ErasureStatus.RETAINED


# --- The page -----------------------------------------------------------------------------


def test_reception_cannot_record_a_request_to_erase(
    adult: Patient, receptionist: User, client: Client
) -> None:
    sign_in(client, receptionist)
    url = reverse("treatments:erasure_create", kwargs={"patient": adult.uuid})
    response = client.post(url, {"received_on": "23/11/2026", "confirm": "on"})
    assert response.status_code == 403
    adult.refresh_from_db()
    assert adult.email == "amelia@example.org"


def test_the_manager_records_a_request_and_is_told_until_when_and_why(
    adult: Patient, manager: User, client: Client
) -> None:
    sign_in(client, manager)
    page = reverse("treatments:data_rights", kwargs={"patient": adult.uuid})
    url = reverse("treatments:erasure_create", kwargs={"patient": adult.uuid})
    form = client.get(page)
    assert form.status_code == 200
    missing = client.post(url, {"received_on": "", "notes": "By email"})
    assert missing.status_code == 400
    assert b"By email" in missing.content  # nothing typed is lost
    adult.refresh_from_db()
    assert adult.email == "amelia@example.org"
    token = form.context["erasure_form"]["submission_token"].value()
    data = {"received_on": "23/11/2026", "confirm": "on", "submission_token": token}
    response = client.post(url, data)
    assert response.status_code == 302
    shown = client.get(page)
    assert b"8 years after the last treatment" in shown.content
    assert b"Tue 14 Mar 2028" in shown.content
    # The same form sent twice records one request.
    assert client.post(url, data).status_code in (302, 409)
    assert ErasureRequest.objects.filter(patient=adult).count() == 1
    history = client.get(reverse("patients:access_history", kwargs={"patient": adult.uuid}))
    assert history.status_code == 200

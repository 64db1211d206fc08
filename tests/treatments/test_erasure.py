"""Erasure and retention (UK GDPR Art. 17, 5(1)(e)): a request to erase
erases the contact details used for messages at once and keeps the clinical
record for the retention period (8 years after the last treatment for
adults; the 25th birthday, or the 26th if treated at 17, for children), told
to the manager with the reason; when the period ends the daily run
anonymises the record and leaves the audit trail's references intact. Each
step is audited and in the patient's access history."""

from __future__ import annotations

import io
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from clinic.models import AuditAction, AuditEvent, User
from patients.images import clean_photo
from patients.models import Patient, Photo
from patients.services import photo_add
from tests.conftest import frozen_at, media_in_tmp, sign_in
from tests.factories import PatientFactory, jpeg
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


frozen = frozen_at(NOW)
media_root = media_in_tmp()


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


def test_a_second_request_shows_the_one_recorded_and_erases_details_typed_since(
    adult: Patient, practitioner: User
) -> None:
    first = erase(adult, practitioner)
    Patient.objects.filter(pk=adult.pk).update(email="amelia.new@example.org")
    again = erase(adult, practitioner)
    assert again.pk == first.pk
    assert ErasureRequest.objects.filter(patient=adult).count() == 1
    adult.refresh_from_db()
    assert adult.email == ""


def test_a_request_to_erase_erases_the_records_merged_into_the_patient(
    adult: Patient, practitioner: User
) -> None:
    merged = PatientFactory(
        email="amelia.old@example.org", phone="+447911000002", consents_to_messages=True
    )
    Patient.objects.filter(pk=merged.pk).update(
        merged_into=adult, merged_at=NOW, merged_by=practitioner
    )
    erase(adult, practitioner)
    merged.refresh_from_db()
    assert (merged.email, str(merged.phone or ""), merged.consents_to_messages) == (
        "",
        "",
        False,
    )
    assert "amelia.old" not in merged.search_text
    audited = AuditEvent.objects.get(patient_ref=merged.uuid, action=AuditAction.UPDATE)
    assert {"email", "phone", "consents_to_messages"} <= set(audited.changed_fields)


def test_merging_an_erased_duplicate_erases_the_contact_details_of_the_record_that_stays(
    practitioner: User, client: Client
) -> None:
    from treatments.services.merge import patient_merge

    duplicate = PatientFactory(first_name="Amelia", last_name="Hart")
    survivor = PatientFactory(
        first_name="Amelia",
        last_name="Hart",
        email="amelia@example.org",
        phone="+447911000001",
        consents_to_messages=True,
    )
    erasure = erase(duplicate, practitioner)
    sign_in(client, practitioner)
    url = reverse("treatments:patient_merge_compare", kwargs={"patient": duplicate.uuid})
    page = client.get(url + f"?into={survivor.uuid}")
    assert page.status_code == 200
    assert b'data-testid="merge-erasure"' in page.content
    patient_merge(duplicate=duplicate, survivor=survivor, merged_by=practitioner)
    survivor.refresh_from_db()
    assert (survivor.email, str(survivor.phone or ""), survivor.consents_to_messages) == (
        "",
        "",
        False,
    )
    erasure.refresh_from_db()
    assert erasure.patient_id == survivor.pk
    erased = AuditEvent.objects.filter(
        patient_ref=survivor.uuid, action=AuditAction.UPDATE, actor=practitioner
    )
    assert any({"email", "consents_to_messages"} <= set(e.changed_fields) for e in erased)
    # A request recorded again on the record that stays is the one that came.
    assert erase(survivor, practitioner).pk == erasure.pk


def test_a_merge_without_a_request_to_erase_keeps_the_contact_details(
    practitioner: User, client: Client
) -> None:
    from treatments.services.merge import patient_merge

    duplicate = PatientFactory(first_name="Amelia", last_name="Hart")
    survivor = PatientFactory(first_name="Amelia", last_name="Hart", email="amelia@example.org")
    sign_in(client, practitioner)
    url = reverse("treatments:patient_merge_compare", kwargs={"patient": duplicate.uuid})
    assert b"merge-erasure" not in client.get(url + f"?into={survivor.uuid}").content
    patient_merge(duplicate=duplicate, survivor=survivor, merged_by=practitioner)
    survivor.refresh_from_db()
    assert survivor.email == "amelia@example.org"


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
        # Born on 29 February, treated at 17: the 26th birthday is 1 March in a
        # common year (Family Law Reform Act 1969 s.9; see data_rights.birthday).
        (date(2000, 2, 29), date(2017, 6, 1), date(2026, 3, 1)),
        # Treated on 28 February 2018: still 17 (18 on 1 March), so the 26th birthday.
        (date(2000, 2, 29), date(2018, 2, 28), date(2026, 3, 1)),
        # Born on 29 February, the 25th birthday in a common year: 1 March.
        (date(2004, 2, 29), date(2019, 6, 1), date(2029, 3, 1)),
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

    assert _run_on(date(2028, 3, 14)) == {"anonymised": 0, "postponed": 1}
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


def test_a_never_treated_patient_is_anonymised_at_the_next_daily_run_not_later(
    practitioner: User,
) -> None:
    patient = PatientFactory(first_name="Zephyrine", last_name="Quackenbush")
    erasure = erase(patient, practitioner)
    assert erasure.retain_until == NOW.date()
    assert "next daily run" in erasure.retention_reason
    # Run the same day: kept, and the date does not move.
    assert _run_on(NOW.date()) == {"anonymised": 0, "postponed": 1}
    erasure.refresh_from_db()
    assert erasure.retain_until == NOW.date()
    assert _run_on(NOW.date() + timedelta(days=1)) == {"anonymised": 1, "postponed": 0}
    patient.refresh_from_db()
    assert patient.first_name == "Anonymised"


def _allergy_test(patient: Patient, by: User) -> None:
    from tests.factories import IngredientFactory
    from treatments.models import ALLERGY_READING_DELAY, AllergyTest

    given = datetime(2021, 6, 1, 10, 0, tzinfo=LONDON)
    test = AllergyTest.objects.create(
        patient=patient,
        site="Inner left forearm",
        given_at=given,
        entered_at=given,
        read_due_at=given + ALLERGY_READING_DELAY,
        given_by=by,
    )
    test.ingredients.set([IngredientFactory()])


def _history(patient: Patient, by: User) -> None:
    from tests.factories import make_history

    with time_machine.travel(datetime(2021, 6, 1, 10, 0, tzinfo=LONDON), tick=False):
        make_history(patient, by)


def _consent(patient: Patient, by: User) -> None:
    from tests.consent.helpers import signed_consent_for
    from tests.factories import ConsentFormVersionFactory

    signed_consent_for(
        patient=patient,
        version=ConsentFormVersionFactory(),
        signed_at=datetime(2021, 6, 1, 10, 0, tzinfo=LONDON),
        witness=by,
    )


def _follow_up(patient: Patient, by: User) -> None:
    from treatments.models import AdverseEventFollowUp

    booking = treated(patient, by, date(2015, 1, 6), event=True)
    AdverseEventFollowUp.objects.create(
        event=AdverseEvent.objects.get(session__booking=booking),
        note="Bruise fading",
        recorded_at=datetime(2021, 6, 1, 10, 0, tzinfo=LONDON),
        recorded_by=by,
    )


@pytest.mark.parametrize("record", [_allergy_test, _history, _consent, _follow_up])
def test_every_part_of_the_clinical_record_counts_as_a_treatment(
    practitioner: User, record: Any
) -> None:
    """Treated in 2015, then an allergy test, a history, a consent or a
    side effect's follow-up on 1 June 2021: kept 8 years from that."""
    patient = PatientFactory(date_of_birth=date(1980, 5, 2))
    treated(patient, practitioner, date(2015, 1, 5))
    record(patient, practitioner)
    retention = retention_for(patient, today=NOW.date())
    assert retention.last_treated_on == date(2021, 6, 1)
    assert retention.retain_until == date(2029, 6, 1)


def test_a_patient_with_only_an_allergy_test_keeps_the_record(practitioner: User) -> None:
    patient = PatientFactory(date_of_birth=date(1980, 5, 2))
    _allergy_test(patient, practitioner)
    assert erase(patient, practitioner).retain_until == date(2029, 6, 1)


def test_anonymisation_clears_the_notes_of_the_request(practitioner: User) -> None:
    patient = PatientFactory(
        first_name="Zephyrine", last_name="Quackenbush", date_of_birth=date(1970, 1, 1)
    )
    treated(patient, practitioner, date(2010, 1, 5))
    erasure = erasure_request_record(
        patient=patient,
        recorded_by=practitioner,
        received_on=NOW.date(),
        notes="Zephyrine Quackenbush phoned from 07911 000001 and asked us to delete everything",
    )
    assert _run_on(NOW.date() + timedelta(days=1)) == {"anonymised": 1, "postponed": 0}
    erasure.refresh_from_db()
    assert erasure.status == ErasureStatus.ANONYMISED
    assert erasure.notes == ""
    cleared = AuditEvent.objects.get(
        object_type="treatments.erasurerequest", action=AuditAction.UPDATE
    )
    assert cleared.changed_fields == ["notes"]
    assert cleared.actor_label == "scheduled task"


def test_a_shorter_retention_setting_applies_to_requests_already_recorded(
    practitioner: User,
) -> None:
    from tests.clinic_settings_support import settings_saved

    settings_saved(adult_record_retention_years=12)
    patient = PatientFactory(date_of_birth=date(1970, 1, 1))
    treated(patient, practitioner, date(2017, 3, 1))
    erasure = erase(patient, practitioner)
    assert erasure.retain_until == date(2029, 3, 1)
    assert _run_on(NOW.date()) == {"anonymised": 0, "postponed": 1}
    settings_saved(adult_record_retention_years=10)
    assert _run_on(NOW.date()) == {"anonymised": 0, "postponed": 1}
    erasure.refresh_from_db()
    assert erasure.retain_until == date(2027, 3, 1)
    assert "10 years" in erasure.retention_reason
    settings_saved(adult_record_retention_years=8)
    assert _run_on(NOW.date()) == {"anonymised": 1, "postponed": 0}


def test_the_daily_run_reaches_requests_behind_a_batch_still_in_care(
    practitioner: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three patients still booked, recorded first, fill more than a batch;
    the one recorded after them is anonymised all the same."""
    from treatments.services import data_rights

    monkeypatch.setattr(data_rights, "RETENTION_BATCH", 2)
    room = Room.objects.create(name="Upcoming")
    starts = datetime(2026, 12, 2, 10, 0, tzinfo=LONDON)
    for n in range(3):
        booked = PatientFactory(date_of_birth=date(1980, 1, 1))
        treated(booked, practitioner, LAST_TREATED - timedelta(days=3000), hour=9 + n)
        erase(booked, practitioner)
        Booking.objects.create(
            patient=booked,
            practitioner=practitioner,
            room=room,
            protocol=_protocol(),
            starts_at=starts + timedelta(hours=n),
            ends_at=starts + timedelta(hours=n, minutes=45),
            status=BookingStatus.BOOKED,
            created_by=practitioner,
        )
    last = PatientFactory(date_of_birth=date(1980, 1, 1))
    treated(last, practitioner, LAST_TREATED - timedelta(days=3000), hour=15)
    erase(last, practitioner)
    assert _run_on(NOW.date()) == {"anonymised": 1, "postponed": 3}
    last.refresh_from_db()
    assert last.first_name == "Anonymised"


@pytest.mark.parametrize(
    ("typed", "status"),
    [
        ("23/11/1926", 400),
        ("22/11/2025", 400),
        ("24/11/2026", 400),
        ("23/11/2025", 302),
    ],
)
def test_the_day_received_is_today_or_within_the_last_year(
    adult: Patient, manager: User, client: Client, typed: str, status: int
) -> None:
    sign_in(client, manager)
    url = reverse("treatments:erasure_create", kwargs={"patient": adult.uuid})
    response = client.post(url, {"received_on": typed, "confirm": "on", "notes": "By phone"})
    assert response.status_code == status
    assert ErasureRequest.objects.filter(patient=adult).exists() is (status == 302)
    if status == 400:
        assert b"By phone" in response.content
    if typed in ("23/11/1926", "22/11/2025"):
        assert b"more than a year old" in response.content


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

"""Merging a duplicate patient record into the record that stays: every kind
of row moves and signed records keep their contents; the database lets the
merge, and only the merge, move them; old addresses redirect; conflicts are
refused with nothing changed; practitioners only; forged, repeated and
concurrent posts; and the safety gates see both records afterwards."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from django.db import DatabaseError, connection, connections, models, transaction
from django.test import Client
from django.urls import reverse

from clinic.models import AuditAction, AuditEvent, User
from consent.models import ConsentFormVersion, ConsentWithdrawal, SignedConsent, SignedConsentPDF
from consent.services import consent_withdraw
from patients.images import clean_photo
from patients.models import Consultation, MedicalHistory, Patient, Photo
from patients.selectors import patient_possible_duplicates, patient_search
from patients.services import consultation_record, patient_update, photo_add
from tests.conftest import frozen_at, media_in_tmp, sign_in
from tests.consent.helpers import signed_consent_for
from tests.factories import (
    BatchFactory,
    ConsentFormVersionFactory,
    IngredientFactory,
    PatientFactory,
    ProductFactory,
    ProtocolFactory,
    UserFactory,
    jpeg,
    make_history,
)
from tests.races import hidden_value
from tests.treatments.test_booking_support import give_hours
from tests.treatments.test_session_helpers import give_and_read
from treatments.gates import gates_check
from treatments.models import (
    AdverseEvent,
    AllergyTest,
    Batch,
    Booking,
    BookingStatus,
    CocktailLine,
    DownloadLink,
    Ingredient,
    PatientAllergy,
    PatientDocument,
    PatientDocumentStatus,
    PortalAccount,
    Protocol,
    ProtocolCocktailLine,
    Reminder,
    Room,
    SessionRecord,
    TreatmentCourse,
    WorkingHours,
)
from treatments.selectors.merge import merge_comparison
from treatments.selectors.readiness import booking_readiness
from treatments.services import merge as merge_service
from treatments.services.aftercare import download_link_create, sha256_hex
from treatments.services.allergy import allergy_test_give
from treatments.services.booking import booking_cancel, booking_create
from treatments.services.merge import PatientMergeRefusedError, patient_merge
from treatments.services.portal import portal_invite

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=LONDON)  # a Monday
TOMORROW = NOW + timedelta(days=1)

# Every model that belongs to a patient, and the lookup to the patient: the
# rows the merge must move (written out here, not read from the code).
PATIENT_ROWS: dict[type[models.Model], str] = {
    MedicalHistory: "patient",
    Consultation: "patient",
    Photo: "patient",
    SignedConsent: "patient",
    ConsentWithdrawal: "signed_consent__patient",
    SignedConsentPDF: "signed_consent__patient",
    AllergyTest: "patient",
    PatientAllergy: "patient",
    TreatmentCourse: "patient",
    Booking: "patient",
    SessionRecord: "booking__patient",
    CocktailLine: "session__booking__patient",
    AdverseEvent: "session__booking__patient",
    Reminder: "patient",
    PatientDocument: "patient",
    DownloadLink: "patient",
    PortalAccount: "patient",
}
# Rows never changed by anything but the merge's move: their values, all but
# the patient, must be the same afterwards.
SIGNED_ROWS = (
    MedicalHistory,
    SignedConsent,
    ConsentWithdrawal,
    AllergyTest,
    SessionRecord,
    CocktailLine,
    AdverseEvent,
    Consultation,
    Photo,
)

pytestmark = pytest.mark.django_db


frozen = frozen_at(NOW)
media_root = media_in_tmp()


# --- Set-up ------------------------------------------------------------------------------


@dataclass
class Treatment:
    """What the clinic treats with: a protocol needing consent, two ingredients."""

    protocol: Protocol
    version: ConsentFormVersion
    ingredients: list[Ingredient]
    batches: list[Batch]


@pytest.fixture
def treatment() -> Treatment:
    version = ConsentFormVersionFactory()
    protocol = ProtocolFactory(consent_form=version.form, name="Revitalising face")
    ingredients, batches = [], []
    for n, name in enumerate(("Hyaluronic acid", "Vitamin C")):
        ingredient = IngredientFactory(name=name)
        product = ProductFactory(ingredients=[ingredient])
        ProtocolCocktailLine.objects.create(
            protocol=protocol, product=product, amount=Decimal("1.50"), position=n
        )
        ingredients.append(ingredient)
        batches.append(BatchFactory(product=product))
    return Treatment(protocol, version, ingredients, batches)


@pytest.fixture
def duplicate() -> Patient:
    return PatientFactory(
        first_name="Amelia",
        last_name="Hart",
        date_of_birth=date(1988, 4, 2),
        email="amelia.hart@example.org",
        phone="+447911000001",
    )


@pytest.fixture
def survivor() -> Patient:
    return PatientFactory(
        first_name="Amelia",
        last_name="Hart-Jones",
        date_of_birth=date(1988, 4, 12),
        email="a.hartjones@example.org",
        phone="+447911000002",
    )


def book(
    patient: Patient,
    practitioner: User,
    protocol: Protocol,
    starts_at: datetime,
    *,
    room: Room | None = None,
    minutes: int = 45,
) -> Booking:
    """A booking through the service and its rules (its reminders planned
    with it): the practitioner works 08:00-20:00 every day unless given hours."""
    if not WorkingHours.objects.filter(practitioner=practitioner).exists():
        give_hours(practitioner, days=range(7), starts="08:00", ends="20:00")
    return booking_create(
        patient=patient,
        practitioner=practitioner,
        room=room or Room.objects.create(name=f"Room for {patient.pk} at {starts_at:%d %H%M}"),
        protocol=protocol,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(minutes=minutes),
        created_by=practitioner,
    )


def completed_session(
    patient: Patient, practitioner: User, t: Treatment, starts_at: datetime
) -> SessionRecord:
    """A session completed in the past, with a cocktail line, an adverse event,
    its aftercare sheet (ready) and a download link sent."""
    booking = Booking.objects.create(
        patient=patient,
        practitioner=practitioner,
        room=Room.objects.create(name=f"Past room {patient.pk}"),
        protocol=t.protocol,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(minutes=45),
        status=BookingStatus.COMPLETED,
        created_by=practitioner,
    )
    record = SessionRecord.objects.create(
        booking=booking, numbing_cream=True, completed_at=booking.ends_at, completed_by=practitioner
    )
    CocktailLine.objects.create(
        session=record,
        batch=t.batches[0],
        amount=Decimal("1.50"),
        area="face",
        technique="nappage",
        depth_mm=Decimal("1.0"),
        needle_gauge=32,
        device="syringe",
    )
    AdverseEvent.objects.create(
        session=record,
        effect="bruising",
        severity="mild",
        onset=booking.ends_at + timedelta(hours=2),
        recorded_by=practitioner,
    )
    content = b"%PDF-1.7\n% aftercare sheet\n"
    document = PatientDocument(
        patient=patient,
        session=record,
        status=PatientDocumentStatus.READY,
        sha256=sha256_hex(content),
        queued_at=booking.ends_at,
        generated_at=booking.ends_at,
    )
    document.file.save(f"{document.uuid}.pdf", ContentFile(content), save=False)
    document.save()
    download_link_create(document=document, created_by=practitioner)
    return record


def fill(patient: Patient, practitioner: User, t: Treatment, *, hour: int) -> None:
    """One row or more of every kind on the patient's record, through the
    services where the clinic has one. `hour` keeps the two records' bookings apart."""
    make_history(patient, practitioner)
    consultation_record(
        patient=patient,
        recorded_by=practitioner,
        skin_type="III",
        concerns=["dull"],
        areas=["face"],
        goals="Brighter skin before a wedding",
        expectations_discussed=True,
        risks_discussed=True,
        alternatives_discussed="Peels",
        recommended_protocol="Revitalising face",
    )
    content = jpeg()
    photo_add(
        patient=patient,
        uploaded_by=practitioner,
        area="face",
        kind="before",
        taken_on=NOW.date(),
        image=clean_photo(io.BytesIO(content), size=len(content)),
    )
    older = signed_consent_for(
        patient=patient, version=t.version, signed_at=NOW - timedelta(days=40)
    )
    consent_withdraw(signed=older, reason="Wanted to think again", recorded_by=practitioner)
    signed_consent_for(patient=patient, version=t.version)
    give_and_read(patient, practitioner, [t.ingredients[0]], given_at=NOW - timedelta(days=3))
    other = IngredientFactory(name=f"Biotin {patient.pk}")
    give_and_read(
        patient, practitioner, [other], given_at=NOW - timedelta(days=4), result="positive"
    )
    # An unread test, its reading planned for tomorrow.
    allergy_test_give(
        patient=patient,
        given_by=practitioner,
        ingredients=[t.ingredients[1]],
        products=[],
        site="Inner right forearm",
        given_at=NOW - timedelta(minutes=5),
    )
    TreatmentCourse.objects.create(
        patient=patient,
        protocol=t.protocol,
        planned_sessions=6,
        interval="fortnightly",
        created_by=practitioner,
    )
    completed_session(patient, practitioner, t, NOW - timedelta(days=14, hours=hour))
    book(patient, practitioner, t.protocol, TOMORROW.replace(hour=hour))


def rows_of(patient: Patient) -> dict[str, int]:
    return {
        model.__name__: model._default_manager.filter(**{path: patient}).count()
        for model, path in PATIENT_ROWS.items()
    }


def signed_values() -> dict[str, dict[int, dict[str, Any]]]:
    """Every value of every signed row, but the patient it belongs to."""
    return {
        model.__name__: {
            row["id"]: {k: v for k, v in row.items() if k != "patient_id"}
            for row in model._default_manager.values()
        }
        for model in SIGNED_ROWS
    }


def merge_events() -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(action=AuditAction.UPDATE, object_type="patients.patient")
    )


def opened_versions(duplicate: Patient, survivor: Patient) -> dict[str, str]:
    """The versions of both records a comparison page opened now carries."""
    versions = dict(
        Patient.objects.filter(pk__in=[duplicate.pk, survivor.pk]).values_list("pk", "version")
    )
    return {
        "duplicate_version": str(versions[duplicate.pk]),
        "survivor_version": str(versions[survivor.pk]),
    }


def merge_post(client: Client, duplicate: Patient, survivor: Patient, **extra: str) -> Any:
    data = {
        "into": str(survivor.uuid),
        "confirm": "on",
        **opened_versions(duplicate, survivor),
        **extra,
    }
    return client.post(
        reverse("treatments:patient_merge", kwargs={"patient": duplicate.uuid}), data
    )


def compare_url(duplicate: Patient, survivor: Patient) -> str:
    base = reverse("treatments:patient_merge_compare", kwargs={"patient": duplicate.uuid})
    return f"{base}?into={survivor.uuid}"


@pytest.fixture
def client_for() -> Callable[[User], Client]:
    return lambda user: sign_in(Client(), user)


# --- Everything moves; signed records keep their contents -------------------------------


def test_every_kind_of_row_moves_to_the_survivor_and_signed_rows_keep_their_values(
    duplicate: Patient, survivor: Patient, practitioner: User, treatment: Treatment
) -> None:
    fill(duplicate, practitioner, treatment, hour=10)
    fill(survivor, practitioner, treatment, hour=14)
    portal_invite(patient=duplicate, invited_by=practitioner)
    # A third record merged into the duplicate earlier follows it to the survivor.
    earlier = PatientFactory(first_name="Amelia", last_name="Hart", date_of_birth=date(1988, 4, 2))
    patient_merge(duplicate=earlier, survivor=duplicate, merged_by=practitioner)
    before_dup, before_surv = rows_of(duplicate), rows_of(survivor)
    assert all(before_dup.values()), before_dup  # the set-up holds one of every kind
    signed_before = signed_values()

    result = patient_merge(duplicate=duplicate, survivor=survivor, merged_by=practitioner)

    after_dup, after_surv = rows_of(duplicate), rows_of(survivor)
    assert after_dup == dict.fromkeys(before_dup, 0)  # nothing left behind
    assert after_surv == {name: before_dup[name] + before_surv[name] for name in before_dup}
    assert signed_values() == signed_before
    duplicate.refresh_from_db()
    earlier.refresh_from_db()
    assert duplicate.merged_into == survivor
    assert duplicate.merged_by == practitioner
    assert duplicate.merged_at == NOW
    assert earlier.merged_into == survivor
    assert result.moved["bookings"] == 2
    assert result.moved["session_records"] == 1
    assert result.moved["merged_records"] == 1


def test_the_merge_leaves_the_survivors_details_and_takes_only_the_ticked_contact_detail(
    duplicate: Patient, survivor: Patient, practitioner: User, client_for: Callable[[User], Client]
) -> None:
    response = merge_post(client_for(practitioner), duplicate, survivor, take_email="on")
    assert response.status_code == 302
    survivor.refresh_from_db()
    assert survivor.email == "amelia.hart@example.org"  # taken from the duplicate
    assert str(survivor.phone) == "+447911000002"  # not ticked: the survivor's own
    assert survivor.last_name == "Hart-Jones"
    assert survivor.date_of_birth == date(1988, 4, 12)


def test_a_contact_detail_the_register_no_longer_accepts_is_refused_and_nothing_is_merged(
    duplicate: Patient,
    survivor: Patient,
    practitioner: User,
    treatment: Treatment,
    client_for: Callable[[User], Client],
) -> None:
    # A number typed on paper long ago, stored before the register checked numbers.
    Patient.objects.filter(pk=duplicate.pk).update(phone="+44123")
    make_history(duplicate, practitioner)
    client = client_for(practitioner)
    response = merge_post(client, duplicate, survivor, take_phone="on")
    assert response.status_code == 400
    assert "The mobile number of the record merged away cannot be taken" in (
        response.content.decode()
    )
    duplicate.refresh_from_db()
    assert duplicate.merged_into is None
    assert MedicalHistory.objects.filter(patient=duplicate).count() == 1
    assert merge_events() == []
    # Unticked, the merge goes ahead and the survivor keeps its own number.
    assert merge_post(client, duplicate, survivor).status_code == 302
    survivor.refresh_from_db()
    assert str(survivor.phone) == "+447911000002"


def test_an_allergy_both_records_list_stays_listed_once_on_the_survivor_with_both_notes(
    duplicate: Patient,
    survivor: Patient,
    practitioner: User,
    treatment: Treatment,
    client_for: Callable[[User], Client],
) -> None:
    vitamin_c = treatment.ingredients[1]
    give_and_read(
        duplicate, practitioner, [vitamin_c], given_at=NOW - timedelta(days=3), result="positive"
    )
    give_and_read(
        survivor, practitioner, [vitamin_c], given_at=NOW - timedelta(days=5), result="positive"
    )
    # What the clinic wrote about each (set-up: the notes of the allergy rows).
    PatientAllergy.objects.filter(patient=duplicate).update(notes="Wheal 12 mm, itched 2 days")
    PatientAllergy.objects.filter(patient=survivor).update(notes="Mild redness")
    assert merge_comparison(duplicate=duplicate, survivor=survivor).shared_allergies == [
        "Vitamin C"
    ]

    result = patient_merge(duplicate=duplicate, survivor=survivor, merged_by=practitioner)

    [listed] = PatientAllergy.objects.filter(patient=survivor, ingredient=vitamin_c)
    assert result.kept == {"allergies": 1}
    # Never dropped: the duplicate's row stays, and what it says is on the survivor's.
    assert PatientAllergy.objects.filter(patient=duplicate, ingredient=vitamin_c).exists()
    assert listed.notes.startswith("Mild redness\n\n")
    assert "Also recorded on Amelia Hart's merged record (born 2 April 1988)" in listed.notes
    assert "Found by the allergy test given on Fri 20 Nov." in listed.notes
    assert "Notes there: Wheal 12 mm, itched 2 days" in listed.notes
    page = client_for(practitioner).get(
        reverse("treatments:allergy_tests", kwargs={"patient": survivor.uuid})
    )
    assert "Wheal 12 mm, itched 2 days" in page.content.decode()
    # Both tests, with their readings, are on the survivor.
    assert AllergyTest.objects.filter(patient=survivor).count() == 2
    [event] = [e for e in merge_events() if e.patient_ref == survivor.uuid]
    assert "kept_on_merged:allergies=1" in event.changed_fields
    assert AuditEvent.objects.filter(
        object_type="treatments.patientallergy",
        object_id=str(listed.uuid),
        changed_fields__contains=["notes", f"merge={result.merge_id}"],
    ).exists()


def test_a_relation_to_patient_the_merge_does_not_move_stops_every_merge(
    duplicate: Patient, survivor: Patient, practitioner: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert merge_service.relations_not_handled() == []
    # As if a new model pointed at Patient: here, by forgetting one that does.
    monkeypatch.setattr(
        merge_service,
        "MOVED_RELATIONS",
        merge_service.MOVED_RELATIONS - {("treatments.Reminder", "patient")},
    )
    assert merge_service.relations_not_handled() == ["treatments.Reminder.patient"]
    with pytest.raises(ImproperlyConfigured, match=r"treatments\.Reminder\.patient"):
        patient_merge(duplicate=duplicate, survivor=survivor, merged_by=practitioner)
    duplicate.refresh_from_db()
    assert duplicate.merged_into is None


def test_every_relation_to_patient_is_one_the_merge_moves() -> None:
    relations = {
        (rel.field.model._meta.label, rel.field.name)
        for rel in Patient._meta.get_fields(include_hidden=True)
        if isinstance(rel, models.ForeignObjectRel)
    }
    assert relations == merge_service.MOVED_RELATIONS


# --- The database's one audited path -------------------------------------------------------


def _mark_merged(duplicate: Patient, survivor: Patient, by: User) -> None:
    # Set-up only: the state a merge leaves while it moves the rows.
    Patient.objects.filter(pk=duplicate.pk).update(
        merged_into=survivor, merged_at=NOW, merged_by=by
    )


def _update(table: str, row_id: int, assignments: str, params: list[Any], *, merging: bool) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        if merging:
            cursor.execute("SELECT set_config('clinic.patient_merge', 'test-merge', true)")
        cursor.execute(f"UPDATE {table} SET {assignments} WHERE id = %s", [*params, row_id])  # noqa: S608


def _delete(table: str, row_id: int) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('clinic.patient_merge', 'test-merge', true)")
        cursor.execute(f"DELETE FROM {table} WHERE id = %s", [row_id])  # noqa: S608


@pytest.fixture
def signed_rows(
    duplicate: Patient, survivor: Patient, practitioner: User, treatment: Treatment
) -> dict[str, tuple[str, int, str, Any]]:
    """(table, id, another column, a new value for it) of each kind of signed row."""
    history = make_history(duplicate, practitioner)
    signed = signed_consent_for(patient=duplicate, version=treatment.version)
    read = give_and_read(
        duplicate, practitioner, [treatment.ingredients[0]], given_at=NOW - timedelta(days=3)
    )
    unread = give_and_read(
        duplicate,
        practitioner,
        [treatment.ingredients[1]],
        given_at=NOW - timedelta(hours=1),
        result=None,
    )
    _mark_merged(duplicate, survivor, practitioner)
    return {
        "history": ("patients_medicalhistory", history.pk, "notes", "changed"),
        "consent": ("consent_signedconsent", signed.pk, "signer_name", "Someone Else"),
        "read test": ("treatments_allergytest", read.pk, "site", "Left cheek"),
        "unread test": ("treatments_allergytest", unread.pk, "site", "Left cheek"),
    }


@pytest.mark.parametrize("kind", ["history", "consent", "read test", "unread test"])
def test_without_the_merge_setting_moving_a_signed_row_is_refused(
    signed_rows: dict[str, tuple[str, int, str, Any]], survivor: Patient, kind: str
) -> None:
    table, row_id, _column, _value = signed_rows[kind]
    with pytest.raises(DatabaseError, match="never changed"):
        _update(table, row_id, "patient_id = %s", [survivor.pk], merging=False)


@pytest.mark.parametrize("kind", ["history", "consent", "read test", "unread test"])
def test_with_the_merge_setting_changing_anything_else_is_still_refused(
    signed_rows: dict[str, tuple[str, int, str, Any]], survivor: Patient, kind: str
) -> None:
    table, row_id, column, value = signed_rows[kind]
    with pytest.raises(DatabaseError, match="never changed"):
        _update(
            table, row_id, f"patient_id = %s, {column} = %s", [survivor.pk, value], merging=True
        )
    with pytest.raises(DatabaseError, match="never changed"):
        _update(table, row_id, f"{column} = %s", [value], merging=True)
    # The application role may not DELETE these rows at all.
    with pytest.raises(DatabaseError, match="permission denied"):
        _delete(table, row_id)


@pytest.mark.parametrize("kind", ["history", "consent", "read test", "unread test"])
def test_with_the_merge_setting_a_row_moves_only_to_the_record_its_patient_was_merged_into(
    signed_rows: dict[str, tuple[str, int, str, Any]], survivor: Patient, kind: str
) -> None:
    table, row_id, _column, _value = signed_rows[kind]
    stranger = PatientFactory()
    with pytest.raises(DatabaseError, match="never changed"):
        _update(table, row_id, "patient_id = %s", [stranger.pk], merging=True)
    _update(table, row_id, "patient_id = %s", [survivor.pk], merging=True)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT patient_id FROM {table} WHERE id = %s", [row_id])  # noqa: S608
        assert cursor.fetchone() == (survivor.pk,)


def test_a_withdrawal_has_no_patient_and_stays_refused_even_inside_a_merge(
    duplicate: Patient, survivor: Patient, practitioner: User, treatment: Treatment
) -> None:
    signed = signed_consent_for(patient=duplicate, version=treatment.version)
    withdrawal = consent_withdraw(
        signed=signed, reason="Changed her mind", recorded_by=practitioner
    )
    _mark_merged(duplicate, survivor, practitioner)
    with pytest.raises(DatabaseError, match="never changed"):
        _update("consent_consentwithdrawal", withdrawal.pk, "reason = %s", ["edited"], merging=True)


def test_the_merge_setting_is_off_again_once_the_rows_have_moved(
    duplicate: Patient, survivor: Patient, practitioner: User
) -> None:
    make_history(survivor, practitioner)
    patient_merge(duplicate=duplicate, survivor=survivor, merged_by=practitioner)
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('clinic.patient_merge', true)")
        assert cursor.fetchone()[0] in ("", None)


def test_the_allergy_trigger_keeps_every_rule_the_late_entry_migration_gave_it() -> None:
    import importlib

    late_entry = importlib.import_module("treatments.migrations.0006_allergy_entered_at")
    merge = importlib.import_module("treatments.migrations.0009_patient_merge")
    rules = late_entry.TRIGGER_FORWARD.split("BEGIN", 1)[1]
    assert rules.strip() in merge.FORWARD
    assert merge.BACKWARD.strip() == late_entry.TRIGGER_FORWARD.strip()


# --- Old addresses -------------------------------------------------------------------------


@pytest.fixture
def merged(
    duplicate: Patient, survivor: Patient, practitioner: User, treatment: Treatment
) -> dict[str, Any]:
    """The duplicate with a test, a consent and a course, merged into the survivor."""
    test = give_and_read(
        duplicate, practitioner, [treatment.ingredients[0]], given_at=NOW - timedelta(days=3)
    )
    signed = signed_consent_for(patient=duplicate, version=treatment.version)
    course = TreatmentCourse.objects.create(
        patient=duplicate,
        protocol=treatment.protocol,
        planned_sessions=6,
        interval="fortnightly",
        created_by=practitioner,
    )
    patient_merge(duplicate=duplicate, survivor=survivor, merged_by=practitioner)
    return {"test": test.uuid, "signed": signed.uuid, "course": course.uuid}


def old_addresses(patient: Patient, merged: dict[str, Any]) -> list[str]:
    p = {"patient": patient.uuid}
    return [
        reverse("patients:detail", kwargs=p),
        reverse("patients:history", kwargs=p),
        reverse("patients:consultations", kwargs=p),
        reverse("patients:photos", kwargs=p),
        reverse("patients:access_history", kwargs=p),
        reverse("treatments:allergy_tests", kwargs=p),
        reverse("treatments:allergy_test_detail", kwargs={**p, "test": merged["test"]}),
        reverse("treatments:patient_treatment_panel", kwargs=p),
        reverse("treatments:course_detail", kwargs={**p, "course": merged["course"]}),
        reverse("treatments:reminder_log", kwargs=p),
        reverse("consent:patient_consents", kwargs=p),
        reverse("consent:signed_detail", kwargs={**p, "signed": merged["signed"]}),
        reverse("treatments:patient_merge_compare", kwargs=p),
    ]


def test_every_old_address_of_the_merged_record_redirects_to_the_same_page_of_the_survivor(
    merged: dict[str, Any],
    duplicate: Patient,
    survivor: Patient,
    practitioner: User,
    client_for: Callable[[User], Client],
) -> None:
    client = client_for(practitioner)
    for old in old_addresses(duplicate, merged):
        response = client.get(old)
        assert response.status_code == 302, old
        assert response["Location"] == old.replace(str(duplicate.uuid), str(survivor.uuid))
        assert client.get(response["Location"]).status_code == 200, response["Location"]
    # The address of the merged record itself is unchanged.
    assert duplicate.get_absolute_url() == reverse(
        "patients:detail", kwargs={"patient": duplicate.uuid}
    )


def test_the_redirect_keeps_the_query_and_still_checks_who_may_see_the_page(
    merged: dict[str, Any],
    duplicate: Patient,
    survivor: Patient,
    receptionist: User,
    manager: User,
    client_for: Callable[[User], Client],
) -> None:
    detail = reverse("patients:detail", kwargs={"patient": duplicate.uuid})
    history = reverse("patients:history", kwargs={"patient": duplicate.uuid})
    reception = client_for(receptionist)
    response = reception.get(detail + "?tab=sessions")
    assert response.status_code == 302
    assert response["Location"] == f"/patients/{survivor.uuid}/?tab=sessions"
    # Reception never sees a history, merged or not; nor do managers.
    assert reception.get(history).status_code == 403
    assert client_for(manager).get(history).status_code == 403
    assert Client().get(detail).status_code == 302  # to the sign-in page
    assert Client().get(detail)["Location"].startswith(reverse("login"))


def test_a_booking_page_opened_for_the_merged_record_leads_to_the_survivor(
    merged: dict[str, Any],
    duplicate: Patient,
    survivor: Patient,
    receptionist: User,
    client_for: Callable[[User], Client],
) -> None:
    client = client_for(receptionist)
    for name in ("treatments:booking_new", "treatments:course_new"):
        address = f"{reverse(name)}?patient={duplicate.uuid}&date=2026-11-25&time=10:00"
        response = client.get(address)
        assert response.status_code == 302, name
        assert response["Location"] == address.replace(str(duplicate.uuid), str(survivor.uuid))
    page = client.get(
        f"{reverse('treatments:booking_new')}?patient={survivor.uuid}&date=2026-11-25"
    ).content.decode()
    assert f'value="{survivor.uuid}" checked' in page  # the survivor is chosen
    # A patient nobody may see, or no patient at all: the page opens, nobody chosen.
    for value in ("00000000-0000-4000-8000-00000000dead", "not-a-uuid"):
        response = client.get(f"{reverse('treatments:booking_new')}?patient={value}")
        assert response.status_code == 200
        assert 'name="patient" id="patient-' not in response.content.decode()


def test_a_form_sent_to_the_merged_record_saves_nothing_and_says_where_the_record_went(
    merged: dict[str, Any],
    duplicate: Patient,
    survivor: Patient,
    practitioner: User,
    client_for: Callable[[User], Client],
) -> None:
    response = client_for(practitioner).post(
        reverse("patients:consultation_new", kwargs={"patient": duplicate.uuid}),
        {"skin_type": "III", "goals": "typed before the merge"},
    )
    assert response.status_code == 409
    assert "Nothing was saved" in response.content.decode()
    assert f"/patients/{survivor.uuid}/consultations/new/" in response.content.decode()
    assert not Consultation.objects.exists()


def test_who_opened_the_merged_record_shows_in_the_survivors_access_history(
    duplicate: Patient,
    survivor: Patient,
    practitioner: User,
    receptionist: User,
    client_for: Callable[[User], Client],
) -> None:
    client_for(receptionist).get(duplicate.get_absolute_url())  # seen before the merge
    patient_merge(duplicate=duplicate, survivor=survivor, merged_by=practitioner)
    url = reverse("patients:access_history", kwargs={"patient": survivor.uuid})
    page = client_for(practitioner).get(url).content.decode()
    assert receptionist.username in page


def test_the_merged_record_is_hidden_from_search_lists_and_duplicate_checks(
    merged: dict[str, Any],
    duplicate: Patient,
    survivor: Patient,
    receptionist: User,
    client_for: Callable[[User], Client],
) -> None:
    assert patient_search(user=receptionist, query="Amelia") == [survivor]
    page = client_for(receptionist).get(reverse("patients:list") + "?q=Amelia").content.decode()
    assert str(survivor.uuid) in page
    assert str(duplicate.uuid) not in page
    found = patient_possible_duplicates(
        user=receptionist,
        first_name="Amelia",
        last_name="Hart",
        date_of_birth=date(1988, 4, 2),
        email="amelia.hart@example.org",
        phone="",
    )
    assert found == []


# --- Conflicts shown before anything changes ----------------------------------------------


def test_overlapping_bookings_are_named_and_refuse_the_merge_until_one_is_cancelled(
    duplicate: Patient,
    survivor: Patient,
    practitioner: User,
    receptionist: User,
    treatment: Treatment,
    client_for: Callable[[User], Client],
) -> None:
    other = UserFactory(first_name="Omar", last_name="Said")
    ours = book(duplicate, practitioner, treatment.protocol, TOMORROW.replace(hour=10))
    book(survivor, other, treatment.protocol, TOMORROW.replace(hour=10, minute=30))
    client = client_for(practitioner)
    page = client.get(compare_url(duplicate, survivor)).content.decode()
    assert "Both records are booked at the same time" in page
    assert "Tue 24 Nov, 10:00" in page
    assert "Tue 24 Nov, 10:30" in page
    assert "Omar Said" in page
    assert 'data-testid="merge-submit"' not in page
    rows_before = (rows_of(duplicate), rows_of(survivor))

    response = merge_post(client, duplicate, survivor)

    assert response.status_code == 409
    assert "reception must cancel or move one of them first" in response.content.decode()
    assert (rows_of(duplicate), rows_of(survivor)) == rows_before
    duplicate.refresh_from_db()
    assert duplicate.merged_into is None
    assert merge_events() == []

    booking_cancel(booking=ours, reason="Booked twice by mistake", cancelled_by=receptionist)
    assert merge_post(client, duplicate, survivor).status_code == 302
    assert Booking.objects.filter(patient=survivor).count() == 2


def test_a_booking_made_between_the_check_and_the_move_is_refused_by_the_database_not_a_500(
    duplicate: Patient,
    survivor: Patient,
    practitioner: User,
    treatment: Treatment,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    book(duplicate, practitioner, treatment.protocol, TOMORROW.replace(hour=10))
    book(survivor, UserFactory(), treatment.protocol, TOMORROW.replace(hour=10))
    real = merge_service.merge_problems
    calls: list[int] = []

    def problems(**kwargs: Any) -> Any:
        # The check under the locks sees nothing, as if the booking came just after it.
        calls.append(1)
        return [] if len(calls) == 1 else real(**kwargs)

    monkeypatch.setattr(merge_service, "merge_problems", problems)
    with pytest.raises(PatientMergeRefusedError) as refused:
        patient_merge(duplicate=duplicate, survivor=survivor, merged_by=practitioner)
    assert refused.value.code == "bookings_overlap"
    duplicate.refresh_from_db()
    assert duplicate.merged_into is None
    assert Booking.objects.filter(patient=duplicate).count() == 1


def test_two_portal_accounts_are_named_and_refuse_the_merge(
    duplicate: Patient,
    survivor: Patient,
    practitioner: User,
    receptionist: User,
    client_for: Callable[[User], Client],
) -> None:
    portal_invite(patient=duplicate, invited_by=practitioner)
    portal_invite(patient=survivor, invited_by=practitioner)
    response = merge_post(client_for(practitioner), duplicate, survivor)
    assert response.status_code == 409
    body = response.content.decode()
    assert "Both records have a patient portal account" in body
    assert "amelia.hart@example.org" in body
    assert "a.hartjones@example.org" in body
    assert PortalAccount.objects.get(patient=duplicate)
    duplicate.refresh_from_db()
    assert duplicate.merged_into is None


def test_differing_details_are_shown_side_by_side_with_the_contact_details_that_can_be_taken(
    duplicate: Patient, survivor: Patient, practitioner: User, client_for: Callable[[User], Client]
) -> None:
    comparison = merge_comparison(duplicate=duplicate, survivor=survivor)
    assert {row.field for row in comparison.differences} == {
        "last_name",
        "date_of_birth",
        "email",
        "phone",
    }
    assert {row.field for row in comparison.takeable} == {"email", "phone"}
    page = client_for(practitioner).get(compare_url(duplicate, survivor)).content.decode()
    assert "2 April 1988" in page
    assert "12 April 1988" in page
    assert "Hart-Jones" in page
    assert 'name="take_email"' in page
    assert 'name="take_phone"' in page
    assert 'name="take_address"' not in page
    assert "4 details differ" in page


# --- The audit trail -----------------------------------------------------------------------


def test_one_audit_event_on_each_record_names_the_other_and_the_rows_moved(
    duplicate: Patient, survivor: Patient, practitioner: User, treatment: Treatment
) -> None:
    make_history(duplicate, practitioner)
    book(duplicate, practitioner, treatment.protocol, TOMORROW.replace(hour=10))
    result = patient_merge(duplicate=duplicate, survivor=survivor, merged_by=practitioner)
    on_survivor = [e for e in merge_events() if e.patient_ref == survivor.uuid]
    on_duplicate = [e for e in merge_events() if e.patient_ref == duplicate.uuid]
    assert len(on_survivor) == 1
    assert len(on_duplicate) == 1
    [event] = on_survivor
    assert event.actor == practitioner
    assert event.object_id == str(survivor.uuid)
    assert f"merged_from={duplicate.uuid}" in event.changed_fields
    assert f"merge={result.merge_id}" in event.changed_fields
    assert "moved:medical_histories=1" in event.changed_fields
    assert "moved:bookings=1" in event.changed_fields
    assert "moved:reminders=1" in event.changed_fields  # the booking's reminder
    assert f"merged_into={survivor.uuid}" in on_duplicate[0].changed_fields
    assert f"merge={result.merge_id}" in on_duplicate[0].changed_fields
    assert "version=2" in on_duplicate[0].changed_fields


def test_the_merged_record_takes_a_new_version_and_a_booking_keeps_its_own(
    duplicate: Patient, survivor: Patient, practitioner: User, treatment: Treatment
) -> None:
    booking = book(duplicate, practitioner, treatment.protocol, TOMORROW.replace(hour=10))
    signed = signed_consent_for(patient=duplicate, version=treatment.version)
    versions = (duplicate.version, booking.version)
    patient_merge(duplicate=duplicate, survivor=survivor, merged_by=practitioner)
    duplicate.refresh_from_db()
    booking.refresh_from_db()
    # The merged record's edit form opened before is stale; a booking's move
    # form shows nothing the merge changed, and still applies.
    assert (duplicate.version, booking.version) == (versions[0] + 1, versions[1])
    assert booking.patient_id == survivor.pk
    # A signed consent's `version` is the form version signed: never touched.
    assert SignedConsent.objects.get(pk=signed.pk).version_id == treatment.version.pk


# --- The comparison the merge was decided on ------------------------------------------------


def _opened(client: Client, duplicate: Patient, survivor: Patient) -> dict[str, str]:
    """The merge form as the comparison page hands it to the browser."""
    page = client.get(compare_url(duplicate, survivor)).content.decode()
    return {
        "into": hidden_value(page, "into"),
        "duplicate_version": hidden_value(page, "duplicate_version"),
        "survivor_version": hidden_value(page, "survivor_version"),
        "confirm": "on",
    }


def _merge_url(duplicate: Patient) -> str:
    return reverse("treatments:patient_merge", kwargs={"patient": duplicate.uuid})


def test_a_merge_taking_an_email_from_a_comparison_opened_before_reception_changed_it_is_refused(
    duplicate: Patient,
    survivor: Patient,
    practitioner: User,
    receptionist: User,
    client_for: Callable[[User], Client],
) -> None:
    client = client_for(practitioner)
    form = _opened(client, duplicate, survivor)
    # Reception saves the survivor's new email (the patient phoned).
    patient_update(
        patient=survivor,
        updated_by=receptionist,
        expected_version=survivor.version,
        email="amelia.new@example.org",
    )

    response = client.post(_merge_url(duplicate), {**form, "take_email": "on"})

    assert response.status_code == 409
    body = response.content.decode()
    assert "Not saved: someone else changed this first" in body
    assert "Nothing was merged: compare the records again" in body
    assert "Email (record that stays: Amelia Hart-Jones)" in body
    assert "amelia.new@example.org" in body
    assert receptionist.get_full_name() in body
    assert 'name="take_email" id="id_take_email" checked' in body  # the tick is kept
    survivor.refresh_from_db()
    duplicate.refresh_from_db()
    assert survivor.email == "amelia.new@example.org"
    assert duplicate.merged_into is None
    # "Use their version": the comparison as it is now, and its form merges.
    assert compare_url(duplicate, survivor) in body
    again = _opened(client, duplicate, survivor)
    assert client.post(_merge_url(duplicate), again).status_code == 302
    survivor.refresh_from_db()
    assert survivor.email == "amelia.new@example.org"  # not ticked this time


def test_a_merge_from_a_comparison_opened_before_the_duplicate_was_corrected_is_refused(
    duplicate: Patient,
    survivor: Patient,
    practitioner: User,
    receptionist: User,
    client_for: Callable[[User], Client],
) -> None:
    client = client_for(practitioner)
    form = _opened(client, duplicate, survivor)
    # Reception finds they are twins: the duplicate is someone else.
    patient_update(
        patient=duplicate,
        updated_by=receptionist,
        expected_version=duplicate.version,
        first_name="Hana",
        date_of_birth=date(1988, 4, 3),
    )

    response = client.post(_merge_url(duplicate), form)

    assert response.status_code == 409
    body = response.content.decode()
    assert "First name (record merged away: Hana Hart)" in body
    assert "Date of birth (record merged away: Hana Hart)" in body
    assert "03/04/1988" in body
    duplicate.refresh_from_db()
    assert duplicate.merged_into is None
    assert not [e for e in merge_events() if any(f.startswith("merge=") for f in e.changed_fields)]


@pytest.mark.parametrize(
    "versions",
    [
        {"duplicate_version": "", "survivor_version": ""},
        {"duplicate_version": "x", "survivor_version": "1"},
        {"duplicate_version": "1", "survivor_version": "99"},
        {"duplicate_version": "0", "survivor_version": "1"},
    ],
)
def test_a_merge_form_without_the_records_versions_is_refused_and_nothing_changes(
    versions: dict[str, str],
    duplicate: Patient,
    survivor: Patient,
    practitioner: User,
    client_for: Callable[[User], Client],
) -> None:
    data = {"into": str(survivor.uuid), "confirm": "on", **versions}
    response = client_for(practitioner).post(_merge_url(duplicate), data)
    assert response.status_code == 400
    assert "Reload the page" in response.content.decode()
    duplicate.refresh_from_db()
    assert duplicate.merged_into is None
    assert merge_events() == []


# --- Who may merge, and forged posts ------------------------------------------------------


@pytest.mark.parametrize("persona", ["receptionist", "manager"])
def test_reception_and_managers_may_neither_compare_nor_merge(
    persona: str,
    duplicate: Patient,
    survivor: Patient,
    request: pytest.FixtureRequest,
    client_for: Callable[[User], Client],
) -> None:
    client = client_for(request.getfixturevalue(persona))
    assert client.get(compare_url(duplicate, survivor)).status_code == 403
    assert merge_post(client, duplicate, survivor).status_code == 403
    duplicate.refresh_from_db()
    assert duplicate.merged_into is None


def test_a_practitioner_compares_then_merges(
    duplicate: Patient, survivor: Patient, practitioner: User, client_for: Callable[[User], Client]
) -> None:
    client = client_for(practitioner)
    chooser = client.get(
        reverse("treatments:patient_merge_compare", kwargs={"patient": duplicate.uuid})
        + "?q=Hart-Jones"
    )
    assert chooser.status_code == 200
    assert f"?into={survivor.uuid}" in chooser.content.decode()
    assert client.get(compare_url(duplicate, survivor)).status_code == 200
    response = merge_post(client, duplicate, survivor)
    assert response.status_code == 302
    assert response["Location"] == survivor.get_absolute_url()
    page = client.get(response["Location"]).content.decode()
    assert "Amelia Hart&#x27;s record (born 2 April 1988) was merged into this one" in page


def test_merging_a_record_into_itself_is_refused_with_a_sentence(
    duplicate: Patient, practitioner: User, client_for: Callable[[User], Client]
) -> None:
    response = merge_post(client_for(practitioner), duplicate, duplicate)
    assert response.status_code == 400
    assert "A record cannot be merged into itself" in response.content.decode()
    duplicate.refresh_from_db()
    assert duplicate.merged_into is None
    assert merge_events() == []


def test_merging_into_a_record_already_merged_is_refused_with_a_sentence(
    duplicate: Patient, survivor: Patient, practitioner: User, client_for: Callable[[User], Client]
) -> None:
    third = PatientFactory(first_name="Amelia", last_name="Jones")
    patient_merge(duplicate=survivor, survivor=third, merged_by=practitioner)
    make_history(duplicate, practitioner)
    response = merge_post(client_for(practitioner), duplicate, survivor)
    assert response.status_code == 409
    assert "was itself merged into another" in response.content.decode()
    duplicate.refresh_from_db()
    assert duplicate.merged_into is None
    assert MedicalHistory.objects.filter(patient=duplicate).count() == 1


@pytest.mark.parametrize(
    ("into", "status"),
    [("00000000-0000-4000-8000-00000000dead", 404), ("not-a-uuid", 400), ("", 400)],
)
def test_a_record_that_cannot_be_seen_or_named_is_refused_and_nothing_changes(
    into: str,
    status: int,
    duplicate: Patient,
    practitioner: User,
    client_for: Callable[[User], Client],
) -> None:
    url = reverse("treatments:patient_merge", kwargs={"patient": duplicate.uuid})
    response = client_for(practitioner).post(url, {"into": into, "confirm": "on"})
    assert response.status_code == status
    if status == 400:
        assert "Choose the record that stays." in response.content.decode()
    duplicate.refresh_from_db()
    assert duplicate.merged_into is None
    assert merge_events() == []


def test_a_merge_without_the_confirmation_is_refused_and_the_comparison_shown_again(
    duplicate: Patient, survivor: Patient, practitioner: User, client_for: Callable[[User], Client]
) -> None:
    url = reverse("treatments:patient_merge", kwargs={"patient": duplicate.uuid})
    response = client_for(practitioner).post(url, {"into": str(survivor.uuid), "take_email": "on"})
    assert response.status_code == 400
    body = response.content.decode()
    assert "Confirm that both records are the same person." in body
    assert 'name="take_email" id="id_take_email" checked' in body  # the tick is kept
    duplicate.refresh_from_db()
    assert duplicate.merged_into is None


def test_a_merge_sent_twice_merges_once_and_leads_to_the_survivor(
    duplicate: Patient, survivor: Patient, practitioner: User, client_for: Callable[[User], Client]
) -> None:
    make_history(duplicate, practitioner)
    client = client_for(practitioner)
    first = merge_post(client, duplicate, survivor)
    second = merge_post(client, duplicate, survivor)
    assert (first.status_code, second.status_code) == (302, 302)
    assert second["Location"] == survivor.get_absolute_url()
    page = client.get(second["Location"]).content.decode()
    assert "other record was already merged into this one" in page
    assert len([e for e in merge_events() if e.patient_ref == survivor.uuid]) == 1
    assert MedicalHistory.objects.filter(patient=survivor).count() == 1


# --- Two merges at once ----------------------------------------------------------------------


def _at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released together; each result or exception."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        try:  # the clock frozen by the test holds in every thread
            barrier.wait(timeout=30)
            results[index] = calls[index]()
        except Exception as error:  # collected: the test says which are expected
            results[index] = error
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@pytest.mark.django_db(transaction=True)
def test_two_merges_of_the_same_pair_at_once_make_one_merge_and_refuse_the_other(
    practitioner: User,
) -> None:
    duplicate = PatientFactory(first_name="Amelia", last_name="Hart")
    survivor = PatientFactory(first_name="Amelia", last_name="Hart")
    make_history(duplicate, practitioner)

    def merge() -> Any:
        return patient_merge(duplicate=duplicate, survivor=survivor, merged_by=practitioner)

    results = _at_once(merge, merge)
    refused = [r for r in results if isinstance(r, PatientMergeRefusedError)]
    done = [r for r in results if isinstance(r, merge_service.MergeResult)]
    assert (len(done), len(refused)) == (1, 1), results
    assert refused[0].code == "already_merged"
    assert MedicalHistory.objects.filter(patient=survivor).count() == 1
    assert len([e for e in merge_events() if e.patient_ref == survivor.uuid]) == 1


@pytest.mark.django_db(transaction=True)
def test_two_practitioners_merging_each_record_into_the_other_at_once_get_one_merge(
    practitioner: User,
) -> None:
    a = PatientFactory(first_name="Amelia", last_name="Hart")
    b = PatientFactory(first_name="Amelia", last_name="Hart")
    colleague = UserFactory(roles=list(practitioner.roles))
    results = _at_once(
        lambda: patient_merge(duplicate=a, survivor=b, merged_by=practitioner),
        lambda: patient_merge(duplicate=b, survivor=a, merged_by=colleague),
    )
    done = [r for r in results if isinstance(r, merge_service.MergeResult)]
    refused = [r for r in results if isinstance(r, PatientMergeRefusedError)]
    assert (len(done), len(refused)) == (1, 1), results
    assert Patient.objects.filter(merged_into__isnull=False).count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_same_merge_form_sent_from_two_tabs_at_once_gives_no_error(practitioner: User) -> None:
    duplicate = PatientFactory(first_name="Amelia", last_name="Hart")
    survivor = PatientFactory(first_name="Amelia", last_name="Hart")
    clients = [sign_in(Client(), practitioner) for _ in range(2)]
    results = _at_once(*(lambda c=c: merge_post(c, duplicate, survivor) for c in clients))
    assert [r.status_code for r in results] == [302, 302], results
    assert all(r["Location"] == survivor.get_absolute_url() for r in results)
    assert len([e for e in merge_events() if e.patient_ref == survivor.uuid]) == 1


# --- The gates see both records -------------------------------------------------------------


def test_after_the_merge_the_survivors_booking_passes_the_gates_the_duplicates_records_answer(
    duplicate: Patient, survivor: Patient, practitioner: User, treatment: Treatment
) -> None:
    # The duplicate holds the negative readings and the consent; the survivor the history.
    give_and_read(duplicate, practitioner, treatment.ingredients, given_at=NOW - timedelta(days=3))
    signed_consent_for(patient=duplicate, version=treatment.version)
    make_history(survivor, practitioner)
    booking = book(survivor, practitioner, treatment.protocol, TOMORROW.replace(hour=11))

    def gates() -> tuple[list[int], list[int]]:
        fresh = Booking.objects.select_related("protocol").get(pk=booking.pk)
        flags = booking_readiness(bookings=[fresh], at=NOW)[fresh.pk]
        check = gates_check(
            patient=survivor,
            protocol=treatment.protocol,
            ingredients=treatment.ingredients,
            batches=treatment.batches,
            at=booking.starts_at,
        )
        return sorted({f.gate for f in flags}), sorted({f.gate for f in check})

    assert gates() == ([3, 4], [3, 4])
    patient_merge(duplicate=duplicate, survivor=survivor, merged_by=practitioner)
    assert gates() == ([], [])


# --- Query budget ------------------------------------------------------------------------------


@pytest.mark.parametrize("bookings", [1, 20])
def test_the_comparison_page_has_a_fixed_query_budget(
    bookings: int,
    duplicate: Patient,
    survivor: Patient,
    practitioner: User,
    treatment: Treatment,
    client_for: Callable[[User], Client],
    django_assert_max_num_queries: Any,
) -> None:
    room = Room.objects.create(name="Room 1")
    other_room = Room.objects.create(name="Room 2")
    for n in range(bookings):
        day = TOMORROW + timedelta(days=n)
        book(duplicate, practitioner, treatment.protocol, day.replace(hour=10), room=room)
        book(survivor, practitioner, treatment.protocol, day.replace(hour=14), room=other_room)
        make_history(duplicate, practitioner)
    client = client_for(practitioner)
    client.get(compare_url(duplicate, survivor))  # the session is warm
    # 13: the clinic's settings (its name in the header) are read once a page.
    with django_assert_max_num_queries(13):
        response = client.get(compare_url(duplicate, survivor))
    assert response.status_code == 200
    assert f'<td class="text-end">{bookings}</td>' in response.content.decode()

"""Subject access (UK GDPR Art. 15): a patient's whole record as a ZIP with a
readable PDF and a validated HL7 FHIR bundle, made in the background with
progress; every model reaching a patient is exported or named as left out
with a reason; practitioners and managers only, the download checked on
every hit and audited, and shown in the patient's access history; the file
deleted after its expiry."""

from __future__ import annotations

import io
import json
import subprocess
import zipfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.apps import apps
from django.db import connection, models
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from fhir.resources.R4B.bundle import Bundle

from clinic.documents import DocumentStatus
from clinic.models import AuditAction, AuditEvent, User
from patients.models import ContactChange, Patient
from tests.conftest import frozen_at, media_in_tmp, sign_in
from tests.factories import PatientFactory
from tests.treatments.test_merge import (  # noqa: F401 (fixtures)
    NOW,
    Treatment,
    book,
    completed_session,
    fill,
    treatment,
)
from treatments.models import (
    AdverseEventFollowUp,
    Booking,
    CautionAcknowledgement,
    DayOfCheck,
    ErasureRequest,
    InjectionPoint,
    Room,
    SessionAmendment,
    SubjectAccessExport,
)
from treatments.services.booking import booking_move
from treatments.services.data_rights import (
    subject_access_purge_expired,
    subject_access_render,
    subject_access_request,
)
from treatments.services.portal import portal_invite
from treatments.subject_access.collect import (
    COVERED,
    NOT_EXPORTED,
    subject_access_collect,
)

pytestmark = pytest.mark.django_db


frozen = frozen_at(NOW)
media_root = media_in_tmp()


# --- Completeness: every model reaching a patient ----------------------------------------


def _reaches_patient() -> set[str]:
    """Every model with a foreign key to Patient, or to a model that has one
    (a session reaching the patient through its booking), found by walking
    the relations of every installed model."""
    target = apps.get_model("patients", "Patient")
    found = {target._meta.label_lower}
    changed = True
    while changed:
        changed = False
        for model in apps.get_models():
            label = model._meta.label_lower
            if label in found:
                continue
            for field in model._meta.get_fields():
                related = getattr(field, "related_model", None)
                if (
                    field.concrete
                    and isinstance(field, models.ForeignKey | models.OneToOneField)
                    and related is not None
                    and related._meta.label_lower in found
                ):
                    found.add(label)
                    changed = True
                    break
    return found


def test_every_model_reaching_a_patient_is_exported_or_left_out_with_a_reason() -> None:
    reaching = _reaches_patient()
    missing = reaching - set(COVERED) - set(NOT_EXPORTED)
    assert not missing, f"not in the subject-access export: {sorted(missing)}"
    assert not set(COVERED) & set(NOT_EXPORTED)
    # Nothing named that is not a model reaching a patient (a rename is noticed).
    assert set(COVERED) | set(NOT_EXPORTED) <= reaching
    assert all(len(reason) > 40 for reason in NOT_EXPORTED.values())


# --- The golden patient: one row or more of every kind ------------------------------------


@pytest.fixture
def golden(practitioner: User, treatment: Treatment) -> Patient:  # noqa: F811
    patient = PatientFactory(
        first_name="Amelia",
        last_name="Hart",
        email="amelia.hart@example.org",
        phone="+447911000001",
        consents_to_messages=True,
        emergency_contact_name="Tom Hart",
        gp_details="Dr Rees, Elm Street Surgery",
    )
    fill(patient, practitioner, treatment, hour=10)
    portal_invite(patient=patient, invited_by=practitioner)
    booking = Booking.objects.filter(patient=patient, record__isnull=False).get()
    record = booking.record
    line = record.lines.get()
    InjectionPoint.objects.create(line=line, position=1, view="face", x="0.5", y="0.4")
    event = record.adverse_events.get()
    AdverseEventFollowUp.objects.create(
        event=event, note="Fading well", recorded_at=NOW, recorded_by=practitioner
    )
    SessionAmendment.objects.create(session=record, text="Added: cold compress", by=practitioner)
    DayOfCheck.objects.create(
        session=record,
        unwell=False,
        pregnant=False,
        breastfeeding=False,
        skin_infection=False,
        active_acne=False,
        cold_sore=False,
        new_medicine_or_allergy=False,
        asked_by=practitioner,
        asked_at=booking.starts_at,
    )
    CautionAcknowledgement.objects.create(
        session=record,
        code="bruising",
        wording="Bruises easily: arnica advised",
        areas=["face"],
        acknowledged_by=practitioner,
        acknowledged_at=booking.starts_at,
    )
    upcoming = Booking.objects.filter(patient=patient, record__isnull=True).get()
    booking_move(
        booking=upcoming,
        starts_at=upcoming.starts_at + timedelta(hours=1),
        ends_at=upcoming.ends_at + timedelta(hours=1),
        practitioner=upcoming.practitioner,
        room=upcoming.room,
        moved_by=practitioner,
        expected_version=upcoming.version,
    )
    ContactChange.objects.create(
        patient=patient,
        field="email",
        previous="amelia.old@example.org",
        changed_at=NOW - timedelta(days=30),
        changed_by=practitioner,
        notice_status="sent",
    )
    ErasureRequest.objects.create(
        patient=patient,
        received_on=NOW.date(),
        recorded_by=practitioner,
        retain_until=NOW.date() + timedelta(days=8 * 365),
        retention_reason="Adult record kept 8 years",
    )
    return patient


def _make(patient: Patient, by: User) -> SubjectAccessExport:
    export = subject_access_request(patient=patient, requested_by=by)
    return subject_access_render(export_id=export.pk)


def _zip(export: SubjectAccessExport) -> zipfile.ZipFile:
    with export.file.open("rb") as handle:
        return zipfile.ZipFile(io.BytesIO(handle.read()))


def _bundle(archive: zipfile.ZipFile) -> dict[str, Any]:
    return json.loads(archive.read("record.fhir.json"))


def _resources(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def _basic(bundle: dict[str, Any], code: str) -> list[dict[str, Any]]:
    return [r for r in _resources(bundle, "Basic") if r["code"]["text"] == code]


def _notes(bundle: dict[str, Any], kind: str) -> str:
    return " ".join(n["text"] for r in _resources(bundle, kind) for n in r.get("note", []))


# Where each covered model shows in the bundle of the golden patient: the
# keys must be COVERED's, so a model added there needs its check here.
IN_BUNDLE: dict[str, Callable[[dict[str, Any]], bool]] = {
    "patients.patient": lambda b: _resources(b, "Patient")[0]["name"][0]["family"] == "Hart",
    "patients.medicalhistory": lambda b: len(_resources(b, "QuestionnaireResponse")) == 1,
    "patients.consultation": lambda b: (
        "Brighter skin" in _resources(b, "ClinicalImpression")[0]["summary"]
    ),
    "patients.photo": lambda b: _resources(b, "Media")[0]["content"]["url"].startswith("photos/"),
    "patients.contactchange": lambda b: len(_basic(b, "contact-change")) == 1,
    "consent.signedconsent": lambda b: len(_resources(b, "Consent")) == 2,
    "consent.consentwithdrawal": lambda b: len(_basic(b, "consent-withdrawal")) == 1,
    "consent.signedconsentpdf": lambda b: True,  # checked on the ZIP's files below
    "treatments.allergytest": lambda b: (
        len([o for o in _resources(b, "Observation") if "patch" in o["code"]["text"]]) == 3
    ),
    "treatments.patientallergy": lambda b: len(_resources(b, "AllergyIntolerance")) == 1,
    "treatments.treatmentcourse": lambda b: len(_resources(b, "CarePlan")) == 1,
    "treatments.booking": lambda b: len(_resources(b, "Appointment")) == 2,
    "treatments.bookingevent": lambda b: len(_basic(b, "booking-change")) >= 1,
    "treatments.sessionrecord": lambda b: len(_resources(b, "Procedure")) == 1,
    "treatments.cocktailline": lambda b: (
        _resources(b, "MedicationAdministration")[0]["contained"][0]["batch"]["lotNumber"] != ""
    ),
    "treatments.injectionpoint": lambda b: (
        "1 injection points marked" in _notes(b, "MedicationAdministration")
    ),
    "treatments.adverseevent": lambda b: len(_resources(b, "AdverseEvent")) == 1,
    "treatments.adverseeventfollowup": lambda b: len(_basic(b, "adverse-event-follow-up")) == 1,
    "treatments.sessionamendment": lambda b: "cold compress" in _notes(b, "Procedure"),
    "treatments.dayofcheck": lambda b: "Checked on the day" in _notes(b, "Procedure"),
    "treatments.cautionacknowledgement": lambda b: "arnica" in _notes(b, "Procedure"),
    "treatments.patientdocument": lambda b: len(_resources(b, "DocumentReference")) == 1,
    "treatments.downloadlink": lambda b: len(_basic(b, "download-link")) == 1,
    "treatments.portalaccount": lambda b: len(_basic(b, "portal-account")) == 1,
    "treatments.reminder": lambda b: len(_resources(b, "Communication")) >= 1,
    "treatments.subjectaccessexport": lambda b: len(_basic(b, "subject-access-export")) == 1,
    "treatments.erasurerequest": lambda b: len(_basic(b, "erasure-request")) == 1,
}


def test_the_export_of_a_patient_with_every_kind_of_row_holds_each_in_a_valid_fhir_bundle(
    golden: Patient, practitioner: User
) -> None:
    assert set(IN_BUNDLE) == set(COVERED)
    export = _make(golden, practitioner)
    assert export.status == DocumentStatus.READY
    assert export.progress == 100
    assert export.expires_at == export.generated_at + timedelta(days=7)
    archive = _zip(export)
    bundle = _bundle(archive)
    # Valid FHIR (R4B models of fhir.resources): parsing it back raises on any fault.
    parsed = Bundle.model_validate(bundle)
    assert parsed.type == "collection"
    missing = [label for label, found in IN_BUNDLE.items() if not found(bundle)]
    assert not missing, missing
    # Every reference inside the bundle resolves to an entry of it.
    urls = {e["fullUrl"] for e in bundle["entry"]}
    text = json.dumps(bundle)
    for ref in {part.split('"')[0] for part in text.split('"reference": "')[1:]}:
        assert ref.startswith("#") or ref in urls, ref
    names = set(archive.namelist())
    assert {"README.txt", "summary.pdf", "record.fhir.json"} <= names
    assert len([n for n in names if n.startswith("photos/")]) == 1
    assert len([n for n in names if n.startswith("documents/aftercare-")]) == 1
    # The signed consents' PDFs are only queued in this set-up (none made): none listed.
    assert archive.read("summary.pdf").startswith(b"%PDF")


def test_the_access_log_in_the_export_lists_who_opened_the_record(
    golden: Patient, practitioner: User, client: Client
) -> None:
    sign_in(client, practitioner)
    client.get(reverse("patients:detail", kwargs={"patient": golden.uuid}))
    export = _make(golden, practitioner)
    bundle = _bundle(_zip(export))
    audit = _resources(bundle, "AuditEvent")
    assert any(
        a["type"]["code"] == "view" and a["agent"][0]["who"]["display"] == practitioner.username
        for a in audit
    )
    # The request of this very export is in its own log.
    assert any(a["type"]["code"] == "create" for a in audit)


def pdf_text(data: bytes, tmp_path: Path) -> str:
    path = tmp_path / "summary.pdf"
    path.write_bytes(data)
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True, text=True
    ).stdout


def test_the_summary_pdf_reads_as_the_patients_record(
    golden: Patient, practitioner: User, tmp_path: Path
) -> None:
    archive = _zip(_make(golden, practitioner))
    text = pdf_text(archive.read("summary.pdf"), tmp_path)
    for expected in (
        "The information we hold about you",
        "Amelia Hart",
        "amelia.hart@example.org",
        "Tom Hart",
        "Medical questionnaires",
        "Brighter skin before a wedding",
        "Inner left forearm",
        "Wanted to think again",  # the withdrawal's reason
        "Revitalising face",
        "Bruising",
        "Fading well",
        "Who has opened your record",
        "Information Commissioner",
    ):
        assert expected in text, expected
    batch = golden.bookings.get(record__isnull=False).record.lines.get().batch
    assert batch.lot_number in text


def test_collecting_costs_the_same_queries_for_one_session_or_many(
    practitioner: User,
    treatment: Treatment,  # noqa: F811
) -> None:
    def count(patient: Patient) -> int:
        with CaptureQueriesContext(connection) as queries:
            subject_access_collect(patient=patient, made_at=NOW)
        return len(queries)

    one, many = PatientFactory(), PatientFactory()
    completed_session(one, practitioner, treatment, NOW - timedelta(days=40))
    for days in range(5):
        completed_session(many, practitioner, treatment, NOW - timedelta(days=20 + days))
        # The helper names its room after the patient: one name a session.
        Room.objects.filter(name=f"Past room {many.pk}").update(name=f"Room {many.pk}-{days}")
    assert count(one) == count(many)


def test_a_second_request_while_one_is_made_returns_the_same_export(
    golden: Patient, practitioner: User
) -> None:
    first = subject_access_request(patient=golden, requested_by=practitioner)
    second = subject_access_request(patient=golden, requested_by=practitioner)
    assert first.pk == second.pk
    assert SubjectAccessExport.objects.filter(patient=golden).count() == 1


# --- Pages: who may, and the trail -------------------------------------------------------


def _urls(patient: Patient, export: SubjectAccessExport) -> dict[str, str]:
    kw = {"patient": patient.uuid}
    both = {**kw, "export": export.uuid}
    return {
        "page": reverse("treatments:data_rights", kwargs=kw),
        "status": reverse("treatments:subject_access_status", kwargs=both),
        "download": reverse("treatments:subject_access_download", kwargs=both),
    }


def test_reception_is_refused_every_data_rights_route(
    golden: Patient, practitioner: User, receptionist: User, client: Client
) -> None:
    export = _make(golden, practitioner)
    sign_in(client, receptionist)
    for url in _urls(golden, export).values():
        assert client.get(url).status_code == 403, url
    create = reverse("treatments:subject_access_create", kwargs={"patient": golden.uuid})
    assert client.post(create).status_code == 403
    assert SubjectAccessExport.objects.filter(patient=golden).count() == 1


@pytest.mark.parametrize("role", ["practitioner", "manager"])
def test_practitioner_and_manager_make_and_download_an_export_audited_in_the_access_history(
    role: str, golden: Patient, request: pytest.FixtureRequest, client: Client
) -> None:
    user: User = request.getfixturevalue(role)
    sign_in(client, user)
    page = reverse("treatments:data_rights", kwargs={"patient": golden.uuid})
    create = reverse("treatments:subject_access_create", kwargs={"patient": golden.uuid})
    response = client.post(create)
    assert response.status_code == 302
    export = SubjectAccessExport.objects.get(patient=golden)
    assert export.requested_by == user
    assert b"Being made" in client.get(page).content
    subject_access_render(export_id=export.pk)
    urls = _urls(golden, export)
    listed = client.get(page)
    assert b"Download the ZIP" in listed.content
    download = client.get(urls["download"])
    assert download.status_code == 200
    assert download["Content-Type"] == "application/zip"
    assert "no-store" in download["Cache-Control"]
    assert zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content))).testzip() is None
    events = AuditEvent.objects.filter(
        patient_ref=golden.uuid, object_type="treatments.subjectaccessexport"
    )
    assert {(e.action, e.actor_id) for e in events} == {
        (AuditAction.CREATE, user.pk),
        (AuditAction.DOWNLOAD, user.pk),
    }
    history = client.get(reverse("patients:access_history", kwargs={"patient": golden.uuid}))
    assert history.status_code == 200
    assert b"subject access export" in history.content or role == "manager"


def test_an_export_is_reached_only_through_its_own_patient(
    golden: Patient, practitioner: User, client: Client
) -> None:
    export = _make(golden, practitioner)
    other = PatientFactory()
    sign_in(client, practitioner)
    wrong = {"patient": other.uuid, "export": export.uuid}
    assert (
        client.get(reverse("treatments:subject_access_download", kwargs=wrong)).status_code == 404
    )
    assert client.get(reverse("treatments:subject_access_status", kwargs=wrong)).status_code == 404
    assert not AuditEvent.objects.filter(action=AuditAction.DOWNLOAD).exists()


def test_the_page_costs_the_same_queries_for_one_export_or_ten(
    golden: Patient,
    practitioner: User,
    client: Client,
    django_assert_max_num_queries: Any,
) -> None:
    sign_in(client, practitioner)
    page = reverse("treatments:data_rights", kwargs={"patient": golden.uuid})
    _make(golden, practitioner)
    with CaptureQueriesContext(connection) as one:
        assert client.get(page).status_code == 200
    for n in range(9):
        # Earlier exports, ready (made without rendering: the page only lists them).
        SubjectAccessExport.objects.create(
            patient=golden,
            requested_by=practitioner,
            status=DocumentStatus.READY,
            file=f"subject-access/earlier-{n}.zip",
            sha256="0" * 64,
            progress=100,
            generated_at=NOW,
            expires_at=NOW + timedelta(days=7),
            next_attempt_at=None,
        )
    with django_assert_max_num_queries(len(one)):
        assert client.get(page).status_code == 200


# --- Expiry ------------------------------------------------------------------------------


def test_an_export_is_deleted_after_seven_days_audited_and_no_longer_downloads(
    golden: Patient, practitioner: User, client: Client
) -> None:
    export = _make(golden, practitioner)
    path = Path(export.file.path)
    assert path.exists()
    sign_in(client, practitioner)
    url = _urls(golden, export)["download"]
    with time_machine.travel(NOW + timedelta(days=7) - timedelta(minutes=1), tick=False):
        assert subject_access_purge_expired() == 0
        sign_in(client, practitioner)
        assert client.get(url).status_code == 200
    with time_machine.travel(NOW + timedelta(days=7, minutes=1), tick=False):
        sign_in(client, practitioner)
        assert client.get(url).status_code == 410
        assert subject_access_purge_expired() == 1
        assert subject_access_purge_expired() == 0  # once
    assert not path.exists()
    export.refresh_from_db()
    assert export.purged_at is not None
    deleted = AuditEvent.objects.get(action=AuditAction.DELETE, patient_ref=golden.uuid)
    assert deleted.actor_label == "scheduled task"

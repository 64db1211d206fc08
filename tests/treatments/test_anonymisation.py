"""Anonymisation reaches everything that names the patient: the name typed and
the drawn signature on a signed consent (the text signed, its fingerprint, the
date and the choice stay), the PDFs made of the record (consent copies and
aftercare sheets, made again without the name), the photographs of allergy
test sites, the subject-access exports (withdrawn at once by a request to
erase, and again at anonymisation), and the records merged into the patient.
Every model reaching a patient says what anonymisation does with it."""

from __future__ import annotations

import io
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
import time_machine
from django.db import models
from django.test import Client
from django.urls import reverse

from clinic.documents import DocumentStatus
from clinic.models import AuditAction, AuditEvent, User
from consent.models import ConsentFormVersion, SignedConsent, SignedConsentPDF
from consent.services import consent_pdf_render_now
from patients.images import clean_photo
from patients.models import Patient, Photo
from patients.services import photo_add
from tests.conftest import sign_in
from tests.factories import ConsentFormVersionFactory, IngredientFactory, PatientFactory
from tests.treatments.test_aftercare import completed_session, pdf_text, ready_document
from tests.treatments.test_erasure import (  # noqa: F401 (fixtures)
    LONDON,
    NOW,
    erase,
    frozen,
    jpeg,
    media_root,
)
from tests.treatments.test_session_helpers import give_and_read
from tests.treatments.test_subject_access import _reaches_patient
from treatments.models import (
    ErasureRequest,
    ErasureStatus,
    Ingredient,
    PatientAllergy,
    PortalAccount,
    SubjectAccessExport,
)
from treatments.services.data_rights import (
    retention_anonymise_due,
    subject_access_render,
    subject_access_request,
)

pytestmark = pytest.mark.django_db

SIGNED_ON = datetime(2019, 6, 1, 10, 0, tzinfo=LONDON)
# Eight years after the consent signed in 2019, and a day.
AFTER_RETENTION = date(2027, 6, 2)


@pytest.fixture
def amelia() -> Patient:
    return cast(
        Patient,
        PatientFactory(
            first_name="Zinnia",
            last_name="Quillfeather",
            date_of_birth=date(1980, 5, 2),
            email="zinnia@example.org",
            phone="+447911000001",
        ),
    )


def _anonymise(capture: Any) -> dict[str, int]:
    day = AFTER_RETENTION
    # Files are deleted (and documents queued again) once it commits.
    with (
        time_machine.travel(datetime(day.year, day.month, day.day, 3, 0, tzinfo=LONDON)),
        capture(execute=True),
    ):
        return retention_anonymise_due()


def _signed(patient: Patient, by: User) -> SignedConsent:
    from tests.consent.helpers import signed_consent_for

    with time_machine.travel(SIGNED_ON, tick=False):
        return signed_consent_for(
            patient=patient,
            version=cast(ConsentFormVersion, ConsentFormVersionFactory()),
            signed_at=SIGNED_ON,
            witness=by,
        )


def _pdf_text(field: Any, tmp_path: Path) -> str:
    with field.open("rb") as handle:
        return pdf_text(handle.read(), tmp_path)


def test_a_signed_consent_loses_the_name_and_signature_and_keeps_what_was_agreed(
    amelia: Patient,
    practitioner: User,
    client: Client,
    tmp_path: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:
    signed = _signed(amelia, practitioner)
    pdf = consent_pdf_render_now(signed_consent_id=signed.pk)
    assert "Quillfeather" in _pdf_text(pdf.file, tmp_path)
    signature_file = Path(signed.signature.path)
    pdf_file = Path(pdf.file.path)
    kept = (signed.text, signed.text_sha256, signed.version_id, signed.signed_at)
    erase(amelia, practitioner)

    assert _anonymise(django_capture_on_commit_callbacks)["anonymised"] == 1

    signed.refresh_from_db()
    assert signed.signer_name == "Anonymised record"
    assert not signed.signature
    assert not signature_file.exists()
    # What the clinic keeps for the clinical record: what was agreed, when, that it was.
    assert (signed.text, signed.text_sha256, signed.version_id, signed.signed_at) == kept
    assert signed.photo_consent is True
    # The PDF that named her is gone and is made again, without her name.
    pdf.refresh_from_db()
    assert pdf.status == DocumentStatus.QUEUED
    assert not pdf_file.exists()
    remade = consent_pdf_render_now(signed_consent_id=signed.pk)
    assert remade.status == DocumentStatus.READY
    text = _pdf_text(remade.file, tmp_path)
    assert "Quillfeather" not in text
    assert "Zinnia" not in text
    assert "Anonymised record" in text
    # The consent's page still opens; the signature picture is no longer there.
    sign_in(client, practitioner)
    page = client.get(signed.get_absolute_url())
    assert page.status_code == 200
    assert b"Quillfeather" not in page.content
    assert b'data-testid="signature-image"' not in page.content
    picture = reverse(
        "consent:signature_image", kwargs={"patient": amelia.uuid, "signed": signed.uuid}
    )
    assert client.get(picture).status_code == 404
    done = AuditEvent.objects.get(patient_ref=amelia.uuid, actor_label="scheduled task")
    assert {"signed_consents", "consent_pdfs"} <= set(done.changed_fields)


def test_aftercare_sheets_and_allergy_test_photos_are_made_anonymous(
    amelia: Patient,
    practitioner: User,
    tmp_path: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:

    with time_machine.travel(SIGNED_ON, tick=False):
        document = ready_document(completed_session(patient=amelia))
    assert "Quillfeather" in _pdf_text(document.file, tmp_path)
    sheet_file = Path(document.file.path)
    given = SIGNED_ON - timedelta(days=2)
    test = give_and_read(
        amelia,
        practitioner,
        [cast(Ingredient, IngredientFactory())],
        given_at=given,
        result="positive",
        photo=jpeg(),
    )
    photo_file = Path(test.photo.path)
    assert photo_file.exists()
    erase(amelia, practitioner)

    _anonymise(django_capture_on_commit_callbacks)

    document.refresh_from_db()
    assert document.status == DocumentStatus.QUEUED
    assert not sheet_file.exists()
    from treatments.services.aftercare import aftercare_render

    remade = aftercare_render(document_id=document.pk)
    assert "Quillfeather" not in _pdf_text(remade.file, tmp_path)
    test.refresh_from_db()
    assert not test.photo
    assert not photo_file.exists()
    # The reading stays.
    assert (test.result, test.reaction) == ("positive", "Red wheal, 7 mm")


def _export(patient: Patient, by: User) -> SubjectAccessExport:
    export = subject_access_request(patient=patient, requested_by=by)
    return subject_access_render(export_id=export.pk)


def test_a_request_to_erase_withdraws_the_exports_already_made_at_once(
    amelia: Patient,
    practitioner: User,
    client: Client,
    django_capture_on_commit_callbacks: Any,
) -> None:
    export = _export(amelia, practitioner)
    path = Path(export.file.path)
    assert path.exists()
    with django_capture_on_commit_callbacks(execute=True):
        erase(amelia, practitioner)
    export.refresh_from_db()
    assert export.purged_at is not None
    assert not path.exists()
    sign_in(client, practitioner)
    url = reverse(
        "treatments:subject_access_download",
        kwargs={"patient": amelia.uuid, "export": export.uuid},
    )
    assert client.get(url).status_code == 410
    withdrawn = AuditEvent.objects.get(
        action=AuditAction.DELETE, object_type="treatments.subjectaccessexport"
    )
    assert withdrawn.actor == practitioner
    assert withdrawn.patient_ref == amelia.uuid


def test_anonymisation_withdraws_exports_made_after_the_request_and_those_still_queued(
    amelia: Patient, practitioner: User, django_capture_on_commit_callbacks: Any
) -> None:
    _signed(amelia, practitioner)
    erase(amelia, practitioner)
    made = _export(amelia, practitioner)
    path = Path(made.file.path)
    with time_machine.travel(NOW + timedelta(days=3), tick=False):
        made_later = _export(amelia, practitioner)
        later_path = Path(made_later.file.path)
    queued = subject_access_request(patient=amelia, requested_by=practitioner)

    _anonymise(django_capture_on_commit_callbacks)

    for export in (made, made_later, queued):
        export.refresh_from_db()
        assert export.purged_at is not None
        assert not export.is_downloadable
    assert not path.exists()
    assert not later_path.exists()
    # A render task still in the broker makes no file of the record.
    after = subject_access_render(export_id=queued.pk)
    assert not after.file
    assert after.status != DocumentStatus.READY
    assert not SubjectAccessExport.objects.filter(status=DocumentStatus.QUEUED).exists()


def test_records_merged_into_the_patient_are_anonymised_with_it(
    practitioner: User, django_capture_on_commit_callbacks: Any
) -> None:
    from tests.treatments.test_session_helpers import give_and_read
    from treatments.services.merge import patient_merge
    from treatments.services.portal import portal_invite

    survivor = cast(
        Patient,
        PatientFactory(first_name="Zinnia", last_name="Quill", date_of_birth=date(1980, 5, 2)),
    )
    duplicate = cast(
        Patient,
        PatientFactory(
            first_name="Zinnia",
            last_name="Quillfeather",
            date_of_birth=date(1980, 5, 12),
            email="zinnia.q@example.org",
            address="1 Lark Lane",
        ),
    )
    vitamin_c = cast(Ingredient, IngredientFactory(name="Vitamin C"))
    for patient in (duplicate, survivor):
        give_and_read(patient, practitioner, [vitamin_c], given_at=SIGNED_ON, result="positive")
    photo_add(
        patient=duplicate,
        uploaded_by=practitioner,
        area="face",
        kind="before",
        taken_on=SIGNED_ON.date(),
        image=clean_photo(io.BytesIO(jpeg()), size=len(jpeg())),
    )
    photo_file = Path(Photo.objects.get(patient=duplicate).image.path)
    portal_invite(patient=duplicate, invited_by=practitioner)
    signed = _signed(duplicate, practitioner)
    patient_merge(duplicate=duplicate, survivor=survivor, merged_by=practitioner)
    [note] = PatientAllergy.objects.filter(patient=survivor).values_list("notes", flat=True)
    assert "Quillfeather" in note
    erase(survivor, practitioner)

    assert _anonymise(django_capture_on_commit_callbacks)["anonymised"] == 1

    duplicate.refresh_from_db()
    assert (duplicate.first_name, duplicate.last_name) == ("Anonymised", "record")
    assert (duplicate.address, duplicate.email) == ("", "")
    assert not Photo.objects.filter(patient__in=[duplicate, survivor]).exists()
    assert not photo_file.exists()
    user = PortalAccount.objects.select_related("user").get(patient=survivor).user
    assert (user.email, user.is_active) == ("", False)
    assert "zinnia" not in user.username.lower()
    signed.refresh_from_db()
    assert signed.signer_name == "Anonymised record"
    # The merge wrote the duplicate's name and birth date into the allergy's notes.
    for notes in PatientAllergy.objects.values_list("notes", flat=True):
        assert "Quillfeather" not in notes
        assert "12 May 1980" not in notes


def test_anonymising_twice_changes_nothing_the_second_time(
    amelia: Patient, practitioner: User, django_capture_on_commit_callbacks: Any
) -> None:
    from treatments.services.data_rights import patient_anonymise

    signed = _signed(amelia, practitioner)
    consent_pdf_render_now(signed_consent_id=signed.pk)
    erase(amelia, practitioner)
    _anonymise(django_capture_on_commit_callbacks)
    consent_pdf_render_now(signed_consent_id=signed.pk)
    ready = SignedConsentPDF.objects.get(pk=signed.pk)
    assert ready.status == DocumentStatus.READY
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        from django.db import transaction

        with transaction.atomic():
            assert patient_anonymise(patient=Patient.objects.get(pk=amelia.pk)) == []
    assert callbacks == []
    again = SignedConsentPDF.objects.get(pk=signed.pk)
    assert (again.status, again.sha256) == (DocumentStatus.READY, ready.sha256)
    assert ErasureRequest.objects.get(patient=amelia).status == ErasureStatus.ANONYMISED


# --- Completeness: every model reaching a patient ----------------------------------------


def test_every_model_reaching_a_patient_says_what_anonymisation_does_with_it() -> None:
    """A model added with a link to a patient must be named in ANONYMISATION,
    with what happens to it; a file or a field that names a person on it must
    be one anonymisation removes."""
    from django.apps import apps

    from treatments.services.data_rights import ANONYMISATION

    reaching = _reaches_patient()
    missing = reaching - set(ANONYMISATION)
    assert not missing, f"anonymisation does not say what happens to: {sorted(missing)}"
    assert set(ANONYMISATION) <= reaching
    for label, rule in ANONYMISATION.items():
        assert len(rule.why) > 40, label
        model = apps.get_model(label)
        files = {f.name for f in model._meta.concrete_fields if isinstance(f, models.FileField)}
        # Every file of a patient (a photo, a signature, a PDF, a ZIP) goes or is made again.
        assert files <= set(rule.removes), (
            f"{label}: files not removed: {files - set(rule.removes)}"
        )
        naming = {
            f.name
            for f in model._meta.concrete_fields
            if f.name.endswith(("_name", "email", "phone", "address", "postcode"))
            or f.name in {"date_of_birth", "username", "gp_details"}
        }
        assert naming <= set(rule.removes), f"{label}: identifying fields kept: {naming}"


# --- The database's one path ----------------------------------------------------------------


def test_the_database_lets_anonymisation_change_only_the_signers_name_and_signature(
    amelia: Patient, practitioner: User
) -> None:
    from django.db import DatabaseError, connection, transaction

    signed = _signed(amelia, practitioner)
    other = cast(Patient, PatientFactory())

    def attempt(setting: str, **changes: Any) -> bool:
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT set_config('clinic.patient_anonymise', %s, true)", [setting]
                    )
                SignedConsent.objects.filter(pk=signed.pk).update(**changes)
        except DatabaseError:
            return False
        return True

    # Outside an anonymisation, or for another record: refused as ever.
    assert not attempt("", signer_name="Anonymised record")
    assert not attempt(str(other.pk), signer_name="Anonymised record")
    # During its own, only the name and the signature may change.
    assert not attempt(str(amelia.pk), signer_name="Anonymised record", text="Other text")
    assert not attempt(str(amelia.pk), photo_consent=False)
    assert attempt(str(amelia.pk), signer_name="Anonymised record", signature="")

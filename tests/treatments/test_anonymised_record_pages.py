"""An anonymised record says what it is wherever it shows: the patient's page
says so at the top and judges no readiness, the removed details show as
removed (never the placeholder date of birth), and what needs the person (a
booking, a copy of the records, a request to erase) is refused by the
services, with a plain sentence, not only hidden by the pages."""

from __future__ import annotations

import html
import re
from datetime import date
from pathlib import Path
from typing import Any, cast

import pytest
from django.db import transaction
from django.test import Client
from django.urls import reverse

from clinic.models import User
from consent.services import consent_pdf_render_now
from patients.models import Patient
from patients.services import AnonymisedRecordError, patient_update
from tests.conftest import sign_in
from tests.factories import PatientFactory
from tests.treatments import test_anonymisation as anonymisation
from tests.treatments import test_booking_support as support
from tests.treatments.test_anonymisation import (
    _anonymise,
    _pdf_text,
    _signed,
)
from tests.treatments.test_booking_support import MONDAY, Clinic, at
from tests.treatments.test_erasure import erase, frozen, media_root  # noqa: F401 (fixtures)
from treatments.models import Booking, ErasureRequest, SubjectAccessExport, TreatmentCourse
from treatments.selectors.merge import merge_problems
from treatments.services.booking import BookingRefusedError, booking_create
from treatments.services.data_rights import (
    DataRightsRefusedError,
    ErasureRefusedError,
    erasure_request_record,
    patient_anonymise,
    subject_access_request,
)
from treatments.services.merge import PatientMergeRefusedError, patient_merge

pytestmark = pytest.mark.django_db

clinic = support.clinic
amelia = anonymisation.amelia

PLACEHOLDER_BIRTH = "1 January 1900"


def _words(content: bytes) -> str:
    """The page's text as a person reads it: tags and test ids gone."""
    text = re.sub(r"<[^>]+>", " ", content.decode())
    return re.sub(r"\s+", " ", html.unescape(text))


@pytest.fixture
def anonymised(
    amelia: Patient, practitioner: User, django_capture_on_commit_callbacks: Any
) -> Patient:
    """Amelia, treated in 2019, asked to be erased; the daily run anonymised
    her record on 2 June 2027, when the retention ended."""
    _signed(amelia, practitioner)
    erase(amelia, practitioner)
    assert _anonymise(django_capture_on_commit_callbacks)["anonymised"] == 1
    amelia.refresh_from_db()
    return amelia


def test_the_anonymised_patients_page_says_so_and_judges_no_readiness(
    anonymised: Patient, practitioner: User, client: Client
) -> None:
    sign_in(client, practitioner)
    page = client.get(anonymised.get_absolute_url())
    assert page.status_code == 200
    text = _words(page.content)
    assert "This is an anonymised record" in text
    assert "2 Jun 2027" in text
    assert "removed, as the retention rules require" in text
    assert "Ready to treat?" not in text
    assert "Nothing stands in the way" not in text
    assert PLACEHOLDER_BIRTH not in text
    assert "Removed when the record was anonymised" in text

    panel = client.get(
        reverse("treatments:patient_treatment_panel", kwargs={"patient": anonymised.uuid})
    )
    assert "Book a session" not in _words(panel.content)


def test_the_anonymised_date_of_birth_shows_as_removed_in_search_and_its_documents(
    anonymised: Patient, practitioner: User, client: Client, tmp_path: Path
) -> None:
    sign_in(client, practitioner)
    found = _words(client.get(reverse("patients:list"), {"q": "anonymised"}).content)
    assert "date of birth removed" in found
    assert PLACEHOLDER_BIRTH not in found

    signed = anonymised.signed_consents.get()
    text = _pdf_text(consent_pdf_render_now(signed_consent_id=signed.pk).file, tmp_path)
    assert PLACEHOLDER_BIRTH not in text
    assert "date of birth removed" in text


def test_a_course_of_an_anonymised_record_is_not_shown_in_progress(
    clinic: Clinic, practitioner: User, client: Client
) -> None:
    # Set up as a fixture (no service needed): a course begun before the retention ended.
    TreatmentCourse.objects.create(
        patient=clinic.patient,
        protocol=clinic.protocol,
        planned_sessions=6,
        interval="fortnightly",
        created_by=practitioner,
    )
    with transaction.atomic():
        patient_anonymise(patient=clinic.patient)
    sign_in(client, practitioner)
    panel = _words(
        client.get(
            reverse("treatments:patient_treatment_panel", kwargs={"patient": clinic.patient.uuid})
        ).content
    )
    assert "In progress" not in panel
    assert "not continued: the record was anonymised" in panel


def test_booking_an_anonymised_record_is_refused_with_a_sentence(
    clinic: Clinic, receptionist: User
) -> None:
    with transaction.atomic():
        patient_anonymise(patient=clinic.patient)
    clinic.patient.refresh_from_db()
    with pytest.raises(BookingRefusedError) as refused:
        booking_create(
            patient=clinic.patient,
            practitioner=clinic.practitioner,
            room=clinic.room,
            protocol=clinic.protocol,
            starts_at=at(MONDAY, 10),
            ends_at=at(MONDAY, 10, 45),
            created_by=receptionist,
        )
    assert "anonymised" in refused.value.message
    assert refused.value.field == "patient"
    assert not Booking.objects.filter(patient=clinic.patient).exists()


def test_the_data_rights_page_of_an_anonymised_record_says_it_once_and_offers_no_erasure(
    anonymised: Patient, manager: User, client: Client
) -> None:
    sign_in(client, manager)
    page = client.get(reverse("treatments:data_rights", kwargs={"patient": anonymised.uuid}))
    assert page.status_code == 200
    text = _words(page.content)
    assert text.count("anonymised on") == 1
    assert "Record anonymised." not in text
    assert "Make a copy of the records" not in text
    assert "Record the request to erase" not in text
    assert 'name="received_on"' not in page.content.decode()
    assert "no one it could be given to" in text


def test_a_copy_and_a_request_to_erase_of_an_anonymised_record_are_refused(
    anonymised: Patient, manager: User, client: Client
) -> None:
    with pytest.raises(DataRightsRefusedError):
        subject_access_request(patient=anonymised, requested_by=manager)
    with pytest.raises(ErasureRefusedError):
        erasure_request_record(patient=anonymised, recorded_by=manager, received_on=MONDAY)

    sign_in(client, manager)
    copy = client.post(
        reverse("treatments:subject_access_create", kwargs={"patient": anonymised.uuid})
    )
    assert copy.status_code == 409
    assert "names no one any more, so no one can be given a copy" in _words(copy.content)
    assert not SubjectAccessExport.objects.filter(patient=anonymised).exists()
    erasure = client.post(
        reverse("treatments:erasure_create", kwargs={"patient": anonymised.uuid}),
        {"received_on": "23/11/2026", "notes": "", "confirm": "on"},
    )
    assert erasure.status_code in (400, 409)
    assert ErasureRequest.objects.filter(patient=anonymised).count() == 1


def test_the_copy_of_the_records_says_in_plain_words_what_the_fhir_file_is_for(
    manager: User, client: Client
) -> None:
    patient = cast(Patient, PatientFactory(date_of_birth=date(1985, 3, 4)))
    sign_in(client, manager)
    text = _words(
        client.get(reverse("treatments:data_rights", kwargs={"patient": patient.uuid})).content
    )
    assert "a machine-readable copy that another clinic's system can import" in text


def test_the_patient_page_names_its_two_panels_apart_and_says_reminders_in_a_sentence(
    clinic: Clinic, receptionist: User, client: Client
) -> None:
    patient = clinic.patient
    Patient.objects.filter(pk=patient.pk).update(consents_to_messages=False)
    sign_in(client, receptionist)
    page = _words(client.get(patient.get_absolute_url()).content)
    assert "None: the patient has not agreed to receive messages." in page
    assert "not agreed to messages" not in page
    panel = _words(
        client.get(
            reverse("treatments:patient_treatment_panel", kwargs={"patient": patient.uuid})
        ).content
    )
    timeline = _words(
        client.get(
            reverse("treatments:patient_timeline", kwargs={"patient": patient.uuid}),
            HTTP_HX_REQUEST="true",
        ).content
    )
    assert "Sessions to come" in panel
    assert "Story so far" in timeline
    assert "Sessions and bookings" not in timeline
    assert "No past session or booking yet" not in timeline
    assert "Bookings to come, cancelled ones too, are under Sessions to come." in timeline


def test_contact_details_are_never_put_back_on_an_anonymised_record(
    anonymised: Patient, receptionist: User, client: Client
) -> None:
    """Editing would name someone again: the service refuses, the form keeps
    what was typed and says why (409); opening the form leads back."""
    with pytest.raises(AnonymisedRecordError, match="no name or contact detail"):
        patient_update(
            patient=anonymised,
            updated_by=receptionist,
            expected_version=anonymised.version,
            email="amelia@example.com",
        )
    sign_in(client, receptionist)
    edit = reverse("patients:edit", kwargs={"patient": anonymised.uuid})
    opened = client.get(edit)
    assert opened.status_code == 302
    assert opened["Location"] == anonymised.get_absolute_url()
    page = client.get(anonymised.get_absolute_url())
    assert "Edit contact details" not in _words(page.content)
    assert "no name or contact detail can be put back" in _words(page.content)
    fields = {
        "first_name": "Amelia",
        "last_name": "Hart",
        "date_of_birth": "17/05/1990",
        "email": "amelia@example.com",
        "reminder_channel": "email",
        "version": str(anonymised.version),
    }
    sent = client.post(edit, fields)
    assert sent.status_code == 409, sent.context["form"].errors
    assert "no name or contact detail can be put back" in _words(sent.content)
    assert 'value="amelia@example.com"' in sent.content.decode()
    anonymised.refresh_from_db()
    assert anonymised.email == ""
    assert anonymised.first_name != "Amelia"


def test_an_anonymised_record_is_never_merged_with_one_that_names_someone(
    anonymised: Patient, practitioner: User, client: Client
) -> None:
    living = PatientFactory(first_name="Amelia", last_name="Hart")
    for duplicate, survivor in ((anonymised, living), (living, anonymised)):
        problems = merge_problems(duplicate=duplicate, survivor=survivor)
        assert [problem.code for problem in problems] == ["anonymised"]
        with pytest.raises(PatientMergeRefusedError) as refused:
            patient_merge(duplicate=duplicate, survivor=survivor, merged_by=practitioner)
        assert refused.value.code == "anonymised"
    assert Patient.objects.get(pk=anonymised.pk).merged_into_id is None
    assert Patient.objects.get(pk=living.pk).merged_into_id is None
    sign_in(client, practitioner)
    page = client.get(anonymised.get_absolute_url())
    assert "Compare and merge" not in _words(page.content)

"""Medical history: the questionnaire, signing, immutability, changes, screening,
and what reception may see of it."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import DatabaseError, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis.extra.django import from_form

from clinic.models import AuditAction, AuditEvent, User
from patients.forms import MedicalHistoryForm
from patients.models import MedicalHistory, Patient
from tests.conftest import frozen_at, sign_in
from tests.factories import NO_CONDITIONS, PatientFactory, make_history

pytestmark = pytest.mark.django_db
# A Tuesday morning in London, whatever the wall clock says.
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("Europe/London"))
frozen = frozen_at(NOW, tick=True)

CLINICAL_SENTINELS = (
    "isotretinoin",
    "roaccutane",
    "pregnan",
    "diabet",
    "anticoag",
    "epilep",
    "allerg",
)


@pytest.fixture
def patient() -> Patient:
    return PatientFactory(first_name="Amelia", last_name="Hart")


def history_url(patient: Patient, new: bool = False) -> str:
    return reverse(
        "patients:history_new" if new else "patients:history", kwargs={"patient": patient.uuid}
    )


def questionnaire(**overrides: str) -> dict[str, str]:
    data = dict.fromkeys(NO_CONDITIONS, "no")
    data.update(
        {
            "isotretinoin_taken": "no",
            "isotretinoin_last_dose": "",
            "chronic_condition_details": "",
            "medicines_other": "",
            "allergy_ingredients": "",
            "allergy_other": "",
            "notes": "",
            "confirm_reviewed": "on",
        }
    )
    data.update(overrides)
    return data


def test_practitioner_records_and_signs_a_history(
    patient: Patient, practitioner: User, client: Client
) -> None:
    response = sign_in(client, practitioner).post(history_url(patient, new=True), questionnaire())
    assert response.status_code == 302
    history = MedicalHistory.objects.get()
    assert history.signed_by == practitioner
    assert history.patient == patient
    assert (
        AuditEvent.objects.filter(action=AuditAction.CREATE, patient_ref=patient.uuid).count() == 1
    )
    page = client.get(history_url(patient)).content.decode()
    assert "Nothing in this history prevents treatment." in page


def test_isotretinoin_four_months_ago_blocks_until_18_months_have_passed(
    patient: Patient, practitioner: User, client: Client
) -> None:
    with time_machine.travel(date(2026, 11, 22)):
        data = questionnaire(isotretinoin_taken="yes", isotretinoin_last_dose="2026-07-22")
        sign_in(client, practitioner).post(history_url(patient, new=True), data)
        page = client.get(history_url(patient)).content.decode()
    assert 'data-testid="finding-isotretinoin"' in page
    assert "22 Jan 2028" in page  # 22 Jul 2026 + 18 months
    assert "Do not treat" in page


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"diabetes": ""}, "diabetes", "Answer yes or no."),
        ({"pregnant": "maybe"}, "pregnant", "Select a valid choice"),
        (
            {"isotretinoin_taken": "yes"},
            "isotretinoin_last_dose",
            "Give the date of the last dose.",
        ),
        (
            {"isotretinoin_last_dose": "2026-01-01"},
            "isotretinoin_last_dose",
            "answered no to isotretinoin",
        ),
        (
            {"isotretinoin_taken": "yes", "isotretinoin_last_dose": "2999-01-01"},
            "isotretinoin_last_dose",
            "cannot be in the future",
        ),
        (
            {"chronic_condition_uncontrolled": "yes"},
            "chronic_condition_details",
            "Say which condition",
        ),
        ({"confirm_reviewed": ""}, "confirm_reviewed", "Tick this box to sign"),
        ({"implant_areas": "ears"}, "implant_areas", "Select a valid choice"),
    ],
)
def test_incomplete_or_wrong_answers_are_refused_and_kept(
    patient: Patient, practitioner: User, client: Client, overrides: dict, field: str, message: str
) -> None:
    data = questionnaire(notes="Typed notes stay", **overrides)
    response = sign_in(client, practitioner).post(history_url(patient, new=True), data)
    assert response.status_code == 400
    assert field in response.context["form"].errors
    assert message in response.content.decode()
    assert "Typed notes stay" in response.content.decode()
    assert MedicalHistory.objects.count() == 0


def test_a_missing_answer_is_not_taken_as_no(
    patient: Patient, practitioner: User, client: Client
) -> None:
    data = questionnaire()
    del data["anticoagulants"]
    response = sign_in(client, practitioner).post(history_url(patient, new=True), data)
    assert response.status_code == 400
    assert MedicalHistory.objects.count() == 0


def test_a_signed_history_can_never_be_changed(patient: Patient, practitioner: User) -> None:
    history = make_history(patient, practitioner)
    with pytest.raises(DatabaseError, match="never changed"), transaction.atomic():
        MedicalHistory.objects.filter(pk=history.pk).update(pregnant=True)
    with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic():
        MedicalHistory.objects.filter(pk=history.pk).delete()
    assert MedicalHistory.objects.get(pk=history.pk).pregnant is False


def test_a_new_history_supersedes_and_the_page_shows_what_changed(
    patient: Patient, practitioner: User, client: Client
) -> None:
    with time_machine.travel(timezone.now() - timedelta(days=30)):
        make_history(patient, practitioner, allergy_ingredients="")
    sign_in(client, practitioner)
    form = client.get(history_url(patient, new=True))
    assert form.context["form"]["diabetes"].value() == "no"  # starts from the last answers
    client.post(
        history_url(patient, new=True),
        questionnaire(
            anticoagulants="yes",
            allergy_ingredients="vitamin C",
            based_on=form.context["form"]["based_on"].value(),  # the history it started from
        ),
    )
    page = client.get(history_url(patient))
    changes = {c.question: (c.before, c.after) for c in page.context["changes"]}
    assert changes == {
        "Aspirin, warfarin or another blood thinner": ("no", "yes"),
        "Known allergies to ingredients": ("—", "vitamin C"),
    }
    assert MedicalHistory.objects.count() == 2
    assert page.context["history"].anticoagulants is True


def test_reception_sees_flags_in_plain_words_never_the_clinical_reason(
    patient: Patient, practitioner: User, receptionist: User, client: Client
) -> None:
    sign_in(client, receptionist)
    page = client.get(patient.get_absolute_url()).content.decode()
    assert "medical history needed" in page
    make_history(
        patient,
        practitioner,
        isotretinoin_last_dose=timezone.localdate() - timedelta(days=120),
        pregnant=True,
        allergy_ingredients="lidocaine",
        notes="SENTINEL_NOTE_123",
    )
    page = client.get(patient.get_absolute_url()).content.decode()
    assert "ask the practitioner" in page
    assert "medical history needed" not in page
    lowered = page.lower()
    for word in (*CLINICAL_SENTINELS, "sentinel_note_123", "lidocaine"):
        assert word not in lowered, word
    assert "Open the medical history" not in page


def test_an_old_history_is_flagged_out_of_date(
    patient: Patient, practitioner: User, receptionist: User, client: Client
) -> None:
    with time_machine.travel(timezone.now() - timedelta(days=400)):
        make_history(patient, practitioner)
    page = sign_in(client, receptionist).get(patient.get_absolute_url()).content.decode()
    assert "medical history out of date" in page


@pytest.mark.parametrize("persona", ["receptionist", "manager"], indirect=True)
def test_only_practitioners_open_or_record_histories(
    patient: Patient, persona: User, client: Client
) -> None:
    sign_in(client, persona)
    assert client.get(history_url(patient)).status_code == 403
    assert client.get(history_url(patient, new=True)).status_code == 403
    assert client.post(history_url(patient, new=True), questionnaire()).status_code == 403
    assert MedicalHistory.objects.count() == 0


def test_reading_a_history_is_audited(patient: Patient, practitioner: User, client: Client) -> None:
    history = make_history(patient, practitioner)
    sign_in(client, practitioner).get(history_url(patient))
    event = AuditEvent.objects.get(action=AuditAction.VIEW, object_type="patients.medicalhistory")
    assert event.object_id == str(history.uuid)
    assert event.patient_ref == patient.uuid


@pytest.mark.parametrize("count", [1, 8])
def test_history_page_has_a_fixed_query_budget(
    patient: Patient, practitioner: User, client: Client, count: int, django_assert_max_num_queries
) -> None:
    for _ in range(count):
        make_history(patient, practitioner)
    sign_in(client, practitioner)
    client.get(reverse("home"))
    with django_assert_max_num_queries(9):
        assert client.get(history_url(patient)).status_code == 200
    with django_assert_max_num_queries(9):
        assert client.get(patient.get_absolute_url()).status_code == 200


# --- Access history ---------------------------------------------------------------------


def test_practitioner_sees_who_opened_what(
    patient: Patient, practitioner: User, receptionist: User, client: Client
) -> None:
    make_history(patient, practitioner)
    sign_in(Client(), receptionist).get(patient.get_absolute_url())
    sign_in(client, practitioner).get(history_url(patient))
    page = client.get(reverse("patients:access_history", kwargs={"patient": patient.uuid}))
    rows = list(page.context["page"])
    assert {r.actor_label for r in rows} >= {"reception", "practitioner"}
    body = page.content.decode()
    assert "medical history" in body  # what was opened
    assert page.context["show_what"] is True


def test_manager_sees_who_and_when_only(
    patient: Patient, practitioner: User, manager: User, client: Client
) -> None:
    make_history(patient, practitioner)
    sign_in(Client(), practitioner).get(history_url(patient))
    page = sign_in(client, manager).get(
        reverse("patients:access_history", kwargs={"patient": patient.uuid})
    )
    assert page.status_code == 200
    body = page.content.decode()
    assert "practitioner" in body
    assert "medical history" not in body
    assert page.context["show_what"] is False


def test_reception_cannot_see_the_access_history(
    patient: Patient, receptionist: User, client: Client
) -> None:
    url = reverse("patients:access_history", kwargs={"patient": patient.uuid})
    assert sign_in(client, receptionist).get(url).status_code == 403


@pytest.mark.parametrize("events", [3, 120])
def test_access_history_has_a_fixed_query_budget(
    patient: Patient, practitioner: User, client: Client, events: int, django_assert_max_num_queries
) -> None:
    AuditEvent.objects.bulk_create(
        AuditEvent(
            actor=practitioner, actor_label="practitioner", action="view", patient_ref=patient.uuid
        )
        for _ in range(events)
    )
    sign_in(client, practitioner)
    client.get(reverse("home"))
    # 9: the clinic's settings (its name in the header) are read once a page.
    with django_assert_max_num_queries(9):
        response = client.get(reverse("patients:access_history", kwargs={"patient": patient.uuid}))
    assert response.status_code == 200
    # The events and this opening itself, recorded first; fifty to a page.
    assert len(response.context["page"]) == min(events + 1, 50)


# --- Fuzzing ------------------------------------------------------------------------------


@hsettings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(from_form(MedicalHistoryForm))
def test_history_form_never_crashes(form: MedicalHistoryForm) -> None:
    if form.is_valid():
        assert set(form.answers()) >= set(NO_CONDITIONS)

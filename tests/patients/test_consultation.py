"""Consultations: recorded by practitioners, complete, never rewritten."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis.extra.django import from_form

from clinic.models import AuditAction, AuditEvent, User
from patients.forms import ConsultationForm
from patients.models import Consultation, Patient
from tests.conftest import sign_in
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def patient() -> Patient:
    return PatientFactory()


def url(patient: Patient, new: bool = False) -> str:
    name = "patients:consultation_new" if new else "patients:consultations"
    return reverse(name, kwargs={"patient": patient.uuid})


def data(**overrides: object) -> dict[str, object]:
    values: dict[str, object] = {
        "skin_type": "III",
        "concerns": ["lines", "dull"],
        "areas": ["face", "neck"],
        "goals": "Fresher skin before the summer",
        "expectations_discussed": "on",
        "risks_discussed": "on",
        "alternatives_discussed": "Chemical peel; no treatment",
        "recommended_protocol": "Revitalising, 6 sessions every 2 weeks",
        "notes": "",
    }
    values.update(overrides)
    return values


def test_practitioner_records_a_consultation(
    patient: Patient, practitioner: User, client: Client
) -> None:
    response = sign_in(client, practitioner).post(url(patient, new=True), data())
    assert response.status_code == 302
    consultation = Consultation.objects.get()
    assert consultation.concerns == ["lines", "dull"]
    assert consultation.recorded_by == practitioner
    page = client.get(url(patient)).content.decode()
    assert "Fine lines and wrinkles" in page
    assert "Revitalising, 6 sessions every 2 weeks" in page
    assert (
        AuditEvent.objects.filter(
            action=AuditAction.CREATE, object_type="patients.consultation"
        ).count()
        == 1
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"skin_type": "VII"}, "Select a valid choice"),
        ({"concerns": []}, "Tick at least one concern."),
        ({"areas": ["elbow"]}, "Select a valid choice"),
        ({"expectations_discussed": ""}, "Discuss this with the patient"),
        ({"goals": ""}, "This field is required."),
    ],
)
def test_incomplete_consultations_are_refused(
    patient: Patient, practitioner: User, client: Client, overrides: dict, message: str
) -> None:
    response = sign_in(client, practitioner).post(url(patient, new=True), data(**overrides))
    assert response.status_code == 400
    assert message in response.content.decode()
    # What was typed is kept; the goals only where they were typed.
    assert ("Fresher skin before the summer" in response.content.decode()) is (
        overrides != {"goals": ""}
    )
    assert Consultation.objects.count() == 0


@pytest.mark.parametrize("persona", ["receptionist", "manager"], indirect=True)
def test_only_practitioners_see_consultations(
    patient: Patient, persona: User, client: Client
) -> None:
    sign_in(client, persona)
    assert client.get(url(patient)).status_code == 403
    assert client.post(url(patient, new=True), data()).status_code == 403
    assert Consultation.objects.count() == 0


@pytest.mark.parametrize("count", [1, 12])
def test_consultation_list_has_a_fixed_query_budget(
    patient: Patient, practitioner: User, client: Client, count: int, django_assert_max_num_queries
) -> None:
    sign_in(client, practitioner)
    for _ in range(count):
        client.post(url(patient, new=True), data())
    with django_assert_max_num_queries(8):
        assert client.get(url(patient)).status_code == 200


@hsettings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(from_form(ConsultationForm))
def test_consultation_form_never_crashes(form: ConsultationForm) -> None:
    """Any input gets an answer: a valid form holds what the rules demand; an
    invalid one names, for each refused field, a message to show."""
    if form.is_valid():
        data = form.cleaned_data
        assert data["concerns"], "a concern is required"
        assert data["areas"], "an area is required"
        assert data["expectations_discussed"] is True
        assert data["risks_discussed"] is True
        assert data["goals"].strip()
    else:
        assert form.errors
        for field, messages in form.errors.items():
            assert field == "__all__" or field in form.fields, field
            assert all(str(message).strip() for message in messages), (field, messages)

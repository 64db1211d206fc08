"""The patient register: registration, duplicates, search, the patient page."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.extra.django import from_form, register_field_strategy
from phonenumber_field.formfields import PhoneNumberField

from clinic.models import AuditAction, AuditEvent, User
from patients.forms import PatientForm
from patients.models import Patient
from tests.conftest import frozen_at, sign_in
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db
# A Tuesday morning in London, whatever the wall clock says.
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("Europe/London"))
frozen = frozen_at(NOW, tick=True)

CREATE = reverse("patients:create")
LIST = reverse("patients:list")


def form_data(**overrides: str) -> dict[str, str]:
    data = {
        "first_name": "Amelia",
        "last_name": "Hart",
        "date_of_birth": "1986-04-12",
        "email": "amelia.hart@example.org",
        "phone": "07911 123456",
        "address": "12 Mill Lane\nBristol",
        "postcode": "BS1 4DJ",
        "emergency_contact_name": "Tom Hart",
        "emergency_contact_phone": "07912 345678",
        "gp_details": "",
        "reminder_channel": "sms",
        "consents_to_messages": "on",
    }
    data.update(overrides)
    return data


# --- Registering ------------------------------------------------------------------


def test_reception_registers_a_patient(receptionist: User, client: Client) -> None:
    response = sign_in(client, receptionist).post(CREATE, form_data())
    patient = Patient.objects.get()
    assert response.status_code == 302
    assert response["Location"] == patient.get_absolute_url()
    assert str(patient.uuid) in response["Location"]  # never the sequential id
    assert patient.phone.as_e164 == "+447911123456"
    assert patient.created_by == receptionist
    event = AuditEvent.objects.get(action=AuditAction.CREATE, object_type="patients.patient")
    assert event.patient_ref == patient.uuid
    assert "phone" in event.changed_fields
    assert "07911" not in str(event.changed_fields)  # names, not values


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "date_of_birth",
            "2026-11-25",  # the day after NOW
            "cannot be in the future",
        ),
        ("date_of_birth", "1850-01-01", "before 1900"),
        ("date_of_birth", "31/02/1990", "Enter the date as dd/mm/yyyy"),
        ("phone", "12345", "valid phone number"),
        ("phone", "", "need a mobile number"),
        ("email", "not-an-email", "valid email"),
        ("first_name", "", "required"),
    ],
)
def test_bad_registration_input_gets_a_clear_message_and_keeps_what_was_typed(
    receptionist: User, client: Client, field: str, value: str, message: str
) -> None:
    response = sign_in(client, receptionist).post(CREATE, form_data(**{field: value}))
    assert response.status_code == 400
    body = response.content.decode()
    assert message in body
    # What was typed is still there; the first name only where it was typed.
    assert ("Amelia" in body) is (field != "first_name")
    assert "12 Mill Lane" in body
    assert Patient.objects.count() == 0


def test_possible_duplicates_are_shown_before_saving(receptionist: User, client: Client) -> None:
    existing = PatientFactory(
        first_name="Amelia", last_name="Hart", date_of_birth=date(1986, 4, 12)
    )
    sign_in(client, receptionist)
    response = client.post(CREATE, form_data(email="other@example.org", phone="07723 456789"))
    assert response.status_code == 200
    assert Patient.objects.count() == 1
    body = response.content.decode()
    assert "This may be someone already registered" in body
    assert existing.get_absolute_url() in body
    assert "Register anyway" in body
    # Saving again with the confirmation registers the new person.
    confirmed = form_data(
        email="other@example.org", phone="07723 456789", confirm_not_duplicate="on"
    )
    assert client.post(CREATE, confirmed).status_code == 302
    assert Patient.objects.count() == 2


@pytest.mark.parametrize("same", ["email", "phone"])
def test_same_email_or_phone_is_a_possible_duplicate(
    receptionist: User, client: Client, same: str
) -> None:
    PatientFactory(first_name="Zoe", email="amelia.hart@example.org", phone="+447911123456")
    other = {"email": "x@example.org"} if same == "phone" else {"phone": "07911 777777"}
    response = sign_in(client, receptionist).post(CREATE, form_data(**other))
    assert "This may be someone already registered" in response.content.decode()
    assert Patient.objects.count() == 1


def test_extra_fields_posted_are_ignored(receptionist: User, client: Client) -> None:
    sign_in(client, receptionist).post(
        CREATE, form_data(search_text="evil", created_by="999", uuid=str(uuid.uuid4()))
    )
    patient = Patient.objects.get()
    assert patient.created_by == receptionist
    assert "evil" not in patient.search_text


def test_manager_reads_the_register_but_cannot_register(manager: User, client: Client) -> None:
    sign_in(client, manager)
    assert client.get(LIST).status_code == 200
    assert client.post(CREATE, form_data()).status_code == 403
    assert Patient.objects.count() == 0


# --- Editing ---------------------------------------------------------------------------


def test_editing_contact_details_records_what_changed(receptionist: User, client: Client) -> None:
    patient = PatientFactory(first_name="Amelia", last_name="Hart", date_of_birth=date(1986, 4, 12))
    data = form_data(
        email=patient.email,
        phone=patient.phone.as_national,
        postcode="BS8 1AA",
        version=str(patient.version),
    )
    response = sign_in(client, receptionist).post(
        reverse("patients:edit", kwargs={"patient": patient.uuid}), data
    )
    assert response.status_code == 302
    patient.refresh_from_db()
    assert patient.postcode == "BS8 1AA"
    event = AuditEvent.objects.get(action=AuditAction.UPDATE)
    assert "postcode" in event.changed_fields


def test_a_failed_edit_changes_nothing(receptionist: User, client: Client) -> None:
    patient = PatientFactory(first_name="Amelia")
    url = reverse("patients:edit", kwargs={"patient": patient.uuid})
    data = form_data(first_name="Changed", phone="1", version=str(patient.version))
    response = sign_in(client, receptionist).post(url, data)
    assert response.status_code == 400
    patient.refresh_from_db()
    assert patient.first_name == "Amelia"


def test_a_tampered_patient_id_is_a_404(receptionist: User, client: Client) -> None:
    sign_in(client, receptionist)
    assert client.get(f"/patients/{uuid.uuid4()}/").status_code == 404
    assert client.get("/patients/1/").status_code == 404
    assert client.post(f"/patients/{uuid.uuid4()}/edit/", form_data()).status_code == 404


# --- Searching --------------------------------------------------------------------------


@pytest.fixture
def amelia() -> Patient:
    return PatientFactory(
        first_name="Amelia",
        last_name="Hart",
        date_of_birth=date(1986, 4, 12),
        email="amelia.hart@example.org",
        phone="+447911123456",
    )


@pytest.mark.parametrize(
    "query",
    [
        "ameli",
        "HART",
        "amelia hart",
        "hart amel",
        "123456",
        "07911 123",
        "+44 7911",
        "amelia.hart@",
        "12/04/1986",
        "1986-04-12",
    ],
)
def test_search_finds_a_patient_by_any_part(
    amelia: Patient, receptionist: User, client: Client, query: str
) -> None:
    PatientFactory(
        first_name="Bob", last_name="Stone", date_of_birth=date(1970, 1, 1), phone="+447400111222"
    )
    response = sign_in(client, receptionist).get(LIST, {"q": query}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert [p.uuid for p in response.context["results"]] == [amelia.uuid]
    assert "<html" not in response.content.decode()  # htmx gets the results only


def test_search_with_no_match_says_so(amelia: Patient, receptionist: User, client: Client) -> None:
    response = sign_in(client, receptionist).get(LIST, {"q": "zzzz"})
    assert "No patient matches" in response.content.decode()


def test_search_records_that_it_happened_but_not_the_words(
    amelia: Patient, receptionist: User, client: Client
) -> None:
    sign_in(client, receptionist).get(LIST, {"q": "amelia"})
    event = AuditEvent.objects.get(object_type="patients.patient_search")
    assert "amelia" not in str(event.__dict__).lower()


@pytest.mark.parametrize(
    "query", ["%", "_", "'; DROP TABLE patients_patient; --", "\\", "a" * 500, "😀"]
)
def test_search_survives_odd_input(receptionist: User, client: Client, query: str) -> None:
    response = sign_in(client, receptionist).get(LIST, {"q": query})
    assert response.status_code == 200


# --- The patient page ---------------------------------------------------------------------


def test_patient_page_shows_contact_details_and_is_audited(
    amelia: Patient, receptionist: User, client: Client
) -> None:
    response = sign_in(client, receptionist).get(amelia.get_absolute_url())
    body = response.content.decode()
    assert "Amelia Hart" in body
    assert "07911 123456" in body
    event = AuditEvent.objects.get(action=AuditAction.VIEW, object_type="patients.patient")
    assert event.patient_ref == amelia.uuid
    assert event.actor == receptionist


@pytest.mark.parametrize("count", [1, 60])
def test_register_pages_have_fixed_query_budgets(
    receptionist: User, client: Client, count: int, django_assert_max_num_queries
) -> None:
    patients = [PatientFactory(last_name=f"Hart{i}") for i in range(count)]
    sign_in(client, receptionist)
    client.get(reverse("home"))
    # 9 each: the clinic's settings (its name in the header) are read once a page.
    with django_assert_max_num_queries(9):
        assert client.get(LIST, {"q": "hart"}).status_code == 200
    with django_assert_max_num_queries(9):
        assert client.get(patients[0].get_absolute_url()).status_code == 200
    with django_assert_max_num_queries(9):
        assert client.get(LIST).status_code == 200


# --- Fuzzing -----------------------------------------------------------------------------

register_field_strategy(
    PhoneNumberField, st.text(max_size=30) | st.from_regex(r"\+447\d{9}", fullmatch=True)
)


@hsettings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(from_form(PatientForm))
def test_patient_form_never_crashes(form: PatientForm) -> None:
    if form.is_valid():
        assert form.cleaned_data["date_of_birth"] <= timezone.localdate()


@hsettings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.fixed_dictionaries(
        {k: st.text(max_size=40) for k in form_data()},
    )
)
def test_registering_garbage_never_errors(receptionist: User, data: dict[str, str]) -> None:
    client = sign_in(Client(), receptionist)
    response = client.post(CREATE, data)
    assert response.status_code in (200, 302, 400)

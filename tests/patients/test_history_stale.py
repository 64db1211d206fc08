"""Two practitioners, one patient: a medical history or a consultation signed
from a page opened before a colleague's is refused with what the colleague
recorded, and what was typed is kept; the same form sent twice saves once."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from clinic.models import User
from clinic.roles import Role
from patients.models import Consultation, MedicalHistory, Patient
from patients.selectors import history_current
from tests.conftest import sign_in
from tests.factories import NO_CONDITIONS, PatientFactory, make_history
from tests.races import post_at_once

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=LONDON)

pytestmark = pytest.mark.django_db


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def patient() -> Patient:
    return PatientFactory(first_name="Amelia", last_name="Hart")


@pytest.fixture
def colleague(make_staff: Callable[..., User]) -> User:
    return make_staff("bella", Role.PRACTITIONER, first_name="Bella", last_name="Stone")


def hidden_value(page: str, name: str) -> str:
    """The value of the hidden input `name` the page hands the browser ("" when
    it has none)."""
    found = re.search(rf'<input type="hidden" name="{re.escape(name)}"( value="([^"]*)")?', page)
    assert found is not None, f"no hidden {name} on the page"
    return found.group(2) or ""


def history_url(patient: Patient) -> str:
    return reverse("patients:history_new", kwargs={"patient": patient.uuid})


def consultation_url(patient: Patient) -> str:
    return reverse("patients:consultation_new", kwargs={"patient": patient.uuid})


def opened_history(client: Client, patient: Patient, **answers: str) -> dict[str, str]:
    """The questionnaire as the page hands it out (its hidden fields and the
    answers it starts from), with `answers` changed and signed."""
    response = client.get(history_url(patient))
    assert response.status_code == 200
    form = response.context["form"]
    # Every question answered "no" where the page starts from no history.
    data = {**dict.fromkeys(NO_CONDITIONS, "no"), "isotretinoin_taken": "no"}
    for name in form.fields:
        if name not in ("implant_areas", "confirm_reviewed") and form[name].value():
            data[name] = str(form[name].value())
    data["based_on"] = hidden_value(response.content.decode(), "based_on")
    data["submission_token"] = hidden_value(response.content.decode(), "submission_token")
    data.update(answers)
    data["confirm_reviewed"] = "on"
    return data


def opened_consultation(client: Client, patient: Patient, **fields: Any) -> dict[str, Any]:
    page = client.get(consultation_url(patient)).content.decode()
    return {
        "based_on": hidden_value(page, "based_on"),
        "submission_token": hidden_value(page, "submission_token"),
        "skin_type": "III",
        "concerns": ["lines", "dull"],
        "areas": ["face"],
        "goals": "Fresher skin before the summer",
        "expectations_discussed": "on",
        "risks_discussed": "on",
        "alternatives_discussed": "Chemical peel",
        "recommended_protocol": "Revitalising, 6 sessions",
        "notes": "",
        **fields,
    }


# --- Medical history --------------------------------------------------------------------------


def test_a_history_signed_from_a_page_opened_before_a_colleagues_is_refused_with_her_answers(
    clock: time_machine.Coordinates, patient: Patient, practitioner: User, colleague: User
) -> None:
    make_history(patient, practitioner)  # H1: every answer "no"
    mine, theirs = sign_in(Client(), practitioner), sign_in(Client(), colleague)
    form_a = opened_history(mine, patient, notes="Checked every answer with her")
    form_b = opened_history(theirs, patient, pregnant="yes")
    clock.shift(timedelta(minutes=4))
    assert theirs.post(history_url(patient), form_b).status_code == 302  # H2: pregnant
    clock.shift(timedelta(minutes=3))

    response = mine.post(history_url(patient), form_a)

    assert response.status_code == 409
    body = response.content.decode()
    assert "Bella Stone signed a medical history for this patient at Mon 23 Nov, 09:04" in body
    assert "Nothing of yours was signed" in body
    # The answer she changed, its value now, by whom: on the notice and the question.
    notice = body[body.index('data-testid="stale-changes"') : body.index("</table>")]
    assert "Pregnant, or could be" in notice
    assert '<td class="text-break">Yes</td>' in notice
    assert "Changed by Bella Stone at 09:04. You had not changed it" in body
    assert "Checked every answer with her" in body  # what was typed is kept
    assert MedicalHistory.objects.count() == 2
    current = history_current(patient=patient)
    assert current is not None
    assert current.pregnant is True
    assert current.signed_by == colleague
    # "Use their version": the questionnaire starts from her answers.
    again = mine.get(history_url(patient))
    assert again.context["form"]["pregnant"].value() == "yes"
    assert hidden_value(again.content.decode(), "based_on") == str(current.uuid)


def test_a_first_history_signed_after_a_colleague_signed_one_is_refused(
    patient: Patient, practitioner: User, colleague: User, clock: time_machine.Coordinates
) -> None:
    mine, theirs = sign_in(Client(), practitioner), sign_in(Client(), colleague)
    form_a = opened_history(mine, patient)
    form_b = opened_history(theirs, patient, anticoagulants="yes")
    assert form_a["based_on"] == ""
    assert theirs.post(history_url(patient), form_b).status_code == 302
    response = mine.post(history_url(patient), form_a)
    assert response.status_code == 409
    assert "Aspirin, warfarin or another blood thinner" in response.content.decode()
    assert MedicalHistory.objects.count() == 1


# Named ids: the random one would name the test differently in each process
# of a parallel run, which then refuses to start.
@pytest.mark.parametrize(
    "based_on",
    ["not-a-uuid", str(uuid.uuid4()), "other patient"],
    ids=["not a uuid", "unknown uuid", "other patient"],
)
def test_a_history_form_naming_a_history_the_patient_never_had_is_refused(
    based_on: str, patient: Patient, practitioner: User, clock: time_machine.Coordinates
) -> None:
    make_history(patient, practitioner)
    client = sign_in(Client(), practitioner)
    data = opened_history(client, patient)
    if based_on == "other patient":
        based_on = str(make_history(PatientFactory(), practitioner).uuid)
    response = client.post(history_url(patient), {**data, "based_on": based_on})
    assert response.status_code == 400
    assert "Reload the page" in response.content.decode()
    assert MedicalHistory.objects.filter(patient=patient).count() == 1


def test_a_history_form_sent_twice_signs_one_history(
    patient: Patient, practitioner: User, clock: time_machine.Coordinates
) -> None:
    client = sign_in(Client(), practitioner)
    data = opened_history(client, patient)
    first = client.post(history_url(patient), data)
    second = client.post(history_url(patient), data)
    assert (first.status_code, second.status_code) == (302, 302)
    assert second["Location"] == first["Location"]
    assert MedicalHistory.objects.count() == 1
    page = client.get(second["Location"]).content.decode()
    assert "This was already saved: the form was sent twice, and saved once." in page


@pytest.mark.django_db(transaction=True)
def test_the_same_history_form_sent_twice_at_once_signs_one_history(
    practitioner: User, clock: time_machine.Coordinates
) -> None:
    patient = PatientFactory()
    clients = [sign_in(Client(), practitioner) for _ in range(2)]
    data = opened_history(clients[0], patient)
    answers = post_at_once(clients, history_url(patient), [data, data])
    assert [a.status for a in answers] == [302, 302], answers
    assert MedicalHistory.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_practitioners_signing_from_the_same_page_at_once_sign_one_history(
    practitioner: User, colleague: User, clock: time_machine.Coordinates
) -> None:
    patient = PatientFactory()
    make_history(patient, practitioner)
    clients = [sign_in(Client(), practitioner), sign_in(Client(), colleague)]
    forms = [opened_history(clients[0], patient), opened_history(clients[1], patient)]
    forms[1]["pregnant"] = "yes"
    answers = post_at_once(clients, history_url(patient), forms)
    assert sorted(a.status for a in answers) == [302, 409], answers
    assert MedicalHistory.objects.count() == 2


# --- Consultation ----------------------------------------------------------------------------


def test_a_consultation_from_a_page_opened_before_a_colleagues_is_refused_once_and_kept(
    patient: Patient, practitioner: User, colleague: User, clock: time_machine.Coordinates
) -> None:
    mine, theirs = sign_in(Client(), practitioner), sign_in(Client(), colleague)
    form_a = opened_consultation(mine, patient, goals="Typed by Priya before Bella saved")
    form_b = opened_consultation(
        theirs, patient, recommended_protocol="Hair loss protocol, 4 sessions"
    )
    assert theirs.post(consultation_url(patient), form_b).status_code == 302

    response = mine.post(consultation_url(patient), form_a)

    assert response.status_code == 409
    body = response.content.decode()
    assert "Bella Stone recorded a consultation for this patient at Mon 23 Nov, 09:00" in body
    assert "Hair loss protocol, 4 sessions" in body
    assert "Typed by Priya before Bella saved" in body  # kept
    assert Consultation.objects.count() == 1
    # Seen now: the kept form sent again is recorded beside hers.
    resent = {**form_a, "based_on": hidden_value(body, "based_on")}
    assert resent["based_on"] == str(Consultation.objects.get().uuid)
    assert mine.post(consultation_url(patient), resent).status_code == 302
    assert Consultation.objects.count() == 2


def test_a_consultation_form_sent_twice_records_one(
    patient: Patient, practitioner: User, clock: time_machine.Coordinates
) -> None:
    client = sign_in(Client(), practitioner)
    data = opened_consultation(client, patient)
    assert client.post(consultation_url(patient), data).status_code == 302
    second = client.post(consultation_url(patient), data)
    assert second.status_code == 302
    assert Consultation.objects.count() == 1

"""What a person reads when someone else saved first (409): one instruction,
the other person's changes as information (never as errors), values as
people read them, "Save mine" first and throwing away what was typed only
after a second, deliberate step. A medical history is signed again only on
purpose; a colleague's new consultation is shown as theirs, not as changes
to yours."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
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
from tests.factories import PatientFactory, make_history
from tests.pageforms import form_data
from tests.patients.test_history_stale import (
    consultation_url,
    history_url,
    opened_consultation,
    opened_history,
)

pytestmark = pytest.mark.django_db

LONDON = ZoneInfo("Europe/London")
OPENED = datetime(2026, 5, 14, 10, 0, tzinfo=LONDON)
SAVED = OPENED + timedelta(minutes=2)


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    with time_machine.travel(OPENED, tick=False) as traveller:
        yield traveller


@pytest.fixture
def other_receptionist(make_staff: Callable[..., User]) -> User:
    return make_staff("reception-2", Role.RECEPTIONIST, first_name="Nadia", last_name="Osei")


@pytest.fixture
def colleague(make_staff: Callable[..., User]) -> User:
    return make_staff("bella", Role.PRACTITIONER, first_name="Bella", last_name="Stone")


@pytest.fixture
def patient(clock: time_machine.Coordinates) -> Patient:
    return PatientFactory(
        first_name="Amelia",
        last_name="Hart",
        date_of_birth=date(1986, 4, 12),
        email="amelia.hart@example.org",
        phone="+447911123456",
        postcode="BA1 1AA",
        reminder_channel="sms",
        consents_to_messages=True,
    )


def changes_of(body: str) -> str:
    start = body.index('data-testid="stale-changes"')
    return body[start : body.index("</table>", start)]


def refused_contact_edit(
    patient: Patient, first: User, second: User, clock: time_machine.Coordinates
) -> str:
    """Two desks open the contact details; the first changes the date of
    birth, the postcode, the reminder channel and unticks the consent to
    messages; the second, from the older page, changes only the email."""
    url = reverse("patients:edit", kwargs={"patient": patient.uuid})
    a, b = sign_in(Client(), first), sign_in(Client(), second)
    page_a, page_b = a.get(url).content.decode(), b.get(url).content.decode()
    clock.move_to(SAVED)
    data_a = form_data(
        page_a, date_of_birth="1985-05-14", postcode="N1 1AA", reminder_channel="email"
    )
    data_a.pop("consents_to_messages")
    assert a.post(url, data_a).status_code == 302
    refused = b.post(url, form_data(page_b, email="amelia@newmail.example"))
    assert refused.status_code == 409
    return refused.content.decode()


def test_a_refused_contact_edit_gives_one_instruction_and_saving_mine_comes_first(
    clock: time_machine.Coordinates,
    patient: Patient,
    receptionist: User,
    other_receptionist: User,
) -> None:
    body = refused_contact_edit(patient, receptionist, other_receptionist, clock)

    notice = body[body.index('data-testid="stale-edit"') : body.index('id="patient-form"')]
    # One instruction: what was typed is kept, save it; never "start again".
    assert "What you typed is kept in the form below" in notice
    assert "make your change again" not in notice
    assert "use their version, then" not in notice.lower()
    # "Save mine" sends the form below and is the one primary action.
    save = re.search(r"<button[^>]*data-testid=\"save-mine\"[^>]*>([^<]*)<", notice)
    assert save is not None
    assert 'form="patient-form"' in save.group(0)
    assert "btn-primary" in save.group(0)
    assert save.group(1) == "Save mine"
    assert notice.count("btn-primary") == 1
    # Throwing away what was typed takes a second step, inside a <details>.
    details = notice[notice.index("<details") : notice.index("</details>")]
    assert "Discard mine and use theirs" in details
    assert 'data-testid="use-their-version"' in details
    assert 'data-testid="use-their-version"' not in notice.replace(details, "")


def test_the_other_desks_changes_are_notes_not_errors_with_values_as_people_read_them(
    clock: time_machine.Coordinates,
    patient: Patient,
    receptionist: User,
    other_receptionist: User,
) -> None:
    body = refused_contact_edit(patient, receptionist, other_receptionist, clock)

    changes = changes_of(body)
    assert "14/05/1985" in changes  # never "1985-05-14"
    assert "1985-05-14" not in changes
    assert re.search(r"Agrees to receive[^<]*</th>\s*<td[^>]*>No</td>", changes)
    assert re.search(r"Reminders by</th>\s*<td[^>]*>Email</td>", changes)
    assert "N1 1AA" in changes
    # Fields Nadia never touched are not marked as errors: a plain note.
    form = body[body.index('id="patient-form"') :]
    assert "is-invalid" not in form
    assert "invalid-feedback" not in form
    assert "text-danger" not in form
    postcode = form[form.index('name="postcode"') :]
    postcode = postcode[: postcode.index('name="emergency_contact_name"')]
    assert 'data-testid="stale-note"' in postcode
    assert "Changed by Rosa" in postcode
    assert "You had not changed it, so it now shows their value." in postcode
    # ... and the form shows their values there: saving keeps them.
    again = form_data(body)
    assert again["postcode"] == "N1 1AA"
    assert again["email"] == "amelia@newmail.example"


# --- Medical history --------------------------------------------------------------------------


NOW = datetime(2026, 11, 23, 9, 0, tzinfo=LONDON)


@pytest.fixture
def history_clock() -> Iterator[time_machine.Coordinates]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def test_after_a_history_conflict_the_signing_box_is_unticked_and_signing_again_keeps_her_answers(
    history_clock: time_machine.Coordinates,
    practitioner: User,
    colleague: User,
) -> None:
    patient = PatientFactory(first_name="Amelia", last_name="Hart")
    make_history(patient, practitioner)  # every answer "no"
    mine, theirs = sign_in(Client(), practitioner), sign_in(Client(), colleague)
    form_a = opened_history(mine, patient, active_acne="yes", notes="Went through it all")
    form_b = opened_history(theirs, patient, pregnant="yes", active_acne="no")
    history_clock.shift(timedelta(minutes=4))
    assert theirs.post(history_url(patient), form_b).status_code == 302

    refused = mine.post(history_url(patient), form_a)

    assert refused.status_code == 409
    body = refused.content.decode()
    assert '<td class="text-break">Yes</td>' in changes_of(body)
    assert "now: yes" not in body
    assert "now: no" not in body
    page = form_data(body)
    assert "confirm_reviewed" not in page  # unticked: one click does not sign
    current = history_current(patient=patient)
    assert current is not None
    assert page["based_on"] == str(current.uuid)
    assert page["pregnant"] == "yes"  # her answer, which I had not changed
    assert page["active_acne"] == "yes"  # mine, kept
    assert page["notes"] == "Went through it all"
    assert "invalid-feedback" not in body[body.index('data-testid="history-form"') :]

    # Signed without ticking the box: refused, nothing signed.
    unticked = mine.post(history_url(patient), page)
    assert unticked.status_code == 400
    assert MedicalHistory.objects.count() == 2
    # Gone through with the patient and ticked: signed, her answer kept.
    signed = mine.post(history_url(patient), {**page, "confirm_reviewed": "on"})
    assert signed.status_code == 302
    newest = history_current(patient=patient)
    assert newest is not None
    assert newest.signed_by == practitioner
    assert (newest.pregnant, newest.active_acne) == (True, True)


# --- Consultation ----------------------------------------------------------------------------


def test_a_colleagues_new_consultation_is_shown_as_hers_not_as_changes_to_mine(
    history_clock: time_machine.Coordinates,
    practitioner: User,
    colleague: User,
) -> None:
    patient = PatientFactory(first_name="Amelia", last_name="Hart")
    mine, theirs = sign_in(Client(), practitioner), sign_in(Client(), colleague)
    form_a = opened_consultation(mine, patient, goals="Smoother forehead")
    form_b = opened_consultation(
        theirs, patient, goals="Brighter skin", recommended_protocol="Face rejuvenation x4"
    )
    history_clock.shift(timedelta(minutes=3))
    assert theirs.post(consultation_url(patient), form_b).status_code == 302

    refused = mine.post(consultation_url(patient), form_a)

    assert refused.status_code == 409
    body = refused.content.decode()
    assert (
        "Bella Stone recorded a consultation for this patient at Mon 23 Nov, 09:03 while you "
        "were writing yours; yours is not saved yet. Send it to record yours as well."
    ) in body
    # Hers, read-only, for reference: her goals and her protocol, choices by label.
    hers = body[body.index('data-testid="their-consultation"') : body.index("</section>")]
    assert "Brighter skin" in hers
    assert "Face rejuvenation x4" in hers
    assert "Fine lines and wrinkles" in hers  # a concern by its label, not "lines"
    assert "<input" not in hers
    assert "<textarea" not in hers
    # No "use their version", no red notes on my fields, nothing called a change.
    assert 'data-testid="use-their-version"' not in body
    assert "Use their version" not in body
    assert "invalid-feedback" not in body
    assert "is-invalid" not in body
    assert 'data-testid="stale-changes"' not in body
    assert Consultation.objects.count() == 1
    # Sent as it stands: mine is recorded beside hers.
    again = form_data(body)
    assert again["goals"] == "Smoother forehead"
    assert mine.post(consultation_url(patient), again).status_code == 302
    assert sorted(Consultation.objects.values_list("goals", flat=True)) == [
        "Brighter skin",
        "Smoother forehead",
    ]

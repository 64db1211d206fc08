"""What people read around a merge: who may merge (a manager is told it is a
practitioner's job, not sent to ask themselves), what the merge moved as a
sentence, the record an old link now leads to, and, for a form sent to the
merged record, only what was typed that the record that stays lacks, as
people read it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from clinic.models import User
from patients.models import Patient
from patients.services import consultation_record
from tests.conftest import sign_in
from tests.factories import PatientFactory, make_history
from tests.pageforms import form_data
from tests.races import hidden_value
from treatments.services.merge import patient_merge
from treatments.views.merge import moved_sentence

pytestmark = pytest.mark.django_db

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=LONDON)


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def duplicate() -> Patient:
    return PatientFactory(
        first_name="Rhianon",
        last_name="Price",
        date_of_birth=date(1985, 5, 14),
        email="rhiannon@example.org",
        phone="+447911000001",
        postcode="E2 7AA",
        reminder_channel="sms",
        consents_to_messages=True,
    )


@pytest.fixture
def survivor() -> Patient:
    return PatientFactory(
        first_name="Rhiannon",
        last_name="Price",
        date_of_birth=date(1985, 5, 14),
        email="r.price@example.org",
        phone="+447911000002",
        postcode="N1 1AA",
        reminder_channel="sms",
        consents_to_messages=True,
    )


def compare_url(duplicate: Patient, survivor: Patient) -> str:
    base = reverse("treatments:patient_merge_compare", kwargs={"patient": duplicate.uuid})
    return f"{base}?into={survivor.uuid}"


# --- Who may merge ------------------------------------------------------------------------


def test_a_manager_refused_a_merge_is_told_it_is_a_practitioners_job(
    duplicate: Patient, survivor: Patient, manager: User
) -> None:
    response = sign_in(Client(), manager).get(compare_url(duplicate, survivor))

    assert response.status_code == 403
    body = response.content.decode()
    assert "Merging records is done by a practitioner." in body
    assert "ask a practitioner to do it" in body
    assert "clinic manager" not in body


def test_reception_refused_a_merge_is_told_who_does_it(
    duplicate: Patient, survivor: Patient, receptionist: User
) -> None:
    merge = reverse("treatments:patient_merge", kwargs={"patient": duplicate.uuid})
    response = sign_in(Client(), receptionist).post(merge, {"into": str(survivor.uuid)})

    assert response.status_code == 403
    body = response.content.decode()
    assert "Merging records is done by a practitioner." in body
    assert "ask a practitioner, or your clinic manager if you need it for your work" in body


def test_a_manager_refused_another_practitioners_page_is_told_which_role_uses_it(
    duplicate: Patient, manager: User
) -> None:
    url = reverse("patients:history_new", kwargs={"patient": duplicate.uuid})
    response = sign_in(Client(), manager).get(url)

    assert response.status_code == 403
    body = response.content.decode()
    assert "Only a practitioner uses this page." in body
    assert "clinic manager" not in body


# --- What the merge moved, as a sentence -------------------------------------------------------


def test_the_merge_says_what_moved_in_words_leaving_out_what_had_none(
    duplicate: Patient, survivor: Patient, practitioner: User
) -> None:
    make_history(duplicate, practitioner)
    for goals in ("Brighter skin", "Fewer lines"):
        consultation_record(
            patient=duplicate,
            recorded_by=practitioner,
            skin_type="III",
            concerns=["lines"],
            areas=["face"],
            goals=goals,
            expectations_discussed=True,
            risks_discussed=True,
            alternatives_discussed="Peels",
            recommended_protocol="Revitalising",
            notes="",
        )
    client = sign_in(Client(), practitioner)
    page = client.get(compare_url(duplicate, survivor)).content.decode()
    merge = reverse("treatments:patient_merge", kwargs={"patient": duplicate.uuid})

    response = client.post(
        merge,
        {
            "into": hidden_value(page, "into"),
            "duplicate_version": hidden_value(page, "duplicate_version"),
            "survivor_version": hidden_value(page, "survivor_version"),
            "confirm": "on",
        },
        follow=True,
    )

    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    assert len(shown) == 1
    assert "Rhianon Price's record (born 14 May 1985) was merged into this one" in shown[0]
    assert "Moved to this record: 1 medical history and 2 consultations." in shown[0]
    assert ": 0" not in shown[0]
    assert "Moved here" not in shown[0]


def test_the_sentence_of_what_moved_counts_in_words() -> None:
    assert moved_sentence({}) == "Nothing was recorded on it to move."
    assert moved_sentence({"bookings": 1, "photos": 0}) == "Moved to this record: 1 booking."
    assert (
        moved_sentence({"bookings": 2, "allergy_tests": 1, "contact_changes": 1})
        == "Moved to this record: 1 allergy test, 2 bookings and 1 record of a "
        "contact-detail change."
    )


# --- Old links and forms of the merged record ----------------------------------------------


def test_an_old_link_to_the_merged_record_says_once_where_it_now_leads(
    duplicate: Patient, survivor: Patient, practitioner: User, receptionist: User
) -> None:
    patient_merge(duplicate=duplicate, survivor=survivor, merged_by=practitioner)
    client = sign_in(Client(), receptionist)
    old = reverse("patients:detail", kwargs={"patient": duplicate.uuid})

    response = client.get(old, follow=True)

    assert response.redirect_chain == [(survivor.get_absolute_url(), 302)]
    body = response.content.decode()
    assert (
        "This record was merged into Rhiannon Price&#x27;s record (born 14 May 1985): you are "
        "now on the record that stays."
    ) in body
    # Once: the next page does not say it again.
    assert "This record was merged" not in client.get(survivor.get_absolute_url()).content.decode()
    # A picture or a part of a page loaded from an old address leaves no message behind.
    client.get(old, HTTP_SEC_FETCH_DEST="image")
    assert "This record was merged" not in client.get(survivor.get_absolute_url()).content.decode()


def test_a_form_sent_to_a_merged_record_shows_only_what_was_typed_that_the_survivor_lacks(
    duplicate: Patient, survivor: Patient, practitioner: User, receptionist: User
) -> None:
    url = reverse("patients:edit", kwargs={"patient": duplicate.uuid})
    desk = sign_in(Client(), receptionist)
    page = desk.get(url).content.decode()
    patient_merge(duplicate=duplicate, survivor=survivor, merged_by=practitioner)
    typed = form_data(
        page,
        emergency_contact_name="Gareth Price",  # new: shown
        postcode="N1 1AA",  # typed, but the survivor has it already: left out
        reminder_channel="email",  # shown by its label
    )
    typed.pop("consents_to_messages")  # unticked: shown as "No"

    refused = desk.post(url, typed)

    assert refused.status_code == 409
    body = refused.content.decode()
    shown = body[body.index('data-testid="typed-values"') : body.index("</dl>")]
    assert "Emergency contact" in shown
    assert "Gareth Price" in shown
    assert "Reminders by</dt>" in shown
    assert ">Email</dd>" in shown
    assert "Agrees to receive reminders and aftercare messages</dt>" in shown
    assert ">No</dd>" in shown
    # Never the misspelt first name the form merely showed, nor what was not typed.
    assert "Rhianon" not in shown
    assert "First name" not in shown
    assert "Date of birth" not in shown
    assert "1985-05-14" not in shown
    assert "Postcode" not in shown
    assert ">on<" not in shown
    # The record that stays is named and linked.
    notice = body[body.index('data-testid="record-merged"') :]
    assert "Rhiannon Price" in notice
    assert "(born 14 May 1985)" in notice
    assert survivor.get_absolute_url() in body
    assert reverse("patients:edit", kwargs={"patient": survivor.uuid}) in body

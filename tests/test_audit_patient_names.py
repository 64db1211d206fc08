"""The manager's audit log names the patient each row concerns: a record
merged into another by the record that stayed, a page of names in one query
whatever its length, and only for managers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from clinic.audit import audit_log
from clinic.models import AuditAction, AuditEvent, User
from clinic.selectors import patient_labels_of
from patients.models import Patient
from tests.conftest import sign_in
from tests.factories import PatientFactory
from treatments.services.merge import patient_merge
from treatments.services.portal import portal_invite

pytestmark = pytest.mark.django_db

MORNING = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def viewed(actor: User, patient: Patient, minute: int) -> AuditEvent:
    with time_machine.travel(MORNING + timedelta(minutes=minute), tick=False):
        return audit_log(
            actor=actor, action=AuditAction.VIEW, obj=patient, patient_ref=patient.uuid
        )


def cells(client: Client, **query: str) -> list[str]:
    """The Patient column of the audit log, newest row first, as text."""
    response = client.get(reverse("audit_log"), query)
    assert response.status_code == 200
    return [
        " ".join(label.name.split()) + (" (merged)" if label.merged else "") if label else "—"
        for _event, label in response.context["rows"]
    ]


def test_each_row_names_its_patient_and_links_their_record(
    manager: User, practitioner: User
) -> None:
    ada = PatientFactory(first_name="Ada", last_name="Lovelace")
    mary = PatientFactory(first_name="Mary", last_name="Shelley")
    viewed(practitioner, ada, 0)
    viewed(practitioner, mary, 1)
    client = sign_in(Client(), manager)
    response = client.get(reverse("audit_log"), {"user": practitioner.username})
    body = response.content.decode()
    assert [label.name for _e, label in response.context["rows"]] == [
        "Mary Shelley",
        "Ada Lovelace",
    ]
    url = reverse("patients:detail", kwargs={"patient": ada.uuid})
    assert f'<a href="{url}">Ada Lovelace</a>' in body


def test_a_row_about_no_patient_shows_a_dash(manager: User, practitioner: User) -> None:
    with time_machine.travel(MORNING, tick=False):
        audit_log(actor=practitioner, action=AuditAction.VIEW, obj=practitioner)
    client = sign_in(Client(), manager)
    assert cells(client, user=practitioner.username) == ["—"]


def test_a_record_merged_into_another_is_named_by_the_one_that_stayed(
    manager: User, practitioner: User
) -> None:
    survivor = PatientFactory(first_name="Oliver", last_name="Twist")
    duplicate = PatientFactory(first_name="Olly", last_name="Twisst")
    viewed(practitioner, duplicate, 0)
    viewed(practitioner, survivor, 1)
    with time_machine.travel(MORNING + timedelta(minutes=2), tick=False):
        patient_merge(duplicate=duplicate, survivor=survivor, merged_by=practitioner)

    client = sign_in(Client(), manager)
    response = client.get(reverse("audit_log"), {"action": AuditAction.VIEW})
    labels = [label for _e, label in response.context["rows"] if label]
    assert [(label.name, label.merged) for label in labels] == [
        ("Oliver Twist", False),
        ("Oliver Twist", True),
    ]
    body = response.content.decode()
    assert "Olly" not in body
    assert "(merged duplicate)" in body
    survivor_page = reverse("patients:detail", kwargs={"patient": survivor.uuid})
    assert body.count(f'<a href="{survivor_page}">Oliver Twist</a>') == 2


def test_a_chain_of_merges_is_followed_to_its_end(practitioner: User) -> None:
    first, second, last = (PatientFactory(first_name=n, last_name="Doe") for n in "ABC")
    # Two hops, as a record merged before its survivor was merged would be
    # without the merge's re-pointing: the walk does not rely on it.
    merged = {"merged_at": MORNING, "merged_by": practitioner}
    Patient.objects.filter(pk=first.pk).update(merged_into=second, **merged)
    Patient.objects.filter(pk=second.pk).update(merged_into=last, **merged)
    labels = patient_labels_of([first.uuid, second.uuid, last.uuid, None])
    assert {record: (label.name, label.merged) for record, label in labels.items()} == {
        first.uuid: ("C Doe", True),
        second.uuid: ("C Doe", True),
        last.uuid: ("C Doe", False),
    }


def test_an_id_of_no_record_is_said_to_be_not_found(manager: User, practitioner: User) -> None:
    gone = PatientFactory.build()  # never saved: the trail outlives records
    with time_machine.travel(MORNING, tick=False):
        audit_log(
            actor=practitioner, action=AuditAction.VIEW, obj=practitioner, patient_ref=gone.uuid
        )
    client = sign_in(Client(), manager)
    body = client.get(reverse("audit_log"), {"user": practitioner.username}).content.decode()
    assert "record not found" in body


def test_names_are_escaped(manager: User, practitioner: User) -> None:
    viewed(practitioner, PatientFactory(first_name="<b>Bold</b>", last_name="Tag"), 0)
    body = sign_in(Client(), manager).get(reverse("audit_log")).content.decode()
    assert "&lt;b&gt;Bold&lt;/b&gt; Tag" in body
    assert "<b>Bold</b>" not in body


def test_a_page_of_25_rows_and_one_of_100_cost_the_same_queries(
    manager: User, practitioner: User
) -> None:
    """Every row about another patient, one in four of them merged into
    another record: the names still come in one query for the page."""
    survivor = PatientFactory(first_name="Stay", last_name="Here")
    for minute in range(100):
        patient = PatientFactory(first_name=f"P{minute}", last_name="Person")
        viewed(practitioner, patient, minute)
        if minute % 4 == 0:
            with time_machine.travel(MORNING + timedelta(minutes=minute, seconds=30)):
                patient_merge(duplicate=patient, survivor=survivor, merged_by=practitioner)
    client = sign_in(Client(), manager)
    client.get(reverse("home"))  # the first request starts the idle timer
    counts = {}
    for per_page in (25, 100):
        query = {"action": AuditAction.VIEW, "per_page": str(per_page)}
        with CaptureQueriesContext(connection) as queries:
            response = client.get(reverse("audit_log"), query)
        rows = response.context["rows"]
        assert len(rows) == per_page
        assert all(label is not None for _event, label in rows)
        assert sum(label.merged for _event, label in rows) == per_page // 4
        assert sum("WITH RECURSIVE" in q["sql"] for q in queries.captured_queries) == 1
        counts[per_page] = len(queries)
    assert counts[25] == counts[100] <= 9


@pytest.mark.parametrize("persona", ["receptionist", "practitioner"], indirect=True)
def test_staff_other_than_managers_do_not_see_the_names(persona: User) -> None:
    viewed(persona, PatientFactory(first_name="Secret", last_name="Patient"), 0)
    response = sign_in(Client(), persona).get(reverse("audit_log"))
    assert response.status_code == 403
    assert "Secret" not in response.content.decode()


def test_a_patient_or_a_stranger_does_not_see_the_audit_log(practitioner: User) -> None:
    account = portal_invite(patient=PatientFactory(), invited_by=practitioner)
    patient_client = Client()
    patient_client.force_login(account.user)
    assert patient_client.get(reverse("audit_log")).status_code == 403
    stranger = Client().get(reverse("audit_log"))
    assert stranger.status_code == 302
    assert stranger["Location"].startswith(reverse("login"))

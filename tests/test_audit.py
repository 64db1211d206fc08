"""The audit trail: what is recorded, and that it can only grow."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.db import DatabaseError, connection, transaction
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from clinic.audit import audit_log, audit_read
from clinic.models import AuditAction, AuditEvent, User
from clinic.selectors import audit_events_filtered
from tests.conftest import sign_in, totp_code
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def test_sign_in_is_recorded_with_who_and_where(practitioner: User, client: Client) -> None:
    with time_machine.travel(datetime(2026, 11, 10, 9, 0, tzinfo=UTC), tick=False):
        client.post(
            "/accounts/login/",
            {"username": "practitioner", "password": PASSWORD},
            REMOTE_ADDR="192.0.2.10",
        )
        device = TOTPDevice.objects.get(user=practitioner)
        client.post(
            reverse("two_factor"), {"otp_token": totp_code(device)}, REMOTE_ADDR="192.0.2.10"
        )
    event = AuditEvent.objects.get(action=AuditAction.LOGIN)
    assert event.actor == practitioner
    assert event.actor_label == "practitioner"
    assert event.roles == "practitioner"
    assert event.ip == "192.0.2.10"
    assert len(event.request_id) == 16


def test_a_read_is_recorded_against_its_patient(practitioner: User) -> None:
    request = RequestFactory().get("/")
    request.user = practitioner
    patient = uuid.uuid4()
    audit_read(request, practitioner, patient_ref=patient)
    event = AuditEvent.objects.get(action=AuditAction.VIEW)
    assert event.patient_ref == patient
    assert event.object_type == "clinic.user"
    assert event.object_id == str(practitioner.uuid)  # the public id, not the sequential key


def test_changes_record_field_names_not_values(practitioner: User) -> None:
    audit_log(
        actor=practitioner,
        action=AuditAction.UPDATE,
        obj=practitioner,
        changed_fields=["email", "first_name"],
    )
    event = AuditEvent.objects.get(action=AuditAction.UPDATE)
    assert event.changed_fields == ["email", "first_name"]


def test_the_database_refuses_to_change_or_delete_audit_rows(practitioner: User) -> None:
    # The application role has no UPDATE or DELETE on the trail; the owner is
    # stopped by the trigger (tests/test_dbroles.py).
    event = audit_log(actor=practitioner, action=AuditAction.VIEW, obj=practitioner)
    with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action=AuditAction.DELETE)
    with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    with (
        pytest.raises(DatabaseError, match="permission denied"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("UPDATE clinic_auditevent SET actor_label = 'someone else'")
    assert AuditEvent.objects.get(pk=event.pk).action == AuditAction.VIEW


def test_manager_sees_the_audit_log_and_can_filter_it(
    manager: User, practitioner: User, client: Client
) -> None:
    audit_log(actor=practitioner, action=AuditAction.VIEW, obj=practitioner)
    audit_log(actor=manager, action=AuditAction.UPDATE, obj=manager)
    sign_in(client, manager)
    page = client.get(reverse("audit_log"), {"user": "practitioner"})
    assert page.status_code == 200
    rows = list(page.context["page"])
    assert rows
    assert all(r.actor_label == "practitioner" for r in rows)
    page = client.get(reverse("audit_log"), {"action": "update"})
    assert [r.action for r in page.context["page"]] == ["update"]


def test_audit_log_filter_rejects_nonsense_without_error(manager: User, client: Client) -> None:
    sign_in(client, manager)
    today = timezone.localdate()
    response = client.get(
        reverse("audit_log"),
        {"since": today, "until": today - timedelta(days=3), "action": "drop table", "page": "x"},
    )
    assert response.status_code == 200
    assert "The end date is before the start date." in response.content.decode()


@pytest.mark.parametrize("rows", [5, 400])
def test_audit_log_page_has_a_fixed_query_budget(
    manager: User, client: Client, rows: int, django_assert_max_num_queries
) -> None:
    AuditEvent.objects.bulk_create(
        AuditEvent(actor=manager, actor_label="manager", action=AuditAction.VIEW)
        for _ in range(rows)
    )
    sign_in(client, manager)
    client.get(reverse("home"))  # the first request starts the idle timer
    with django_assert_max_num_queries(8):
        assert client.get(reverse("audit_log")).status_code == 200


@pytest.mark.parametrize("persona", ["receptionist", "practitioner"], indirect=True)
def test_only_managers_open_the_audit_log(persona: User, client: Client) -> None:
    assert sign_in(client, persona).get(reverse("audit_log")).status_code == 403


EDGE_DAYS = ["0001-01-01", "9999-12-31"]
DATE_FILTERS = [
    ("manager", "audit_log", "since"),
    ("manager", "audit_log", "until"),
    ("receptionist", "treatments:calendar", "date"),
    ("receptionist", "patients:list", "q"),
]


@pytest.mark.parametrize("day", EDGE_DAYS)
@pytest.mark.parametrize(("persona_name", "route", "field"), DATE_FILTERS)
def test_a_list_filtered_on_the_first_or_last_day_of_the_calendar_answers_plainly(
    request: pytest.FixtureRequest,
    client: Client,
    persona_name: str,
    route: str,
    field: str,
    day: str,
) -> None:
    """Every date filter on a list page: a plain answer (the filter refused
    with a message, or applied), never a 500."""
    user = request.getfixturevalue(persona_name)
    with time_machine.travel(datetime(2026, 11, 10, 10, tzinfo=UTC), tick=False):
        sign_in(client, user)
        response = client.get(reverse(route), {field: day})
    if field == "q":
        # A search for the text "0001-01-01": nobody is found, nothing is refused.
        assert response.status_code == 200
        return
    # The calendar refuses the day (400); the audit trail's page answers with
    # the message above its list, as for its other refused filters.
    assert response.status_code == (200 if route == "audit_log" else 400)
    assert "between" in response.content.decode()


@pytest.mark.parametrize(
    ("since", "until"), [(date.min, None), (None, date.max), (date.min, date.max)]
)
def test_audit_filter_from_or_to_the_edge_of_the_calendar_leaves_that_end_open(
    manager: User, since: date | None, until: date | None
) -> None:
    with time_machine.travel(datetime(2026, 11, 10, 10, tzinfo=UTC), tick=False):
        event = audit_log(actor=manager, action=AuditAction.VIEW, obj=manager)
    assert list(audit_events_filtered(since=since, until=until)) == [event]

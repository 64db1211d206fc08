"""The manager's clinic settings page: who may open it, every bound at its
edges (form, service and database agree), forged posts answered with a 4xx,
two managers saving at once, the history of who changed what, the audit,
and the page's query budget."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, time
from typing import Any

import pytest
from django.db import connection, connections
from django.test import Client
from django.urls import reverse

from clinic import clinic_settings
from clinic.clinic_settings_rules import BOUNDS
from clinic.clinic_settings_services import (
    SETTING_FIELDS,
    ClinicSettingsRefusedError,
    clinic_settings_change,
    clinic_settings_newest,
)
from clinic.concurrency import StaleEditError
from clinic.models import AuditAction, AuditEvent, ClinicSettings, User
from tests.conftest import frozen_at, sign_in

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
frozen = frozen_at(NOW)
PAGE = "/settings/"
HISTORY = "/settings/history/"


def newest() -> ClinicSettings:
    row = ClinicSettings.objects.order_by("-id").first()
    assert row is not None
    return row


def page_data(client: Client) -> dict[str, Any]:
    """The form as the page gives it: every input's value, hidden ones too."""
    response = client.get(PAGE)
    assert response.status_code == 200
    form = response.context["form"]
    data: dict[str, Any] = {}
    for name, field in form.fields.items():
        bound = form[name]
        value = bound.value()
        if isinstance(value, time):
            value = value.strftime("%H:%M")
        data[name] = "" if value is None else str(value)
        if name == "clinic_phone" and value:
            data[name] = str(value)
        del field
    return data


@pytest.fixture
def boss(manager: User) -> Client:
    return sign_in(Client(), manager)


# --- Who may open it ------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["receptionist", "practitioner"], indirect=True)
@pytest.mark.parametrize("url", [PAGE, HISTORY])
def test_only_a_manager_opens_the_settings(persona: User, url: str) -> None:
    client = sign_in(Client(), persona)
    assert client.get(url).status_code == 403
    before = ClinicSettings.objects.count()
    assert client.post(PAGE, {"clinic_name": "Mine now"}).status_code == 403
    assert ClinicSettings.objects.count() == before


def test_signed_out_is_sent_to_sign_in(client: Client) -> None:
    response = client.get(PAGE)
    assert response.status_code == 302
    assert reverse("login") in response["Location"]


def test_the_manager_menu_leads_to_the_settings(boss: Client, receptionist: User) -> None:
    assert f'href="{PAGE}"' in boss.get("/").content.decode()
    other = sign_in(Client(), receptionist)
    assert f'href="{PAGE}"' not in other.get("/").content.decode()


def test_the_page_shows_each_bound_with_its_reason(boss: Client) -> None:
    page = boss.get(PAGE).content.decode()
    for key in ("medical_history_valid_days", "allergy_test_valid_months", "reminder_hours"):
        assert str(BOUNDS[key].reason).split(":")[0].replace("'", "&#x27;") in page
    assert "UK Records Management Code of Practice" in page
    assert 'min="30"' in page
    assert 'max="365"' in page


# --- Saving ---------------------------------------------------------------------------------


def test_a_save_adds_a_version_audits_it_and_the_next_page_shows_it(
    boss: Client, manager: User
) -> None:
    data = page_data(boss)
    data.update(clinic_name="Harley Skin Studio", change_reason="New name over the door")
    before = newest()
    response = boss.post(PAGE, data)
    assert response.status_code == 302
    row = newest()
    assert row.pk != before.pk
    assert row.clinic_name == "Harley Skin Studio"
    assert row.changed_by == manager
    assert row.reason == "New name over the door"
    assert row.medical_history_valid_days == before.medical_history_valid_days
    event = AuditEvent.objects.filter(
        object_type="clinic.clinicsettings", object_id=str(row.pk)
    ).get()
    assert event.action == AuditAction.UPDATE
    assert event.actor == manager
    assert "clinic_name" in event.changed_fields
    assert "medical_history_valid_days" not in event.changed_fields
    assert "Harley Skin Studio" in boss.get("/").content.decode()


def test_a_save_that_changes_nothing_adds_no_version(boss: Client) -> None:
    before = ClinicSettings.objects.count()
    assert boss.post(PAGE, page_data(boss)).status_code == 302
    assert ClinicSettings.objects.count() == before


def test_phone_and_email_are_checked_as_elsewhere(boss: Client) -> None:
    data = page_data(boss)
    data.update(clinic_phone="12", clinic_email="not an address")
    response = boss.post(PAGE, data)
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert "clinic_phone" in errors
    assert "clinic_email" in errors
    data.update(clinic_phone="020 7946 0123", clinic_email="desk@example.org")
    assert boss.post(PAGE, data).status_code == 302
    assert str(newest().clinic_phone) == "+442079460123"
    assert clinic_settings.current().clinic_phone_display == "020 7946 0123"


# Each bounded field: (lowest allowed, highest allowed); a step of 5 for minutes.
EDGES = {
    "medical_history_valid_days": (30, 365),
    "allergy_test_valid_months": (1, 6),
    "default_session_minutes": (10, 240),
    "adult_record_retention_years": (8, 30),
    "child_record_retention_until_age": (25, 40),
    "reminder_third_hours": (1, 1),
    "reminder_first_hours": (1, 168),
}


@pytest.mark.parametrize("name", sorted(EDGES))
def test_every_bound_is_held_at_its_edges(boss: Client, name: str) -> None:
    low, high = EDGES[name]
    data = page_data(boss)
    data.update(reminder_first_hours="48", reminder_second_hours="2", reminder_third_hours="")
    if name == "reminder_first_hours":
        data["reminder_second_hours"] = ""  # the first alone
    for value, saved in ((low - 1, False), (low, True), (high, True), (high + 1, False)):
        if name == "reminder_third_hours" and value == high + 1:
            value = 2  # not fewer hours than the second reminder
        data[name] = str(value)
        before = newest()
        response = boss.post(PAGE, data)
        if saved:
            assert response.status_code == 302, (name, value, response.context["form"].errors)
            assert getattr(newest(), name) == value
            data = page_data(boss)
        else:
            assert response.status_code == 400, (name, value)
            assert name in response.context["form"].errors
            assert newest().pk == before.pk
            # What was typed stays in the form.
            assert f'value="{value}"' in response.content.decode()


def test_session_minutes_go_in_steps_of_five(boss: Client) -> None:
    data = page_data(boss)
    data["default_session_minutes"] = "47"
    response = boss.post(PAGE, data)
    assert response.status_code == 400
    assert "default_session_minutes" in response.context["form"].errors
    data["default_session_minutes"] = "50"
    assert boss.post(PAGE, data).status_code == 302


def test_reminders_come_one_after_the_other_and_the_second_before_the_third(
    boss: Client,
) -> None:
    data = page_data(boss)
    for first, second, third, field in (
        ("24", "24", "", "reminder_second_hours"),
        ("24", "48", "", "reminder_second_hours"),
        ("48", "", "2", "reminder_third_hours"),
        ("48", "24", "24", "reminder_third_hours"),
        ("", "24", "", "reminder_first_hours"),
    ):
        data.update(
            reminder_first_hours=first, reminder_second_hours=second, reminder_third_hours=third
        )
        response = boss.post(PAGE, data)
        assert response.status_code == 400, (first, second, third)
        assert field in response.context["form"].errors
    data.update(reminder_first_hours="72", reminder_second_hours="24", reminder_third_hours="1")
    assert boss.post(PAGE, data).status_code == 302
    assert clinic_settings.current().reminder_lead_hours == (72, 24, 1)


def test_quiet_hours_must_differ(boss: Client) -> None:
    data = page_data(boss)
    data.update(quiet_hours_start="22:00", quiet_hours_end="22:00")
    response = boss.post(PAGE, data)
    assert response.status_code == 400
    assert "quiet_hours_end" in response.context["form"].errors
    data.update(quiet_hours_end="07:30")
    assert boss.post(PAGE, data).status_code == 302
    assert clinic_settings.current().quiet_hours_end == time(7, 30)


@pytest.mark.parametrize(
    ("start", "end", "refused"),
    [
        ("19:00", "06:00", None),
        ("23:00", "09:00", None),
        ("18:59", "08:00", "quiet_hours_start"),
        ("23:01", "08:00", "quiet_hours_start"),
        ("21:00", "05:59", "quiet_hours_end"),
        ("21:00", "09:01", "quiet_hours_end"),
        # The defaults swapped: the whole night open to messages.
        ("08:00", "21:00", "quiet_hours_start"),
        ("12:00", "12:01", "quiet_hours_start"),
    ],
)
def test_quiet_hours_run_overnight(boss: Client, start: str, end: str, refused: str | None) -> None:
    data = page_data(boss)
    data.update(quiet_hours_start=start, quiet_hours_end=end)
    response = boss.post(PAGE, data)
    if refused is None:
        assert response.status_code == 302
        assert clinic_settings.current().quiet_hours_start == time.fromisoformat(start)
    else:
        assert response.status_code == 400
        assert refused in response.context["form"].errors
        assert clinic_settings.current().quiet_hours_start == time(21)


def test_opening_hours_close_after_they_open_or_the_day_is_closed(boss: Client) -> None:
    data = page_data(boss)
    data.update(monday_opens="10:00", monday_closes="09:00")
    response = boss.post(PAGE, data)
    assert response.status_code == 400
    assert "monday_closes" in response.context["form"].errors
    data.update(monday_opens="10:00", monday_closes="")
    response = boss.post(PAGE, data)
    assert response.status_code == 400
    assert "monday_closes" in response.context["form"].errors
    data.update(monday_opens="", monday_closes="", sunday_opens="10:00", sunday_closes="14:00")
    assert boss.post(PAGE, data).status_code == 302
    values = clinic_settings.current()
    assert values.opening_on(0) is None
    assert values.opening_on(6) == (time(10), time(14))


def test_the_service_holds_the_bounds_without_the_form(manager: User) -> None:
    version = newest().pk
    for changes in (
        {"medical_history_valid_days": 366},
        {"allergy_test_valid_months": 7},
        {"reminder_first_hours": 169},
        {"quiet_hours_start": time(8), "quiet_hours_end": time(8)},
        {"adult_record_retention_years": 7},
        {"child_record_retention_until_age": 24},
        {"default_session_minutes": 47},
        {"monday_opens": time(12), "monday_closes": time(11)},
        {"clinic_name": ""},
        {"changed_by_id": 1},
    ):
        with pytest.raises(ClinicSettingsRefusedError):
            clinic_settings_change(changed_by=manager, changes=changes, expected_version=version)
    assert newest().pk == version


# --- Forged posts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "forged",
    [
        {"version": "999999"},
        {"version": "0"},
        {"version": "-4"},
        {"version": "abc"},
        {"version": ""},
        {"medical_history_valid_days": "9" * 40},
        {"medical_history_valid_days": "thirty"},
        {"quiet_hours_start": "25:99"},
        {"monday_opens": "\x00"},
        {"opened": "{not json"},
        {"clinic_name": "x" * 5000},
        {"change_reason": "y" * 5000},
        {"clinic_phone": "+" + "9" * 300},
    ],
)
def test_forged_posts_get_a_4xx_and_save_nothing(boss: Client, forged: dict[str, str]) -> None:
    data = page_data(boss)
    data.update(forged)
    if "opened" in forged:
        data["clinic_name"] = "Changed"
    before = ClinicSettings.objects.count()
    response = boss.post(PAGE, data)
    if "opened" in forged:
        # A mangled record of what the form opened with: every field counts as typed.
        assert response.status_code == 302
        return
    assert 400 <= response.status_code < 500
    assert ClinicSettings.objects.count() == before


def test_fields_the_form_does_not_have_are_ignored(boss: Client, manager: User) -> None:
    data = page_data(boss)
    data.update(changed_by=str(manager.pk + 100), id="1", created_at="2000-01-01")
    data["clinic_name"] = "Still ours"
    assert boss.post(PAGE, data).status_code == 302
    row = newest()
    assert row.changed_by == manager
    assert row.created_at == NOW


# --- Two managers at once ----------------------------------------------------------------------


def test_a_stale_save_is_refused_with_their_change_and_mine_kept(
    manager: User, make_staff: Any
) -> None:
    from clinic.roles import Role

    other = make_staff("manager2", Role.MANAGER, first_name="Mina", last_name="Okafor")
    mine, theirs = sign_in(Client(), manager), sign_in(Client(), other)
    my_form, their_form = page_data(mine), page_data(theirs)
    their_form.update(medical_history_valid_days="180")
    assert theirs.post(PAGE, their_form).status_code == 302
    my_form.update(clinic_name="Meso & Skin")
    response = mine.post(PAGE, my_form)
    assert response.status_code == 409
    page = response.content.decode()
    assert 'data-testid="stale-edit"' in page
    assert "Mina Okafor" in page
    assert "Meso &amp; Skin" in page  # what I typed is kept
    assert newest().clinic_name != "Meso & Skin"
    # Saved again on purpose: mine is added, theirs stays.
    form = response.context["form"]
    again = {name: form[name].value() for name in form.fields}
    again = {
        k: ("" if v is None else v.strftime("%H:%M") if isinstance(v, time) else str(v))
        for k, v in again.items()
    }
    assert mine.post(PAGE, again).status_code == 302
    row = newest()
    assert row.clinic_name == "Meso & Skin"
    assert row.medical_history_valid_days == 180


@pytest.mark.django_db(transaction=True)
def test_two_saves_at_the_same_moment_one_wins_one_is_refused(make_staff: Any) -> None:
    from clinic.roles import Role

    first = make_staff("m1", Role.MANAGER)
    second = make_staff("m2", Role.MANAGER)
    # The newest version as the page opens it: the migration's first version
    # is gone when an earlier test of its own transactions emptied the
    # database, and the defaults are then stored first, as the page would.
    version = clinic_settings_newest().pk
    start = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def save(user: User, name: str) -> None:
        try:
            start.wait()
            clinic_settings_change(
                changed_by=user, changes={"clinic_name": name}, expected_version=version
            )
            outcomes[name] = "saved"
        except StaleEditError:
            outcomes[name] = "refused"
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=save, args=(first, "First")),
        threading.Thread(target=save, args=(second, "Second")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes.values()) == ["refused", "saved"]
    winner = next(name for name, outcome in outcomes.items() if outcome == "saved")
    assert newest().clinic_name == winner
    assert ClinicSettings.objects.filter(id__gt=version).count() == 1


# --- History ----------------------------------------------------------------------------------


def test_the_history_says_who_changed_what_from_what_to_what(boss: Client, manager: User) -> None:
    version = newest().pk
    clinic_settings_change(
        changed_by=manager,
        changes={"medical_history_valid_days": 90, "quiet_hours_start": time(20)},
        reason="Insurer's advice",
        expected_version=version,
    )
    page = boss.get(HISTORY).content.decode()
    assert "Max" in page
    assert "Insurer&#x27;s advice" in page
    for shown in ("365", "90", "21:00", "20:00"):
        assert shown in page


def test_the_pages_read_a_fixed_number_of_queries(
    boss: Client, manager: User, django_assert_max_num_queries: Any
) -> None:
    def budget() -> tuple[int, int]:
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as form_reads:
            assert boss.get(PAGE).status_code == 200
        with CaptureQueriesContext(connection) as history_reads:
            assert boss.get(HISTORY).status_code == 200
        return len(form_reads), len(history_reads)

    budget()  # the session's first page writes what later pages only read
    few = budget()
    for days in range(40, 100, 5):
        clinic_settings_change(
            changed_by=manager,
            changes={"medical_history_valid_days": days},
            expected_version=newest().pk,
        )
    assert budget() == few
    with django_assert_max_num_queries(12):
        boss.get(PAGE)
    with django_assert_max_num_queries(12):
        boss.get(HISTORY)


def test_every_setting_field_is_on_the_page(boss: Client) -> None:
    page = boss.get(PAGE).content.decode()
    for name in SETTING_FIELDS:
        assert f'name="{name}"' in page, name

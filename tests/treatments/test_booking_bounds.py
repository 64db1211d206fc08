"""Dates within a sane horizon: bookings at most BOOKING_HORIZON_DAYS ahead,
closures starting at most a year back, ending within the horizon and lasting
at most a year; absurd dates are plain refusals, never server errors. And a
closure can be edited and removed by a manager, never by reception."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse

from clinic.models import AuditAction, AuditEvent, User
from tests.conftest import sign_in
from tests.treatments import test_booking_support as support
from tests.treatments.test_booking_support import MONDAY, Clinic, at, booking_post
from treatments.models import Booking, ClinicClosure
from treatments.services.booking import (
    BookingRefusedError,
    booking_create,
    closure_add,
    closure_remove,
    closure_update,
)

clinic = support.clinic
frozen = support.frozen
pytestmark = pytest.mark.usefixtures("frozen")

# Monday 23 November 2026 + 730 days: Wednesday 22 November 2028.
LAST_DAY = date(2028, 11, 22)
NEW = reverse("treatments:booking_new")
CLOSURES = reverse("treatments:closure_list")


def _book(c: Clinic, user: User, day: date) -> Booking:
    return booking_create(
        patient=c.patient,
        practitioner=c.practitioner,
        room=c.room,
        protocol=c.protocol,
        starts_at=at(day, 10),
        ends_at=at(day, 10, 45),
        created_by=user,
    )


# --- Bookings -----------------------------------------------------------------------------


def test_a_booking_on_the_last_day_of_the_horizon_is_made(
    clinic: Clinic, receptionist: User
) -> None:
    assert MONDAY + timedelta(days=730) == LAST_DAY
    assert _book(clinic, receptionist, LAST_DAY).starts_at == at(LAST_DAY, 10)


def test_a_booking_the_day_after_the_horizon_is_refused_on_the_date(
    clinic: Clinic, receptionist: User
) -> None:
    with pytest.raises(BookingRefusedError) as refused:
        _book(clinic, receptionist, LAST_DAY + timedelta(days=1))
    assert refused.value.field == "date"
    assert refused.value.message == (
        "Bookings can be made up to 730 days ahead, until Wed 22 Nov 2028. Choose an earlier date."
    )
    assert Booking.objects.count() == 0


def test_the_horizon_is_a_setting(clinic: Clinic, receptionist: User, settings: object) -> None:
    settings.BOOKING_HORIZON_DAYS = 7  # type: ignore[attr-defined]
    _book(clinic, receptionist, MONDAY + timedelta(days=7))
    with pytest.raises(BookingRefusedError):
        _book(clinic, receptionist, MONDAY + timedelta(days=8))


@pytest.mark.parametrize(
    ("day", "start", "message"),
    [
        ("9999-12-27", "10:00", "Bookings can be made up to 730 days ahead"),
        ("9999-12-31", "23:50", "Bookings can be made up to 730 days ahead"),
        ("0001-01-01", "00:00", "This time has already passed."),
        ("2028-11-23", "10:00", "until Wed 22 Nov 2028"),
    ],
)
def test_the_booking_page_refuses_an_absurd_date_with_400_and_keeps_the_form(
    clinic: Clinic, receptionist: User, day: str, start: str, message: str
) -> None:
    client = sign_in(Client(raise_request_exception=False), receptionist)
    response = client.post(NEW, booking_post(clinic, MONDAY, start, date=day))
    assert response.status_code == 400
    body = response.content.decode()
    assert message in body
    typed = date.fromisoformat(day)
    assert f'value="{typed.day:02d}/{typed.month:02d}/{typed.year:04d}"' in body
    assert Booking.objects.count() == 0


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01", "2028-11-23"])
def test_moving_a_booking_to_an_absurd_date_is_a_400(
    clinic: Clinic, receptionist: User, day: str
) -> None:
    booking = _book(clinic, receptionist, MONDAY + timedelta(days=1))
    client = sign_in(Client(raise_request_exception=False), receptionist)
    response = client.post(
        reverse("treatments:booking_move", kwargs={"booking": booking.uuid}),
        {
            "date": day,
            "start_time": "23:50",
            "practitioner": str(clinic.practitioner.uuid),
            "room": str(clinic.room.uuid),
            "version": str(booking.version),
        },
    )
    assert response.status_code == 400
    booking.refresh_from_db()
    assert booking.starts_at == at(MONDAY + timedelta(days=1), 10)


@pytest.mark.parametrize("day", ["9999-12-27", "0001-01-01"])
def test_a_course_from_an_absurd_date_is_a_400(
    clinic: Clinic, receptionist: User, day: str
) -> None:
    client = sign_in(Client(raise_request_exception=False), receptionist)
    data = booking_post(clinic, MONDAY, "10:00", date=day, sessions="20")
    response = client.post(reverse("treatments:course_new"), data)
    assert response.status_code == 400
    assert Booking.objects.count() == 0


@pytest.mark.parametrize(
    ("day", "status"),
    [("9999-12-31", 400), ("9999-12-27", 400), ("0001-01-01", 400), ("2028-11-22", 200)],
)
def test_the_calendar_shows_days_within_its_range_and_refuses_others_plainly(
    clinic: Clinic, receptionist: User, day: str, status: int
) -> None:
    client = sign_in(Client(raise_request_exception=False), receptionist)
    for view in ("day", "week"):
        response = client.get(reverse("treatments:calendar"), {"date": day, "view": view})
        assert response.status_code == status
        if status == 400:
            assert "The calendar shows the days from" in response.content.decode()


# --- Closures: bounds ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "last"),
    [
        (MONDAY - timedelta(days=365), MONDAY - timedelta(days=365)),  # a year back
        (LAST_DAY, LAST_DAY),  # the horizon's last day
        (MONDAY, MONDAY + timedelta(days=365)),  # 366 days, both ends included
    ],
    ids=["earliest-start", "latest-end", "longest"],
)
def test_a_closure_at_the_edges_is_added(manager: User, first: date, last: date) -> None:
    closure = closure_add(starts_on=first, ends_on=last, reason="Training", added_by=manager)
    assert (closure.starts_on, closure.ends_on) == (first, last)


@pytest.mark.parametrize(
    ("first", "last", "field", "words"),
    [
        (MONDAY - timedelta(days=366), MONDAY, "starts_on", "at most a year back"),
        (MONDAY, LAST_DAY + timedelta(days=1), "ends_on", "must end by Wed 22 Nov 2028"),
        (MONDAY, MONDAY + timedelta(days=366), "ends_on", "at most a year (366 days)"),
        (date(1, 1, 1), date(9999, 12, 31), "starts_on", "at most a year back"),
        (MONDAY, MONDAY - timedelta(days=1), "ends_on", "must not be before the first"),
    ],
    ids=["too-far-back", "past-horizon", "too-long", "year-1-to-9999", "backwards"],
)
def test_a_closure_beyond_the_edges_is_refused_on_its_field(
    manager: User, first: date, last: date, field: str, words: str
) -> None:
    with pytest.raises(BookingRefusedError) as refused:
        closure_add(starts_on=first, ends_on=last, reason="Whatever", added_by=manager)
    assert refused.value.field == field
    assert words in refused.value.message
    assert ClinicClosure.objects.count() == 0


def test_the_closures_page_refuses_year_1_to_9999_with_400_and_keeps_the_form(
    manager: User,
) -> None:
    client = sign_in(Client(raise_request_exception=False), manager)
    response = client.post(
        CLOSURES, {"starts_on": "0001-01-01", "ends_on": "9999-12-31", "reason": "For ever"}
    )
    assert response.status_code == 400
    body = response.content.decode()
    # The form's own check of the length (the database's rule) speaks first.
    assert "A closure lasts at most a year (366 days)." in body
    assert 'value="For ever"' in body
    assert ClinicClosure.objects.count() == 0


def test_the_database_refuses_a_closure_longer_than_a_year(db: None) -> None:
    with pytest.raises(IntegrityError, match="closure_at_most_a_year"), transaction.atomic():
        ClinicClosure.objects.create(
            starts_on=MONDAY, ends_on=MONDAY + timedelta(days=366), reason="Too long"
        )


# --- Closures: edit and remove --------------------------------------------------------------


@pytest.fixture
def closure(manager: User) -> ClinicClosure:
    day = MONDAY + timedelta(days=2)
    return closure_add(starts_on=day, ends_on=day, reason="Staff training", added_by=manager)


def _edit_data(c: ClinicClosure, **changes: str) -> dict[str, str]:
    data = {
        "starts_on": c.starts_on.isoformat(),
        "ends_on": c.ends_on.isoformat(),
        "reason": c.reason,
        "version": str(c.version),
    }
    data.update(changes)
    return data


def test_a_manager_edits_a_closure_and_the_change_is_audited(
    manager: User, closure: ClinicClosure
) -> None:
    client = sign_in(Client(), manager)
    url = reverse("treatments:closure_edit", kwargs={"closure": closure.uuid})
    assert client.get(url).status_code == 200
    response = client.post(url, _edit_data(closure, reason="Fire drill"))
    assert response.status_code == 302
    closure.refresh_from_db()
    assert (closure.reason, closure.version) == ("Fire drill", 2)
    event = AuditEvent.objects.get(action=AuditAction.UPDATE, object_id=str(closure.uuid))
    assert "reason" in event.changed_fields


def test_an_edit_beyond_the_horizon_is_refused_on_its_field_and_keeps_the_form(
    manager: User, closure: ClinicClosure
) -> None:
    client = sign_in(Client(), manager)
    url = reverse("treatments:closure_edit", kwargs={"closure": closure.uuid})
    data = _edit_data(
        closure, starts_on="2028-11-20", ends_on=(LAST_DAY + timedelta(days=1)).isoformat()
    )
    response = client.post(url, {**data, "reason": "Typed"})
    assert response.status_code == 400
    body = response.content.decode()
    assert "must end by Wed 22 Nov 2028" in body
    assert 'value="Typed"' in body
    closure.refresh_from_db()
    assert closure.reason == "Staff training"


def test_an_edit_opened_before_another_save_is_refused_with_409(
    manager: User, closure: ClinicClosure, make_staff: object
) -> None:
    other = make_staff("manager2", *manager.roles)  # type: ignore[operator]
    closure_update(
        closure=closure,
        starts_on=closure.starts_on,
        ends_on=closure.ends_on,
        reason="Changed at the other desk",
        updated_by=other,
        expected_version=1,
    )
    client = sign_in(Client(), manager)
    url = reverse("treatments:closure_edit", kwargs={"closure": closure.uuid})
    response = client.post(url, _edit_data(closure, reason="Mine", version="1"))
    assert response.status_code == 409
    body = response.content.decode()
    assert 'data-testid="stale-edit"' in body
    assert "Changed at the other desk" in body
    assert 'value="Mine"' in body
    closure.refresh_from_db()
    assert closure.reason == "Changed at the other desk"


def test_a_manager_removes_a_closure_its_day_books_again_and_the_removal_is_audited(
    clinic: Clinic, manager: User, receptionist: User, closure: ClinicClosure
) -> None:
    with pytest.raises(BookingRefusedError, match="closed"):
        _book(clinic, receptionist, closure.starts_on)
    client = sign_in(Client(), manager)
    page = client.get(CLOSURES).content.decode()
    assert 'data-testid="closure-remove"' in page
    url = reverse("treatments:closure_remove", kwargs={"closure": closure.uuid})
    response = client.post(url, {"version": str(closure.version)})
    assert response.status_code == 302
    assert not ClinicClosure.objects.filter(pk=closure.pk).exists()
    event = AuditEvent.objects.get(action=AuditAction.DELETE, object_id=str(closure.uuid))
    assert event.actor == manager
    assert event.object_type == "treatments.clinicclosure"
    assert _book(clinic, receptionist, closure.starts_on).pk


def test_a_removal_from_a_page_older_than_a_change_is_refused_with_409(
    manager: User, closure: ClinicClosure
) -> None:
    closure_update(
        closure=closure,
        starts_on=closure.starts_on,
        ends_on=closure.ends_on + timedelta(days=1),
        reason=closure.reason,
        updated_by=manager,
        expected_version=1,
    )
    client = sign_in(Client(), manager)
    url = reverse("treatments:closure_remove", kwargs={"closure": closure.uuid})
    response = client.post(url, {"version": "1"})
    assert response.status_code == 409
    assert 'data-testid="stale-edit"' in response.content.decode()
    assert ClinicClosure.objects.filter(pk=closure.pk).exists()
    assert client.post(url, {}).status_code == 400  # no version at all
    assert ClinicClosure.objects.filter(pk=closure.pk).exists()


def test_the_removal_service_refuses_a_stale_version(manager: User, closure: ClinicClosure) -> None:
    from clinic.concurrency import StaleEditError

    closure_update(
        closure=closure,
        starts_on=closure.starts_on,
        ends_on=closure.ends_on,
        reason="Moved",
        updated_by=manager,
        expected_version=1,
    )
    with pytest.raises(StaleEditError):
        closure_remove(closure=closure, removed_by=manager, expected_version=1)
    assert ClinicClosure.objects.filter(pk=closure.pk).exists()


def test_reception_can_neither_edit_nor_remove_a_closure(
    receptionist: User, closure: ClinicClosure
) -> None:
    client = sign_in(Client(), receptionist)
    edit = reverse("treatments:closure_edit", kwargs={"closure": closure.uuid})
    remove = reverse("treatments:closure_remove", kwargs={"closure": closure.uuid})
    assert client.get(edit).status_code == 403
    assert client.post(edit, _edit_data(closure, reason="Nope")).status_code == 403
    assert client.post(remove, {"version": str(closure.version)}).status_code == 403
    closure.refresh_from_db()
    assert closure.reason == "Staff training"
    assert not AuditEvent.objects.filter(action=AuditAction.DELETE).exists()

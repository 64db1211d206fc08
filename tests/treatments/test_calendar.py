"""The calendar's day and week views, its safe-to-treat flags, the next free
slot, and the manager's rooms, hours and closures."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from clinic.models import User
from tests.conftest import sign_in
from tests.consent.helpers import signed_consent_for
from tests.factories import (
    ConsentFormVersionFactory,
    IngredientFactory,
    PatientFactory,
    ProductFactory,
    make_history,
)
from tests.treatments import test_booking_support as support
from tests.treatments.test_booking_support import MONDAY, NOW, Clinic, at, book
from treatments.gates import gates_check, ingredients_of
from treatments.models import (
    Booking,
    ClinicClosure,
    ProtocolCocktailLine,
    Room,
    WorkingHours,
)
from treatments.selectors.booking import next_free_slot, working_hours_version
from treatments.selectors.readiness import booking_readiness
from treatments.services.allergy import allergy_test_give

clinic = support.clinic
frozen = support.frozen
pytestmark = pytest.mark.usefixtures("frozen")
CALENDAR = reverse("treatments:calendar")
TUESDAY = MONDAY + timedelta(days=1)


def _week(c: Clinic, count: int, first: int = 0) -> None:
    """`count` bookings spread over the week, for both practitioners and rooms."""
    slots = [
        (MONDAY + timedelta(days=d), 9 * 60 + 15 * q) for d in range(5) for q in range(0, 32, 3)
    ]
    for index in range(first, first + count):
        day, minute = slots[index // 2]
        first = index % 2 == 0
        book(
            patient=PatientFactory(),
            practitioner=c.practitioner if first else c.other_practitioner,
            room=c.room if first else c.other_room,
            protocol=c.protocol,
            starts_at=at(day, minute // 60, minute % 60),
        )


@pytest.mark.parametrize("view", ["day", "week"])
def test_calendar_query_count_is_the_same_with_1_and_100_bookings(
    client: Client, clinic: Clinic, receptionist: User, view: str
) -> None:
    sign_in(client, receptionist)
    _week(clinic, 1)
    url = f"{CALENDAR}?view={view}&date={MONDAY}"
    client.get(url)  # warm the session
    with CaptureQueriesContext(connection) as one:
        response = client.get(url)
    assert response.content.decode().count('data-testid="booking"') == 1
    _week(clinic, 99, first=1)
    with CaptureQueriesContext(connection) as many:
        response = client.get(url)
    shown = response.content.decode().count('data-testid="booking"')
    assert shown == (100 if view == "week" else 22)
    assert len(one) == len(many)
    assert len(many) <= 20


def test_day_view_has_a_column_per_practitioner_and_shows_each_booking(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    book(
        patient=clinic.patient,
        practitioner=clinic.other_practitioner,
        room=clinic.room,
        protocol=clinic.protocol,
        starts_at=at(TUESDAY, 10, 30),
    )
    sign_in(client, receptionist)
    response = client.get(CALENDAR, {"view": "day", "date": TUESDAY.isoformat()})
    body = response.content.decode()
    assert response.status_code == 200
    assert clinic.practitioner.get_full_name() in body
    assert clinic.other_practitioner.get_full_name() in body
    assert "Amelia Hart" in body
    assert clinic.protocol.name in body
    assert "10:30\N{EN DASH}11:15" in body
    assert ">Booked<" in body


def test_times_are_shown_in_the_clinics_zone_in_summer(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    summer = date(2027, 6, 15)
    book(
        patient=clinic.patient,
        practitioner=clinic.practitioner,
        room=clinic.room,
        protocol=clinic.protocol,
        starts_at=at(summer, 10),
    )
    assert at(summer, 10).hour == 9  # stored in UTC
    sign_in(client, receptionist)
    body = client.get(CALENDAR, {"view": "day", "date": summer.isoformat()}).content.decode()
    assert "10:00\N{EN DASH}10:45" in body


def test_working_hours_shade_the_grid_and_closures_show_as_closed(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    ClinicClosure.objects.create(starts_on=TUESDAY, ends_on=TUESDAY, reason="Boxing Day")
    sign_in(client, receptionist)
    body = client.get(
        CALENDAR,
        {"view": "week", "date": MONDAY.isoformat(), "practitioner": str(clinic.practitioner.uuid)},
    ).content.decode()
    assert "Closed: Boxing Day" in body
    assert "cal-cell cal-closed" in body
    assert "cal-cell cal-open" in body
    assert "cal-cell cal-off" in body  # the weekend


def test_a_free_slot_links_to_the_booking_form_prefilled(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    sign_in(client, receptionist)
    body = client.get(
        CALENDAR, {"view": "day", "date": TUESDAY.isoformat(), "room": str(clinic.room.uuid)}
    ).content.decode()
    expected = (
        f"date={TUESDAY}&amp;time=09%3A00&amp;practitioner={clinic.practitioner.uuid}"
        f"&amp;room={clinic.room.uuid}"
    )
    assert expected in body
    form = client.get(
        reverse("treatments:booking_new")
        + f"?date={TUESDAY}&time=09:00&practitioner={clinic.practitioner.uuid}"
        + f"&room={clinic.room.uuid}"
    ).content.decode()
    assert 'value="09:00"' in form
    assert f'value="{clinic.room.uuid}" selected' in form


def test_manager_reads_the_calendar_without_booking_links(
    client: Client, clinic: Clinic, manager: User
) -> None:
    sign_in(client, manager)
    response = client.get(CALENDAR, {"view": "day", "date": TUESDAY.isoformat()})
    assert response.status_code == 200
    assert 'data-testid="free-slot"' not in response.content.decode()


def test_anonymous_is_sent_to_sign_in(client: Client) -> None:
    response = client.get(CALENDAR)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"view": "month"}, "day view or the week view"),
        ({"date": "2026-13-01"}, "The date is not valid"),
        ({"date": "tomorrow"}, "The date is not valid"),
        ({"practitioner": "not-a-uuid"}, "not known"),
        ({"practitioner": "00000000-0000-4000-8000-0000000000aa"}, "practitioner is not known"),
        ({"room": "00000000-0000-4000-8000-0000000000aa"}, "room is not known"),
    ],
)
def test_bad_calendar_parameters_answer_400_with_a_message(
    client: Client, clinic: Clinic, receptionist: User, params: dict[str, str], message: str
) -> None:
    sign_in(client, receptionist)
    response = client.get(CALENDAR, params)
    assert response.status_code == 400
    assert message in response.content.decode()


def test_navigation_moves_by_a_day_or_a_week(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    sign_in(client, receptionist)
    day = client.get(CALENDAR, {"view": "day", "date": TUESDAY.isoformat()}).content.decode()
    assert "date=2026-11-23" in day
    assert "date=2026-11-25" in day
    week = client.get(CALENDAR, {"view": "week", "date": TUESDAY.isoformat()}).content.decode()
    assert "date=2026-11-17" in week
    assert "date=2026-12-01" in week


# --- Ready to treat ------------------------------------------------------------------------


@pytest.fixture
def media(settings: object, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path  # type: ignore[attr-defined]


def _with_cocktail(c: Clinic) -> None:
    product = ProductFactory()
    product.ingredients.add(IngredientFactory(name="Vitamin C"))
    ProtocolCocktailLine.objects.create(protocol=c.protocol, product=product, amount="2.00")


@pytest.mark.usefixtures("media")
def test_reception_sees_why_a_booking_is_not_ready_and_from_when(
    client: Client, clinic: Clinic, receptionist: User, practitioner: User
) -> None:
    _with_cocktail(clinic)
    make_history(clinic.patient, practitioner)
    version = ConsentFormVersionFactory(form=clinic.protocol.consent_form)
    signed_consent_for(patient=clinic.patient, version=version)
    allergy_test_give(
        patient=clinic.patient,
        given_by=practitioner,
        ingredients=ingredients_of([line.product for line in clinic.protocol.cocktail.all()]),
        products=[],
        site="inner left forearm",
        given_at=NOW,
    )
    book(
        patient=clinic.patient,
        practitioner=clinic.practitioner,
        room=clinic.room,
        protocol=clinic.protocol,
        starts_at=at(MONDAY, 9),
    )
    book(
        patient=clinic.other_patient,
        practitioner=clinic.practitioner,
        room=clinic.room,
        protocol=clinic.protocol,
        starts_at=at(MONDAY, 11),
    )
    sign_in(client, receptionist)
    body = client.get(CALENDAR, {"view": "day", "date": MONDAY.isoformat()}).content.decode()
    assert "allergy reading due Tue 24 Nov, 08:00" in body
    # The moment is in the note already: the card says it once.
    assert "from Tue 24 Nov, 08:00" not in body
    assert "medical history needed" in body  # the other patient
    assert "consent needed" in body


@pytest.mark.usefixtures("media")
def test_batched_readiness_says_what_the_gates_say_for_each_booking(
    clinic: Clinic, practitioner: User
) -> None:
    _with_cocktail(clinic)
    ready = PatientFactory()
    for patient in (clinic.patient, ready):
        make_history(patient, practitioner)
    version = ConsentFormVersionFactory(form=clinic.protocol.consent_form)
    signed_consent_for(patient=ready, version=version)
    products = [line.product for line in clinic.protocol.cocktail.all()]
    ingredients = ingredients_of(products)
    with time_machine.travel(NOW - timedelta(days=3), tick=False):
        test = allergy_test_give(
            patient=ready,
            given_by=practitioner,
            ingredients=ingredients,
            products=[],
            site="forearm",
            given_at=timezone_now(),
        )
    from treatments.services.allergy import allergy_test_read

    with time_machine.travel(NOW - timedelta(days=1), tick=False):
        allergy_test_read(test=test, read_by=practitioner, result="negative")
    bookings = [
        book(
            patient=p,
            practitioner=clinic.practitioner,
            room=r,
            protocol=clinic.protocol,
            starts_at=at(TUESDAY, h),
        )
        for p, r, h in (
            (clinic.patient, clinic.room, 9),
            (ready, clinic.other_room, 11),
            (clinic.other_patient, clinic.room, 13),
        )
    ]
    loaded = list(
        Booking.objects.select_related("protocol").filter(pk__in=[b.pk for b in bookings])
    )
    with CaptureQueriesContext(connection) as queries:
        batched = booking_readiness(bookings=loaded, at=NOW)
    assert len(queries) <= 8
    for booking in loaded:
        expected = gates_check(
            patient=booking.patient,
            protocol=booking.protocol,
            ingredients=ingredients,
            batches=[],
            at=booking.starts_at,
        )
        assert [f.reception_note for f in batched[booking.pk]] == [
            f.reception_note for f in expected
        ]
    assert batched[bookings[1].pk] == []


def timezone_now() -> datetime:
    from django.utils import timezone

    return timezone.now()


# --- Next free slot -----------------------------------------------------------------------


def test_next_free_slot_skips_busy_times_closures_and_hours(clinic: Clinic) -> None:
    duration = timedelta(minutes=45)
    # Monday 08:00 now: the day opens at 09:00.
    found = next_free_slot(practitioner=clinic.practitioner, room=clinic.room, duration=duration)
    assert found == at(MONDAY, 9)
    book(
        patient=clinic.other_patient,
        practitioner=clinic.other_practitioner,
        room=clinic.room,
        protocol=clinic.protocol,
        starts_at=at(MONDAY, 9),
        minutes=60,
    )
    found = next_free_slot(practitioner=clinic.practitioner, room=clinic.room, duration=duration)
    assert found == at(MONDAY, 10)
    ClinicClosure.objects.create(starts_on=MONDAY, ends_on=TUESDAY, reason="Training")
    found = next_free_slot(practitioner=clinic.practitioner, room=clinic.room, duration=duration)
    assert found == at(MONDAY + timedelta(days=2), 9)


def test_next_free_slot_respects_the_patient_and_the_end_of_the_day(clinic: Clinic) -> None:
    book(
        patient=clinic.patient,
        practitioner=clinic.other_practitioner,
        room=clinic.other_room,
        protocol=clinic.protocol,
        starts_at=at(MONDAY, 9),
        minutes=90,
    )
    found = next_free_slot(
        practitioner=clinic.practitioner,
        room=clinic.room,
        duration=timedelta(minutes=45),
        patient=clinic.patient,
    )
    assert found == at(MONDAY, 10, 30)
    with time_machine.travel(at(MONDAY, 16, 50), tick=False):
        found = next_free_slot(
            practitioner=clinic.practitioner, room=clinic.room, duration=timedelta(minutes=45)
        )
    assert found == at(TUESDAY, 9)


def test_next_free_slot_uses_a_few_queries_whatever_the_bookings(clinic: Clinic) -> None:
    _week(clinic, 100)
    with CaptureQueriesContext(connection) as queries:
        next_free_slot(
            practitioner=clinic.practitioner, room=clinic.room, duration=timedelta(minutes=45)
        )
    assert len(queries) <= 3


def test_next_free_slot_page_offers_to_book_it(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    sign_in(client, receptionist)
    url = reverse("treatments:next_free_slot")
    response = client.get(
        url,
        {
            "practitioner": str(clinic.practitioner.uuid),
            "room": str(clinic.room.uuid),
            "duration": "45",
        },
    )
    assert "First free time: Mon 23 Nov, 09:00." in response.content.decode()
    response = client.get(url, {"practitioner": "x", "room": "y", "duration": "5"})
    assert response.status_code == 400


# --- Rooms, working hours, closures --------------------------------------------------------


def test_manager_adds_a_room_hours_and_a_closure(
    client: Client, clinic: Clinic, manager: User
) -> None:
    sign_in(client, manager)
    assert (
        client.post(reverse("treatments:room_new"), {"name": "Room 3", "active": "on"}).status_code
        == 302
    )
    assert Room.objects.filter(name="Room 3").exists()
    url = reverse("treatments:hours_edit")
    data = {
        "practitioner": str(clinic.practitioner.uuid),
        "weekday": "5",
        "starts": "09:00",
        "ends": "13:00",
        "version": working_hours_version(clinic.practitioner),
    }
    assert client.post(url, data).status_code == 302
    assert WorkingHours.objects.filter(practitioner=clinic.practitioner, weekday=5).exists()
    data.update(starts="12:00", ends="14:00", version=working_hours_version(clinic.practitioner))
    response = client.post(url, data)
    assert response.status_code == 400
    assert "overlap" in response.content.decode()
    data.update(starts="14:00", ends="13:00")
    assert client.post(url, data).status_code == 400
    response = client.post(
        reverse("treatments:closure_list"),
        {"starts_on": "2026-12-25", "ends_on": "2026-12-24", "reason": "Xmas"},
    )
    assert response.status_code == 400
    response = client.post(
        reverse("treatments:closure_list"),
        {"starts_on": "2026-12-25", "ends_on": "2026-12-26", "reason": "Xmas"},
    )
    assert response.status_code == 302
    assert ClinicClosure.objects.get().ends_on == date(2026, 12, 26)
    clear = client.post(
        reverse("treatments:hours_clear"),
        {
            "practitioner": str(clinic.practitioner.uuid),
            "weekday": "5",
            "version": working_hours_version(clinic.practitioner),
        },
    )
    assert clear.status_code == 302
    assert not WorkingHours.objects.filter(practitioner=clinic.practitioner, weekday=5).exists()


def test_reception_cannot_change_rooms_hours_or_closures(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    sign_in(client, receptionist)
    assert client.post(reverse("treatments:room_new"), {"name": "X"}).status_code == 403
    assert client.get(reverse("treatments:closure_list")).status_code == 403

"""Two people edit the same record from pages opened at the same time: the
second save is refused with a 409 naming what the first changed (the field,
its value now, who and when), what the second typed is shown again, and
nothing of it is saved (clinic.concurrency). One test per editing form: the
catalogue's ingredients, products, aftercare sheets and protocols, rooms,
working hours (add and clear), and booking moves, from the move page and by
dragging a card on the calendar."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from clinic.models import User
from clinic.roles import Role
from tests.conftest import sign_in
from tests.factories import (
    AftercareSheetFactory,
    IngredientFactory,
    ProductFactory,
    ProtocolFactory,
)
from tests.races import hidden_value
from tests.treatments import test_booking_support as support
from tests.treatments.test_booking_support import MONDAY, NOW, Clinic, at, book
from treatments.models import (
    Booking,
    Ingredient,
    ProtocolCocktailLine,
    Room,
    WorkingHours,
)

pytestmark = pytest.mark.django_db

clinic = support.clinic
TUESDAY = MONDAY + timedelta(days=1)
SAVED_AT = NOW + timedelta(minutes=2)  # 08:02 in London (GMT)


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def other_manager(make_staff: Callable[..., User]) -> User:
    return make_staff("manager-2", Role.MANAGER, first_name="Mina", last_name="Patel")


@pytest.fixture
def other_receptionist(make_staff: Callable[..., User]) -> User:
    return make_staff("reception-2", Role.RECEPTIONIST, first_name="Nadia", last_name="Osei")


def open_both(url: str, first: User, second: User) -> tuple[Client, str, Client, str]:
    """Two people signed in on their own browsers, each with the page open."""
    a, b = sign_in(Client(), first), sign_in(Client(), second)
    page_a, page_b = a.get(url), b.get(url)
    assert page_a.status_code == page_b.status_code == 200
    return a, page_a.content.decode(), b, page_b.content.decode()


def assert_refused(body: str, *, label: str, value: str, by: str) -> None:
    """The 409 page names the field changed, its value now, who and when."""
    assert 'data-testid="stale-edit"' in body
    changes = body[body.index('data-testid="stale-changes"') :]
    assert label in changes, label
    assert value in changes, value
    assert by in changes
    assert "08:02" in changes
    assert 'data-testid="use-their-version"' in body


# --- The catalogue ------------------------------------------------------------------


def test_a_stale_ingredient_edit_is_refused(
    clock: time_machine.Coordinates, manager: User, other_manager: User
) -> None:
    ingredient = IngredientFactory(name="Vitamin C", category="vitamin")
    url = reverse("treatments:ingredient_edit", kwargs={"ingredient": ingredient.uuid})
    a, page_a, b, page_b = open_both(url, manager, other_manager)
    base = {"name": "Vitamin C", "category": "vitamin", "active": "on"}

    clock.move_to(SAVED_AT)
    saved = a.post(
        url, {**base, "name": "Ascorbic acid", "version": hidden_value(page_a, "version")}
    )
    assert saved.status_code == 302
    refused = b.post(
        url, {**base, "category": "antioxidant", "version": hidden_value(page_b, "version")}
    )

    assert refused.status_code == 409
    assert_refused(refused.content.decode(), label="Name", value="Ascorbic acid", by="Max")
    assert '<option value="antioxidant" selected>' in refused.content.decode()
    ingredient.refresh_from_db()
    assert (ingredient.name, ingredient.category) == ("Ascorbic acid", "vitamin")


def test_a_stale_product_edit_is_refused(
    clock: time_machine.Coordinates, manager: User, other_manager: User
) -> None:
    first, second = IngredientFactory(name="Biotin"), IngredientFactory(name="Zinc")
    product = ProductFactory(name="Hair complex", maker="Lab Example", ingredients=[first])
    url = reverse("treatments:product_edit", kwargs={"product": product.uuid})
    a, page_a, b, page_b = open_both(url, manager, other_manager)
    base = {
        "name": "Hair complex",
        "maker": "Lab Example",
        "concentration": product.concentration,
        "notes": "",
        "active": "on",
    }

    clock.move_to(SAVED_AT)
    saved = a.post(
        url,
        {**base, "ingredients": [first.pk, second.pk], "version": hidden_value(page_a, "version")},
    )
    assert saved.status_code == 302
    refused = b.post(
        url,
        {
            **base,
            "ingredients": [first.pk],
            "notes": "Keep cold, typed by B",
            "version": hidden_value(page_b, "version"),
        },
    )

    assert refused.status_code == 409
    assert_refused(refused.content.decode(), label="Ingredients", value="Biotin, Zinc", by="Max")
    assert "Keep cold, typed by B" in refused.content.decode()
    product.refresh_from_db()
    assert set(product.ingredients.all()) == {first, second}
    assert product.notes == ""


def test_a_stale_aftercare_sheet_edit_is_refused(
    clock: time_machine.Coordinates, manager: User, other_manager: User
) -> None:
    sheet = AftercareSheetFactory(title="Face")
    url = reverse("treatments:sheet_edit", kwargs={"sheet": sheet.uuid})
    a, page_a, b, page_b = open_both(url, manager, other_manager)
    base = {
        "title": sheet.title,
        "introduction": sheet.introduction,
        "do_advice": sheet.do_advice,
        "avoid_advice": sheet.avoid_advice,
        "warning_signs": sheet.warning_signs,
    }

    clock.move_to(SAVED_AT)
    saved = a.post(
        url,
        {**base, "do_advice": "Drink plenty of water.", "version": hidden_value(page_a, "version")},
    )
    assert saved.status_code == 302
    refused = b.post(
        url, {**base, "title": "Face and neck", "version": hidden_value(page_b, "version")}
    )

    assert refused.status_code == 409
    assert_refused(
        refused.content.decode(), label="What to do", value="Drink plenty of water.", by="Max"
    )
    assert 'value="Face and neck"' in refused.content.decode()
    sheet.refresh_from_db()
    assert (sheet.title, sheet.do_advice) == ("Face", "Drink plenty of water.")


def test_a_stale_protocol_edit_is_refused(
    clock: time_machine.Coordinates, manager: User, other_manager: User
) -> None:
    product = ProductFactory(name="Silicium")
    protocol = ProtocolFactory(name="Face glow")
    ProtocolCocktailLine.objects.create(protocol=protocol, product=product, amount="2")
    url = reverse("treatments:protocol_edit", kwargs={"protocol": protocol.uuid})
    a, page_a, b, page_b = open_both(url, manager, other_manager)

    def post(page: str, amount: str, **changes: str) -> dict[str, Any]:
        data = {
            "name": protocol.name,
            "indication": protocol.indication,
            "default_areas": protocol.default_areas,
            "default_sessions": str(protocol.default_sessions),
            "interval": protocol.interval,
            "session_minutes": str(protocol.session_minutes),
            "maintenance_months": str(protocol.maintenance_months),
            "consent_form": str(protocol.consent_form_id),
            "aftercare_sheet": str(protocol.aftercare_sheet_id),
            "active": "on",
            "cocktail-TOTAL_FORMS": "1",
            "cocktail-INITIAL_FORMS": "1",
            "cocktail-MIN_NUM_FORMS": "0",
            "cocktail-MAX_NUM_FORMS": "20",
            "cocktail-0-product": str(product.pk),
            "cocktail-0-amount": amount,
            "cocktail-0-unit": "ml",
            "version": hidden_value(page, "version"),
        }
        return {**data, **changes}

    clock.move_to(SAVED_AT)
    assert a.post(url, post(page_a, "3.50")).status_code == 302
    refused = b.post(url, post(page_b, "2", indication="Dull skin, typed by B"))

    assert refused.status_code == 409
    assert_refused(
        refused.content.decode(), label="Default cocktail", value="Silicium 3.50 mL", by="Max"
    )
    assert "Dull skin, typed by B" in refused.content.decode()
    protocol.refresh_from_db()
    assert protocol.cocktail.get().amount == Decimal("3.50")
    assert protocol.indication != "Dull skin, typed by B"


# --- Rooms and working hours --------------------------------------------------------------


def test_a_stale_room_edit_is_refused(
    clock: time_machine.Coordinates, manager: User, other_manager: User
) -> None:
    room = Room.objects.create(name="Room 1")
    url = reverse("treatments:room_edit", kwargs={"room": room.uuid})
    a, page_a, b, page_b = open_both(url, manager, other_manager)

    clock.move_to(SAVED_AT)
    saved = a.post(
        url, {"name": "Garden room", "active": "on", "version": hidden_value(page_a, "version")}
    )
    assert saved.status_code == 302
    refused = b.post(url, {"name": "Room 1", "version": hidden_value(page_b, "version")})

    assert refused.status_code == 409
    assert_refused(refused.content.decode(), label="Name", value="Garden room", by="Max")
    room.refresh_from_db()
    assert (room.name, room.active, room.version) == ("Garden room", True, 2)


def test_hours_added_on_another_day_since_the_page_was_opened_do_not_refuse(
    clock: time_machine.Coordinates, clinic: Clinic, manager: User, other_manager: User
) -> None:
    """The week is versioned per day: Sunday is added although someone added
    Saturday after the page was opened."""
    url = reverse("treatments:hours_edit") + f"?practitioner={clinic.practitioner.uuid}"
    a, page_a, b, page_b = open_both(url, manager, other_manager)
    who = {"practitioner": str(clinic.practitioner.uuid)}

    clock.move_to(SAVED_AT)
    saturday = {**who, "weekday": "5", "starts": "09:00", "ends": "13:00"}
    assert a.post(url, {**saturday, "version": hidden_value(page_a, "version")}).status_code == 302
    sunday = {**who, "weekday": "6", "starts": "10:00", "ends": "12:00"}
    saved = b.post(url, {**sunday, "version": hidden_value(page_b, "version")})

    assert saved.status_code == 302
    days = set(
        WorkingHours.objects.filter(practitioner=clinic.practitioner).values_list(
            "weekday", flat=True
        )
    )
    assert days == {0, 1, 2, 3, 4, 5, 6}


def test_stale_working_hours_are_refused_naming_the_day_changed_then_saved_again(
    clock: time_machine.Coordinates, clinic: Clinic, manager: User, other_manager: User
) -> None:
    url = reverse("treatments:hours_edit") + f"?practitioner={clinic.practitioner.uuid}"
    a, page_a, b, page_b = open_both(url, manager, other_manager)
    who = {"practitioner": str(clinic.practitioner.uuid)}

    clock.move_to(SAVED_AT)
    morning = {**who, "weekday": "5", "starts": "09:00", "ends": "13:00"}
    assert a.post(url, {**morning, "version": hidden_value(page_a, "version")}).status_code == 302
    afternoon = {
        **who,
        "weekday": "5",
        "starts": "14:00",
        "ends": "16:00",
        "submission_token": hidden_value(page_b, "submission_token"),
    }
    refused = b.post(url, {**afternoon, "version": hidden_value(page_b, "version")})

    assert refused.status_code == 409
    body = refused.content.decode()
    assert_refused(body, label="Saturday", value="09:00\N{EN DASH}13:00", by="Max")
    assert 'value="14:00"' in body  # what B typed
    assert not WorkingHours.objects.filter(practitioner=clinic.practitioner, starts="14:00")
    # The page now carries the week as it is: saving again, deliberately, adds it.
    assert hidden_value(body, "submission_token") == afternoon["submission_token"]
    again = b.post(url, {**afternoon, "version": hidden_value(body, "version")})
    assert again.status_code == 302
    saturday = WorkingHours.objects.filter(practitioner=clinic.practitioner, weekday=5)
    assert sorted(f"{h.starts:%H:%M}" for h in saturday) == ["09:00", "14:00"]


def test_clearing_a_day_from_a_stale_hours_page_is_refused(
    clock: time_machine.Coordinates, clinic: Clinic, manager: User, other_manager: User
) -> None:
    url = reverse("treatments:hours_edit") + f"?practitioner={clinic.practitioner.uuid}"
    clear = reverse("treatments:hours_clear")
    a, page_a, b, page_b = open_both(url, manager, other_manager)
    who = {"practitioner": str(clinic.practitioner.uuid)}

    clock.move_to(SAVED_AT)
    extra = {**who, "weekday": "0", "starts": "18:00", "ends": "19:00"}
    assert a.post(url, {**extra, "version": hidden_value(page_a, "version")}).status_code == 302
    monday = {**who, "weekday": "0", "version": hidden_value(page_b, "version")}
    refused = b.post(clear, monday)

    assert refused.status_code == 409
    assert_refused(refused.content.decode(), label="Monday", value="18:00", by="Max")
    assert WorkingHours.objects.filter(practitioner=clinic.practitioner, weekday=0).count() == 2
    # Another day, unchanged since the page was opened, is cleared.
    tuesday = {**who, "weekday": "1", "version": hidden_value(page_b, "version")}
    assert b.post(clear, tuesday).status_code == 302
    assert not WorkingHours.objects.filter(practitioner=clinic.practitioner, weekday=1).exists()


def test_a_forged_hours_version_is_a_400_with_a_sentence(
    clock: time_machine.Coordinates, clinic: Clinic, manager: User
) -> None:
    client = sign_in(Client(), manager)
    data = {
        "practitioner": str(clinic.practitioner.uuid),
        "weekday": "5",
        "starts": "09:00",
        "ends": "13:00",
    }
    for version in ("", "1", "a" * 10 + ".b"):
        response = client.post(reverse("treatments:hours_edit"), {**data, "version": version})
        assert response.status_code == 400
        assert "This form has lost track of which version" in response.content.decode()
    assert not WorkingHours.objects.filter(weekday=5).exists()


# --- Booking moves -----------------------------------------------------------------------


@pytest.fixture
def booking(clinic: Clinic) -> Booking:
    return book(
        patient=clinic.patient,
        practitioner=clinic.practitioner,
        room=clinic.room,
        protocol=clinic.protocol,
        starts_at=at(TUESDAY, 10),
    )


def test_a_stale_booking_move_is_refused(
    clock: time_machine.Coordinates,
    clinic: Clinic,
    booking: Booking,
    receptionist: User,
    other_receptionist: User,
) -> None:
    url = reverse("treatments:booking_move", kwargs={"booking": booking.uuid})
    a, page_a, b, page_b = open_both(url, receptionist, other_receptionist)
    where = {"practitioner": str(clinic.practitioner.uuid), "date": TUESDAY.isoformat()}

    clock.move_to(SAVED_AT)
    moved = {**where, "start_time": "14:00", "room": str(clinic.room.uuid)}
    assert a.post(url, {**moved, "version": hidden_value(page_a, "version")}).status_code == 302
    other_room = {**where, "start_time": "10:00", "room": str(clinic.other_room.uuid)}
    refused = b.post(url, {**other_room, "version": hidden_value(page_b, "version")})

    assert refused.status_code == 409
    assert_refused(refused.content.decode(), label="Starts", value="24/11/2026 14:00", by="Rosa")
    booking.refresh_from_db()
    assert (booking.starts_at, booking.room) == (at(TUESDAY, 14), clinic.room)
    assert booking.events.filter(kind="moved").count() == 1


def _card_version(calendar_page: str, booking: Booking) -> str:
    card = re.search(rf'data-booking="{booking.uuid}"[^>]*data-version="(\d+)"', calendar_page)
    assert card is not None, "the booked card is draggable and carries its version"
    return card.group(1)


def test_dragging_a_card_changed_since_the_calendar_was_shown_is_refused(
    clock: time_machine.Coordinates,
    clinic: Clinic,
    booking: Booking,
    receptionist: User,
    other_receptionist: User,
) -> None:
    calendar = reverse("treatments:calendar") + f"?view=day&date={TUESDAY.isoformat()}"
    a, page_a, b, page_b = open_both(calendar, receptionist, other_receptionist)
    move = reverse("treatments:booking_move", kwargs={"booking": booking.uuid})

    def drop(page: str, start: str) -> dict[str, str]:
        # What static/js/calendar.js posts when a card is dropped on a free slot.
        return {
            "date": TUESDAY.isoformat(),
            "start_time": start,
            "practitioner": str(clinic.practitioner.uuid),
            "room": str(clinic.room.uuid),
            "version": _card_version(page, booking),
        }

    clock.move_to(SAVED_AT)
    assert a.post(move, drop(page_a, "15:00")).status_code == 302
    refused = b.post(move, drop(page_b, "16:00"))

    assert refused.status_code == 409
    body = refused.content.decode()
    assert 'data-testid="stale-message"' in body  # the sentence calendar.js shows
    assert_refused(body, label="Starts", value="24/11/2026 15:00", by="Rosa")
    booking.refresh_from_db()
    assert booking.starts_at == at(TUESDAY, 15)
    assert booking.version == 2
    assert _card_version(a.get(calendar).content.decode(), booking) == "2"


def test_a_move_opened_before_the_patient_arrived_is_refused(
    clock: time_machine.Coordinates,
    clinic: Clinic,
    booking: Booking,
    receptionist: User,
    other_receptionist: User,
) -> None:
    url = reverse("treatments:booking_move", kwargs={"booking": booking.uuid})
    a, _page_a, b, page_b = open_both(url, receptionist, other_receptionist)
    clock.move_to(SAVED_AT)
    mark = reverse("treatments:booking_mark", kwargs={"booking": booking.uuid})
    assert a.post(mark, {"status": "arrived", "version": "1"}).status_code == 302
    data = {
        "date": TUESDAY.isoformat(),
        "start_time": "15:00",
        "practitioner": str(clinic.practitioner.uuid),
        "room": str(clinic.room.uuid),
        "version": hidden_value(page_b, "version"),
    }
    refused = b.post(url, data)
    assert refused.status_code == 409
    assert_refused(refused.content.decode(), label="Status", value="Arrived", by="Rosa")
    booking.refresh_from_db()
    assert booking.starts_at == at(TUESDAY, 10)


def test_the_edit_pages_stay_within_their_query_budget_when_refusing(
    clock: time_machine.Coordinates,
    manager: User,
    other_manager: User,
    django_assert_max_num_queries: Any,
) -> None:
    ingredient = IngredientFactory(name="Vitamin C", category="vitamin")
    url = reverse("treatments:ingredient_edit", kwargs={"ingredient": ingredient.uuid})
    a, _page_a, b, page_b = open_both(url, manager, other_manager)
    base = {"name": "Vitamin C", "category": "vitamin"}
    for n in range(5):  # many saves since: the refusal still reads a bounded trail
        version = str(Ingredient.objects.get().version)
        a.post(url, {**base, "active": "on" if n % 2 else "", "version": version})
    with django_assert_max_num_queries(16):
        refused = b.post(url, {**base, "version": hidden_value(page_b, "version")})
    assert refused.status_code == 409
    assert refused.content.decode().count('data-testid="stale-change"') == 1

"""A calendar that reads at a glance: bookings at the same time sit side by
side in lanes (never on top of each other), a busy day is drawn wider, the
week reads as a list of days on a narrow screen, the calendar opens on
today's day view for reception and remembers the view chosen, and the week
starts on the clinic's first day of the week."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from clinic.models import User
from clinic.roles import Role
from tests.conftest import sign_in
from tests.factories import PatientFactory, UserFactory
from tests.treatments import test_booking_support as support
from tests.treatments.test_booking_support import MONDAY, Clinic, at, book, give_hours
from treatments.models import Booking, BookingStatus, Room
from treatments.selectors.calendar import (
    MAX_LANES,
    _lay_out_lanes,
    calendar_build,
    week_of,
)

clinic = support.clinic
frozen = support.frozen
pytestmark = pytest.mark.usefixtures("frozen")
CALENDAR = reverse("treatments:calendar")
TUESDAY = MONDAY + timedelta(days=1)
SUNDAY = MONDAY + timedelta(days=6)


def _booking(c: Clinic, day: date, hour: int, minute: int = 0, **extra: object) -> Booking:
    fields: dict[str, object] = {
        "patient": PatientFactory(),
        "practitioner": c.practitioner,
        "room": c.room,
        "protocol": c.protocol,
        "starts_at": at(day, hour, minute),
    }
    fields.update(extra)
    return book(**fields)  # type: ignore[arg-type]


def _lanes(body: str, booking: Booking) -> tuple[int, int]:
    """The (lane, lanes) the page gives `booking`'s card."""
    found = re.search(
        rf'class="cal-booking [^"]*cal-lane-(\d+) cal-lanes-(\d+)"'
        rf'[^>]*data-booking="{booking.uuid}"',
        body,
    )
    assert found, booking
    return int(found[1]), int(found[2])


def _week(client: Client, **params: str) -> str:
    response = client.get(CALENDAR, {"view": "week", "date": MONDAY.isoformat(), **params})
    assert response.status_code == 200
    return response.content.decode()


# --- Lanes ------------------------------------------------------------------------------------


def test_bookings_at_the_same_time_sit_side_by_side_in_the_week(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    third_room = Room.objects.create(name="Room 3")
    third = UserFactory(username="third", roles=[Role.PRACTITIONER])
    a = _booking(clinic, TUESDAY, 10)  # 10:00-10:45
    b = _booking(
        clinic, TUESDAY, 10, practitioner=clinic.other_practitioner, room=clinic.other_room
    )
    c = _booking(clinic, TUESDAY, 10, 30, practitioner=third, room=third_room)  # 10:30-11:15
    d = _booking(clinic, TUESDAY, 11)  # 11:00: free again in lane 0, still c's cluster
    alone = _booking(clinic, TUESDAY, 14)
    touching = _booking(clinic, TUESDAY, 14, 45)  # starts as `alone` ends
    sign_in(client, receptionist)
    body = _week(client)
    assert _lanes(body, a) == (0, 3)
    assert _lanes(body, b) == (1, 3)
    assert _lanes(body, c) == (2, 3)
    assert _lanes(body, d) == (0, 3)
    assert _lanes(body, alone) == (0, 1)
    assert _lanes(body, touching) == (0, 1)


def test_a_short_booking_sharing_a_row_with_the_next_is_not_drawn_under_it(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    """10:00-10:10 and 10:10-10:40 do not overlap, but both are drawn from the
    10:00 row: they get a lane each."""
    first = _booking(clinic, TUESDAY, 10, minutes=10)
    second = _booking(clinic, TUESDAY, 10, 10, minutes=30, practitioner=clinic.other_practitioner)
    sign_in(client, receptionist)
    body = _week(client)
    assert {_lanes(body, first), _lanes(body, second)} == {(0, 2), (1, 2)}


def test_a_no_show_and_the_booking_made_over_it_share_the_day_views_column(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    missed = _booking(clinic, TUESDAY, 10, status=BookingStatus.NO_SHOW)
    rebooked = _booking(clinic, TUESDAY, 10, 15)
    other = _booking(
        clinic, TUESDAY, 10, practitioner=clinic.other_practitioner, room=clinic.other_room
    )
    sign_in(client, receptionist)
    body = client.get(CALENDAR, {"view": "day", "date": TUESDAY.isoformat()}).content.decode()
    assert _lanes(body, missed) == (0, 2)
    assert _lanes(body, rebooked) == (1, 2)
    assert _lanes(body, other) == (0, 1)  # its own practitioner's column


def test_a_busy_day_gets_room_for_its_lanes(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    _booking(clinic, TUESDAY, 10)
    _booking(clinic, TUESDAY, 10, practitioner=clinic.other_practitioner, room=clinic.other_room)
    sign_in(client, receptionist)
    body = _week(client)
    widths = body[body.index('<tr class="cal-widths"') :]
    widths = widths[: widths.index("</tr>")]
    cells = widths.split("<td>")[1:]
    assert [cell.count("cal-lane-unit") for cell in cells] == [1, 2, 1, 1, 1, 1, 1]


@dataclass
class _Item:
    rows: tuple[int, int]
    lane: int = 0
    lanes: int = 1
    hidden: bool = False


def test_lanes_are_as_few_as_the_busiest_moment_needs_and_never_shared() -> None:
    """Interval partitioning over random days: overlapping cards never share a
    lane, and each cluster of overlapping cards uses exactly as many lanes as
    cards overlap at its busiest row."""
    rng = random.Random(15)
    for _day in range(200):
        items = []
        for _n in range(rng.randint(1, 25)):
            first = rng.randint(0, 40)
            items.append(_Item((first, first + rng.randint(1, 8))))
        items.sort(key=lambda item: (item.rows[0], -item.rows[1]))
        _lay_out_lanes(items, limit=99)  # type: ignore[arg-type]
        for i, a in enumerate(items):
            for b in items[i + 1 :]:
                if a.rows[0] < b.rows[1] and b.rows[0] < a.rows[1]:
                    assert a.lane != b.lane
        clusters: list[list[_Item]] = []
        end = -1
        for item in items:
            if item.rows[0] >= end:
                clusters.append([])
            clusters[-1].append(item)
            end = max(end, item.rows[1])
        for cluster in clusters:
            rows = range(cluster[0].rows[0], max(item.rows[1] for item in cluster))
            busiest = max(sum(1 for i in cluster if i.rows[0] <= row < i.rows[1]) for row in rows)
            assert {item.lanes for item in cluster} == {busiest}
            assert all(item.lane < busiest for item in cluster)


def _clusters(items: list[_Item]) -> list[list[_Item]]:
    clusters: list[list[_Item]] = []
    end = -1
    for item in items:
        if item.rows[0] >= end:
            clusters.append([])
        clusters[-1].append(item)
        end = max(end, item.rows[1])
    return clusters


def test_a_cluster_beyond_the_lanes_drawn_hides_the_rest_and_never_overlaps_a_card() -> None:
    """Random busy days against a limit of four lanes: the cards drawn never
    share a lane where they overlap, the last lane holds no card when the
    cluster needs more (its "+k more" goes there), and a cluster that fits
    hides nothing."""
    rng = random.Random(9)
    limit = 4
    overflowed = 0
    for _day in range(300):
        items = []
        for _n in range(rng.randint(1, 25)):
            first = rng.randint(0, 30)
            items.append(_Item((first, first + rng.randint(1, 8))))
        items.sort(key=lambda item: (item.rows[0], -item.rows[1]))
        _lay_out_lanes(items, limit=limit)  # type: ignore[arg-type]
        drawn = [item for item in items if not item.hidden]
        for i, a in enumerate(drawn):
            for b in drawn[i + 1 :]:
                if a.rows[0] < b.rows[1] and b.rows[0] < a.rows[1]:
                    assert a.lane != b.lane
        for cluster in _clusters(items):
            rows = range(cluster[0].rows[0], max(item.rows[1] for item in cluster))
            busiest = max(sum(1 for i in cluster if i.rows[0] <= row < i.rows[1]) for row in rows)
            assert {item.lanes for item in cluster} == {min(busiest, limit)}
            if busiest <= limit:
                assert not any(item.hidden for item in cluster)
                continue
            overflowed += 1
            assert all(item.lane < limit - 1 for item in cluster if not item.hidden)
            # Hidden only where the lanes before the last were all taken.
            for item in cluster:
                if item.hidden:
                    at = item.rows[0]
                    taken = {
                        i.lane for i in cluster if i.rows[0] <= at < i.rows[1] and i is not item
                    }
                    assert set(range(limit - 1)) <= taken
    assert overflowed > 20  # the days tried do overflow


def _overlapping_hour(clinic: Clinic, count: int) -> list[Booking]:
    """`count` bookings of 45 minutes, each with its own practitioner and
    room, starting on Tuesday at 10:00, 10:05, 10:10 ..."""
    made = []
    for n in range(count):
        who = UserFactory(username=f"lane{n}", first_name=f"Prac{n:02}", roles=[Role.PRACTITIONER])
        give_hours(who)
        made.append(
            _booking(
                clinic,
                TUESDAY,
                10 + (5 * n) // 60,
                (5 * n) % 60,
                practitioner=who,
                room=Room.objects.create(name=f"Room L{n}"),
            )
        )
    return made


def test_twelve_bookings_at_once_never_share_a_lane_and_each_is_reachable(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    made = _overlapping_hour(clinic, 12)
    sign_in(client, receptionist)
    body = _week(client)
    drawn: dict[Booking, tuple[int, int]] = {}
    listed: set[str] = set()
    for more in re.findall(r'<details class="cal-more (.*?)</details>', body, re.S):
        # "+k more" sits in the last of MAX_LANES lanes and lists its bookings by link.
        assert more.startswith(f'cal-lane-{MAX_LANES - 1} cal-lanes-{MAX_LANES}"')
        links = re.findall(r'<a href="([^"]+)" data-more-booking="([^"]+)"', more)
        assert int(re.search(r'data-count="(\d+)"', more)[1]) == len(links)  # type: ignore[index]
        assert f">+{len(links)} more<" in more
        for href, uuid in links:
            assert href == reverse("treatments:booking_detail", kwargs={"booking": uuid})
            listed.add(uuid)
    for booking in made:
        card = re.search(rf'class="cal-booking ([^"]*)"[^>]*data-booking="{booking.uuid}"', body)
        assert card, "every booking keeps its card (the list of days on a narrow screen)"
        lanes = re.search(r"cal-lane-(\d+) cal-lanes-(\d+)", card[1])
        if "cal-overflow" in card[1]:
            assert lanes is None
            assert str(booking.uuid) in listed
        else:
            assert lanes is not None
            assert str(booking.uuid) not in listed
            drawn[booking] = (int(lanes[1]), int(lanes[2]))
    # Cards are drawn by 15-minute rows: 10:00-10:10 start in one row, 10:15-10:25
    # in the next... At 10:30 nine cards meet; the five lanes drawn hold those
    # from 10:00 to 10:20, and "+1 more" (10:25) and "+3 more" (10:30 to 10:40)
    # list the rest; from 10:45 the first lanes are free again.
    assert re.findall(r'data-count="(\d+)"', body) == ["1", "3"]
    assert listed == {str(booking.uuid) for booking in made[5:9]}
    assert len(drawn) + len(listed) == len(made)
    assert {lanes for _lane, lanes in drawn.values()} == {MAX_LANES}
    # Drawn cards never share a lane where they overlap, nor the "+k more" lane.
    for a, (lane_a, _n) in drawn.items():
        assert lane_a < MAX_LANES - 1
        for b, (lane_b, _m) in drawn.items():
            if a != b and a.starts_at < b.ends_at and b.starts_at < a.ends_at:
                assert lane_a != lane_b
    # The day view: a column per practitioner, each booking drawn whole in it.
    day = client.get(CALENDAR, {"view": "day", "date": TUESDAY.isoformat()}).content.decode()
    assert "cal-more" not in day.split('<div class="cal-scroll', 1)[1]
    for booking in made:
        assert _lanes(day, booking) == (0, 1)


def test_a_week_beyond_its_lanes_costs_the_queries_of_one_within_them(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    sign_in(client, receptionist)
    _week(client)  # the first request starts the idle timer and keeps the view chosen
    _overlapping_hour(clinic, MAX_LANES - 1)
    with CaptureQueriesContext(connection) as within:
        assert "cal-overflow" not in _week(client)
    for n in range(MAX_LANES - 1, 20):
        who = UserFactory(username=f"more{n}", roles=[Role.PRACTITIONER])
        give_hours(who)
        _booking(
            clinic, TUESDAY, 10, n % 4 * 5, practitioner=who, room=Room.objects.create(name=f"R{n}")
        )
    with CaptureQueriesContext(connection) as beyond:
        assert "cal-overflow" in _week(client)
    assert len(beyond) == len(within)


def test_as_many_bookings_as_lanes_are_all_drawn(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    made = _overlapping_hour(clinic, MAX_LANES)
    sign_in(client, receptionist)
    body = _week(client)
    assert "cal-overflow" not in body
    assert 'data-testid="more-bookings"' not in body
    assert sorted(_lanes(body, booking)[0] for booking in made) == list(range(MAX_LANES))


# --- A narrow screen ----------------------------------------------------------------------


def test_the_week_names_each_cells_day_and_says_which_days_have_no_bookings(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    booking = _booking(clinic, TUESDAY, 10)
    sign_in(client, receptionist)
    body = _week(client)
    cell = body[: body.index(f'data-booking="{booking.uuid}"')]
    cell = cell[cell.rindex("<td ") :]
    assert 'class="cal-cell cal-open cal-col-2 cal-busy"' in cell
    assert 'class="cal-head cal-col-7"' in body  # Sunday's heading
    empty = body[body.index('<tr class="cal-list-row">') :]
    empty = empty[: empty.index("</tr>")]
    assert empty.count("No bookings") == 6
    assert '<td class="cal-list-empty cal-col-2"></td>' in empty


# --- Opening on today, the view remembered ----------------------------------------------------


def _view_of(client: Client, **params: str) -> str:
    body = client.get(CALENDAR, params).content.decode()
    found = re.search(r'data-testid="cal-(day|week)" aria-current="page"', body)
    assert found
    return found[1]


def test_reception_opens_on_todays_day_view_and_the_view_chosen_is_remembered(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    sign_in(client, receptionist)
    body = client.get(CALENDAR).content.decode()
    assert "Mon 23 Nov" in body  # today, frozen
    assert _view_of(client) == "day"
    assert _view_of(client, view="week") == "week"
    assert _view_of(client) == "week"  # remembered
    assert _view_of(client, date=TUESDAY.isoformat()) == "week"
    assert _view_of(client, view="day") == "day"  # ?view= wins, and is remembered
    assert _view_of(client) == "day"


@pytest.mark.parametrize("persona", ["practitioner", "manager"])
def test_others_open_on_the_week_until_they_choose(
    client: Client, clinic: Clinic, persona: str, request: pytest.FixtureRequest
) -> None:
    sign_in(client, request.getfixturevalue(persona))
    assert _view_of(client) == "week"
    assert _view_of(client, view="day") == "day"
    assert _view_of(client) == "day"


def test_the_view_remembered_is_each_persons_own(
    clinic: Clinic, receptionist: User, practitioner: User
) -> None:
    desk, room = sign_in(Client(), receptionist), sign_in(Client(), practitioner)
    assert _view_of(room, view="day") == "day"
    assert _view_of(desk) == "day"
    assert _view_of(desk, view="week") == "week"
    assert _view_of(room) == "day"


# --- The first day of the week ----------------------------------------------------------------


def test_the_week_runs_monday_to_sunday_in_a_british_clinic(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    assert week_of(SUNDAY) == [MONDAY + timedelta(days=n) for n in range(7)]
    sunday = _booking(clinic, SUNDAY, 10, practitioner=clinic.practitioner)
    sign_in(client, receptionist)
    body = client.get(CALENDAR, {"view": "week", "date": SUNDAY.isoformat()}).content.decode()
    assert "Mon 23 Nov \N{EN DASH} Sun 29 Nov" in body
    assert f'data-booking="{sunday.uuid}"' in body


def test_a_week_that_starts_on_a_sunday_shows_the_days_to_come(
    client: Client, clinic: Clinic, receptionist: User, settings: object
) -> None:
    """Where the week starts on Sunday (the clinic's language says so), a
    Sunday's week is that Sunday and the six days after it."""
    settings.LANGUAGE_CODE = "en-us"  # type: ignore[attr-defined]
    assert week_of(SUNDAY) == [SUNDAY + timedelta(days=n) for n in range(7)]
    coming = _booking(clinic, SUNDAY + timedelta(days=2), 10)
    past = _booking(clinic, TUESDAY, 10)
    sign_in(client, receptionist)
    response = client.get(CALENDAR, {"view": "week", "date": SUNDAY.isoformat()})
    body = response.content.decode()
    assert "Sun 29 Nov \N{EN DASH} Sat 5 Dec" in body
    assert f'data-booking="{coming.uuid}"' in body
    assert f'data-booking="{past.uuid}"' not in body
    assert week_of(SUNDAY, first=0)[0] == MONDAY  # a week asked to start on Monday


def test_calendar_build_lays_out_lanes_in_a_fixed_number_of_queries(
    clinic: Clinic, django_assert_max_num_queries: object
) -> None:
    for minute in range(0, 240, 15):  # half-hour sessions every quarter: two at once
        _booking(
            clinic,
            TUESDAY,
            9 + minute // 60,
            minute % 60,
            minutes=30,
            practitioner=clinic.practitioner if minute % 30 else clinic.other_practitioner,
            room=clinic.room if minute % 30 else clinic.other_room,
        )
    # 7: the clinic's settings (validity windows, opening hours) read once.
    with django_assert_max_num_queries(7):  # type: ignore[operator]
        built = calendar_build(
            view="week", day=TUESDAY, practitioner=None, room=None, at=support.NOW
        )
    tuesday = built.columns[1]
    assert tuesday.booking_count == 16
    assert tuesday.lanes == 2

"""Local wall-clock times around the clock changes in London."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clinic.localtime import (
    AmbiguousTimeError,
    NonExistentTimeError,
    fold_labels,
    local_to_utc,
    to_local,
)

LONDON = ZoneInfo("Europe/London")
BACK = date(2026, 10, 25)  # 02:00 BST -> 01:00 GMT
FORWARD = date(2027, 3, 28)  # 01:00 GMT -> 02:00 BST

times = st.times().map(lambda t: t.replace(second=0, microsecond=0))
days_near = st.sampled_from(
    [
        BACK - timedelta(days=1),
        BACK,
        BACK + timedelta(days=1),
        FORWARD - timedelta(days=1),
        FORWARD,
        FORWARD + timedelta(days=1),
    ]
)


def test_half_past_one_on_the_spring_change_does_not_exist() -> None:
    with pytest.raises(NonExistentTimeError) as raised:
        local_to_utc(FORWARD, time(1, 30), zone=LONDON)
    assert "does not exist" in raised.value.message
    assert "Sun 28 Mar 2027" in raised.value.message


def test_half_past_one_on_the_autumn_change_happens_twice_and_asks_which() -> None:
    with pytest.raises(AmbiguousTimeError) as raised:
        local_to_utc(BACK, time(1, 30), zone=LONDON)
    assert "happens twice" in raised.value.message


def test_the_two_half_past_ones_of_the_autumn_change_are_an_hour_apart() -> None:
    first = local_to_utc(BACK, time(1, 30), fold=0, zone=LONDON)
    second = local_to_utc(BACK, time(1, 30), fold=1, zone=LONDON)
    assert first == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert second == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    assert fold_labels(BACK, time(1, 30), LONDON) == ("BST", "GMT")


def test_ten_in_the_morning_is_utc_in_winter_and_an_hour_earlier_in_summer() -> None:
    assert local_to_utc(date(2027, 3, 27), time(10), zone=LONDON).hour == 10
    assert local_to_utc(date(2027, 3, 29), time(10), zone=LONDON).hour == 9


@given(day=days_near, at=times)
def test_every_time_that_exists_once_comes_back_unchanged(day: date, at: time) -> None:
    try:
        moment = local_to_utc(day, at, zone=LONDON)
    except NonExistentTimeError:
        assert day == FORWARD
        assert time(1) <= at < time(2)
        return
    except AmbiguousTimeError:
        assert day == BACK
        assert time(1) <= at < time(2)
        return
    assert moment.tzinfo == UTC
    local = to_local(moment, LONDON)
    assert (local.date(), local.time()) == (day, at)


@given(day=days_near, at=times, fold=st.sampled_from([0, 1]))
def test_a_chosen_occurrence_round_trips_to_the_same_wall_clock(
    day: date, at: time, fold: int
) -> None:
    try:
        moment = local_to_utc(day, at, fold=fold, zone=LONDON)
    except NonExistentTimeError:
        assert day == FORWARD
        assert time(1) <= at < time(2)
        return
    local = to_local(moment, LONDON)
    assert (local.date(), local.time()) == (day, at)
    if day == BACK and time(1) <= at < time(2):
        assert local.fold == fold
        assert local.tzname() == ("BST" if fold == 0 else "GMT")


@given(
    moment=st.datetimes(
        min_value=datetime(2026, 10, 24),  # noqa: DTZ001 (hypothesis bounds are naive)
        max_value=datetime(2027, 3, 29),  # noqa: DTZ001
        timezones=st.just(UTC),
    )
)
def test_every_instant_has_a_wall_clock_time_that_leads_back_to_it(moment: datetime) -> None:
    moment = moment.replace(second=0, microsecond=0)
    local = to_local(moment, LONDON)
    assert local_to_utc(local.date(), local.time(), fold=local.fold, zone=LONDON) == moment

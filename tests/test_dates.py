"""The clinic's date and time formats (clinic/dates.py) at their edges, and
the date, time and date-and-time fields people type into (clinic/widgets.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest
import time_machine
from django import forms
from django.template import Context, Template

from clinic import dates
from clinic.widgets import BirthDateField, ClockField, DayField, DayTimeField
from treatments.forms.portal import DateOfBirthForm

# Mid-year in London (BST), so "this year" is 2026.
SUMMER_2026 = datetime(2026, 6, 10, 9, 0, tzinfo=UTC)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@time_machine.travel(SUMMER_2026, tick=False)
def test_a_day_of_this_year_leaves_the_year_out_and_another_year_shows_it() -> None:
    assert dates.day(date(2026, 11, 24)) == "Tue 24 Nov"
    assert dates.day(date(2025, 11, 24)) == "Mon 24 Nov 2025"
    assert dates.day(date(2027, 1, 5)) == "Tue 5 Jan 2027"
    assert dates.day(date(2026, 11, 24), year=True) == "Tue 24 Nov 2026"


@time_machine.travel(utc(2026, 12, 31, 23, 59, 59), tick=False)
def test_on_new_years_eve_the_next_day_carries_its_year() -> None:
    assert dates.day(date(2026, 12, 31)) == "Thu 31 Dec"
    assert dates.day(date(2027, 1, 1)) == "Fri 1 Jan 2027"
    assert dates.day_time(utc(2027, 1, 1, 0, 0)) == "Fri 1 Jan 2027, 00:00"


@time_machine.travel(utc(2027, 1, 1, 0, 0, 1), tick=False)
def test_once_the_year_has_turned_last_year_carries_its_year() -> None:
    assert dates.day(date(2026, 12, 31)) == "Thu 31 Dec 2026"
    assert dates.day(date(2027, 1, 1)) == "Fri 1 Jan"
    assert dates.day_range(date(2026, 12, 28), date(2027, 1, 3)) == (
        "Mon 28 Dec 2026 \N{EN DASH} Sun 3 Jan 2027"
    )


@time_machine.travel(SUMMER_2026, tick=False)
def test_times_are_the_clinics_on_the_24_hour_clock_across_the_clock_changes() -> None:
    # Summer time: 13:00 UTC is 14:00 in London.
    assert dates.clock(utc(2026, 6, 1, 13, 0)) == "14:00"
    # Clocks go forward at 01:00 UTC on Sun 29 Mar 2026.
    assert dates.day_time(utc(2026, 3, 29, 0, 59)) == "Sun 29 Mar, 00:59"
    assert dates.day_time(utc(2026, 3, 29, 1, 0)) == "Sun 29 Mar, 02:00"
    # Clocks go back at 01:00 UTC on Sun 25 Oct 2026: 01:30 happens twice.
    assert dates.clock(utc(2026, 10, 25, 0, 30)) == "01:30"
    assert dates.clock(utc(2026, 10, 25, 1, 30)) == "01:30"
    assert dates.clock(time(9, 5)) == "09:05"


@time_machine.travel(SUMMER_2026, tick=False)
def test_just_after_midnight_in_summer_is_the_next_local_day() -> None:
    late = utc(2026, 5, 31, 23, 30)  # 00:30 on 1 June in London
    assert dates.day(late) == "Mon 1 Jun"
    assert dates.clock(late) == "00:30"
    assert dates.day_or_day_time(utc(2026, 5, 31, 23, 0)) == "Mon 1 Jun"
    assert dates.day_or_day_time(late) == "Mon 1 Jun, 00:30"


@time_machine.travel(SUMMER_2026, tick=False)
def test_ranges_say_the_day_once_and_cross_midnight_whole() -> None:
    assert dates.time_range(utc(2026, 11, 24, 14, 0), utc(2026, 11, 24, 14, 45)) == (
        "Tue 24 Nov, 14:00\N{EN DASH}14:45"
    )
    assert dates.time_range(utc(2026, 11, 24, 23, 30), utc(2026, 11, 25, 0, 15)) == (
        "Tue 24 Nov, 23:30 \N{EN DASH} Wed 25 Nov, 00:15"
    )
    assert dates.day_range(date(2026, 11, 16), date(2026, 11, 22)) == (
        "Mon 16 Nov \N{EN DASH} Sun 22 Nov"
    )
    assert dates.day_range(date(2026, 11, 16), date(2026, 11, 16)) == "Mon 16 Nov"


@time_machine.travel(SUMMER_2026, tick=False)
def test_a_date_of_birth_always_has_its_year_and_month_in_full() -> None:
    assert dates.birth_date(date(1990, 5, 17)) == "17 May 1990"
    assert dates.birth_date(date(2026, 1, 2)) == "2 January 2026"


@time_machine.travel(SUMMER_2026, tick=False)
def test_the_template_filters_write_the_same_formats_and_nothing_for_none() -> None:
    rendered = Template(
        "{{ at|day }}|{{ at|day_time }}|{{ at|clock }}|{{ at|time_range:end }}|"
        '{{ born|birth_date }}|{{ at|day_time:"year" }}|{{ missing|day_time|default:"never" }}|'
        "{{ born|input_date }}"
    ).render(
        Context(
            {
                "at": utc(2026, 11, 24, 14, 0),
                "end": utc(2026, 11, 24, 14, 45),
                "born": date(1990, 5, 17),
                "missing": None,
            }
        )
    )
    assert rendered.split("|") == [
        "Tue 24 Nov",
        "Tue 24 Nov, 14:00",
        "14:00",
        "Tue 24 Nov, 14:00\N{EN DASH}14:45",
        "17 May 1990",
        "Tue 24 Nov 2026, 14:00",
        "never",
        "17/05/1990",
    ]


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("31/12/2026", date(2026, 12, 31)),
        ("2026-12-31", date(2026, 12, 31)),  # ISO, as links and older tests send
        ("01/01/2027", date(2027, 1, 1)),
        ("1/1/2027", date(2027, 1, 1)),
        ("31-12-2026", date(2026, 12, 31)),
        ("31122026", date(2026, 12, 31)),
    ],
)
def test_a_date_is_taken_in_the_clinics_format_and_iso(typed: str, expected: date) -> None:
    assert DayField().clean(typed) == expected


@pytest.mark.parametrize("typed", ["31/02/2026", "12/31/2026", "2026-02-30", "tomorrow"])
def test_an_impossible_or_american_date_is_refused_naming_the_format(typed: str) -> None:
    with pytest.raises(forms.ValidationError) as refused:
        DayField().clean(typed)
    assert "dd/mm/yyyy" in refused.value.messages[0]


def test_times_are_taken_on_the_24_hour_clock_and_others_refused() -> None:
    assert ClockField().clean("14:30") == time(14, 30)
    assert ClockField().clean("00:00") == time(0, 0)
    assert ClockField().clean("1430") == time(14, 30)
    for typed in ("2:30 PM", "24:00", "14:60"):
        with pytest.raises(forms.ValidationError) as refused:
            ClockField().clean(typed)
        assert "hh:mm" in refused.value.messages[0]


@time_machine.travel(SUMMER_2026, tick=False)
def test_a_date_and_time_is_taken_in_the_clinics_format_and_iso() -> None:
    field = DayTimeField()
    assert field.clean("17/05/2026 14:30") == datetime(2026, 5, 17, 13, 30, tzinfo=UTC)
    assert field.clean("2026-05-17T14:30") == datetime(2026, 5, 17, 13, 30, tzinfo=UTC)
    with pytest.raises(forms.ValidationError) as refused:
        field.clean("05/17/2026 14:30")
    assert "dd/mm/yyyy hh:mm" in refused.value.messages[0]


def test_the_inputs_are_text_in_the_clinics_format_not_the_browsers() -> None:
    html = DayField().widget.render("day", date(2026, 12, 31))
    assert 'type="text"' in html
    assert 'value="31/12/2026"' in html
    assert 'placeholder="dd/mm/yyyy"' in html
    born = BirthDateField().widget.render("born", date(1990, 5, 17))
    assert 'autocomplete="bday"' in born
    clock = ClockField().widget.render("at", time(9, 5))
    assert 'type="text"' in clock
    assert 'value="09:05"' in clock
    typed = DayField().widget.render("day", "31/02/2026")
    assert 'value="31/02/2026"' in typed  # what was typed is kept to correct


def test_the_download_links_birth_date_check_takes_the_clinics_format() -> None:
    form = DateOfBirthForm(data={"date_of_birth": "17/05/1990"})
    assert form.is_valid()
    assert form.cleaned_data["date_of_birth"] == date(1990, 5, 17)
    wrong = DateOfBirthForm(data={"date_of_birth": "05/17/1990"})
    assert not wrong.is_valid()
    assert "dd/mm/yyyy" in wrong.errors["date_of_birth"][0]


def test_a_day_or_time_given_as_iso_text_is_shown_in_the_clinics_format() -> None:
    # A link's query string (?date=2026-11-24&time=14:00) fills a form's initial values.
    assert 'value="24/11/2026"' in DayField().widget.render("day", "2026-11-24")
    assert 'value="14:00"' in ClockField().widget.render("at", "14:00:00")

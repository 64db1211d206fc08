"""Each table of the manager's reports as a CSV file: the page's range and
practitioner, a file name that says them, the same figures as the page, and
no cell a spreadsheet would run as a formula."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse

from clinic.models import User
from clinic.roles import Role
from clinic.spreadsheets import spreadsheet_cell
from tests.conftest import sign_in
from tests.factories import BatchFactory, ProductFactory, ProtocolFactory, UserFactory
from tests.treatments.test_reports import book, event, record
from treatments.models import BookingStatus
from treatments.views.reports import CSV_TABLES

pytestmark = pytest.mark.django_db

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 18, 12, 0, tzinfo=LONDON)
RANGE = {"since": "2026-11-02", "until": "2026-11-18"}


def at(day: int, hour: int = 10) -> datetime:
    return datetime(2026, 11, day, hour, 0, tzinfo=LONDON)


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def clinic() -> dict[str, User]:
    """A practitioner with an ordinary name and one whose name, product, maker
    and lot number are each written like a spreadsheet formula."""
    alice = UserFactory(
        username="alice", first_name="Alice", last_name="Adams", roles=[Role.PRACTITIONER]
    )
    mallory = UserFactory(
        username="mallory",
        first_name='=HYPERLINK("http://evil.example","x")',
        last_name="",
        roles=[Role.PRACTITIONER],
    )
    protocol = ProtocolFactory()
    plain = BatchFactory(
        product=ProductFactory(name="Glow cocktail", maker="Lab A"),
        lot_number="G-1",
        received_on=date(2026, 1, 1),
    )
    hostile = BatchFactory(
        product=ProductFactory(name="+SUM(A1:A9)", maker="@maker"),
        lot_number="-2+3",
        received_on=date(2026, 1, 1),
    )
    book(alice, protocol, at(1), BookingStatus.COMPLETED)  # before the range
    event(record(book(alice, protocol, at(3), BookingStatus.COMPLETED), plain), "bruising", "mild")
    book(alice, protocol, at(4), BookingStatus.NO_SHOW)
    book(alice, protocol, at(16), BookingStatus.COMPLETED)
    session = record(book(mallory, protocol, at(17), BookingStatus.COMPLETED), hostile)
    event(session, "swelling", "severe")
    return {"alice": alice, "mallory": mallory}


def download(client: Client, table: str, **query: str) -> HttpResponse:
    return client.get(reverse("treatments:reports"), {**RANGE, **query, "download": table})


def rows(response: HttpResponse) -> list[list[str]]:
    text = response.content.decode("utf-8")
    assert text.startswith("\ufeff")  # spreadsheets read UTF-8 by the mark
    return list(csv.reader(io.StringIO(text[1:])))


@pytest.fixture
def as_manager(manager: User) -> Client:
    return sign_in(Client(), manager)


def test_sessions_per_week_as_csv(clinic: dict[str, User], as_manager: Client) -> None:
    response = download(as_manager, "sessions-per-week")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        'attachment; filename="sessions-per-week_2026-11-02_to_2026-11-18.csv"'
    )
    # Names sort by their letters: "=" comes before "A".
    assert rows(response) == [
        ["Week of", '\'=HYPERLINK("http://evil.example","x")', "Alice Adams", "Total"],
        ["2026-11-02", "0", "1", "1"],
        ["2026-11-09", "0", "0", "0"],
        ["2026-11-16", "1", "1", "2"],
        ["Total", "1", "2", "3"],
    ]


def test_no_shows_as_csv(clinic: dict[str, User], as_manager: Client) -> None:
    assert rows(download(as_manager, "no-shows")) == [
        ["Practitioner", "Completed", "Did not come", "Rate (%)"],
        ['\'=HYPERLINK("http://evil.example","x")', "1", "0", "0.0"],
        ["Alice Adams", "2", "1", "33.3"],
        ["Whole clinic", "3", "1", "25.0"],
    ]


def test_course_completion_as_csv_with_no_course_leaves_the_percentages_empty(
    clinic: dict[str, User], as_manager: Client
) -> None:
    table = rows(download(as_manager, "course-completion"))
    assert table[0] == ["Courses started in the range", "Number", "Percentage"]
    assert table[1:] == [
        ["Courses started", "0", ""],
        ["Completed", "0", ""],
        ["Stopped", "0", ""],
        ["Still running", "0", ""],
        ["Sessions planned", "0", ""],
        ["Sessions done", "0", ""],
    ]


def test_adverse_events_by_product_and_batch_as_csv(
    clinic: dict[str, User], as_manager: Client
) -> None:
    by_product = rows(download(as_manager, "adverse-events-by-product"))
    header = by_product[0]
    assert header[:6] == ["Product", "Maker", "Events", "Mild", "Moderate", "Severe"]
    assert "Bruising" in header
    assert "Swelling" in header
    products = {row[0]: row for row in by_product[1:]}
    assert set(products) == {"Glow cocktail", "'+SUM(A1:A9)"}
    hostile = products["'+SUM(A1:A9)"]
    assert hostile[1:6] == ["'@maker", "1", "0", "0", "1"]
    assert hostile[header.index("Swelling")] == "1"
    assert hostile[header.index("Bruising")] == "0"

    by_batch = rows(download(as_manager, "adverse-events-by-batch"))
    assert by_batch[0][:2] == ["Product", "Lot number"]
    assert {(row[0], row[1], row[2]) for row in by_batch[1:]} == {
        ("Glow cocktail", "G-1", "1"),
        ("'+SUM(A1:A9)", "'-2+3", "1"),
    }


def test_the_file_of_one_practitioner_says_whose_it_is_and_holds_only_theirs(
    clinic: dict[str, User], as_manager: Client
) -> None:
    alice = clinic["alice"]
    response = download(as_manager, "no-shows", practitioner=str(alice.uuid))
    assert response["Content-Disposition"] == (
        'attachment; filename="no-shows_2026-11-02_to_2026-11-18_alice.csv"'
    )
    assert [row[0] for row in rows(response)] == ["Practitioner", "Alice Adams", "Whole clinic"]


def test_the_page_links_each_table_to_its_file_with_the_range_shown(
    clinic: dict[str, User], as_manager: Client
) -> None:
    alice = clinic["alice"]
    body = as_manager.get(
        reverse("treatments:reports"), {**RANGE, "practitioner": str(alice.uuid), "extra": "x"}
    ).content.decode()
    for table in CSV_TABLES:
        link = (
            f"?since=2026-11-02&amp;until=2026-11-18&amp;practitioner={alice.uuid}"
            f"&amp;download={table}"
        )
        assert f'href="{link}"' in body, table
    assert "extra=x" not in body


def test_a_file_under_a_refused_range_is_refused_too(
    clinic: dict[str, User], as_manager: Client
) -> None:
    response = download(as_manager, "no-shows", since="2026-11-20")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    assert "The start date is after the end date." in response.content.decode()


@pytest.mark.parametrize("table", ["nothing", "../settings", "SESSIONS-PER-WEEK", "sessions"])
def test_a_table_that_is_not_one_is_refused_with_the_reason(
    clinic: dict[str, User], as_manager: Client, table: str
) -> None:
    response = download(as_manager, table)
    assert response.status_code == 400
    assert "There is no such table to download." in response.content.decode()


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tTAB", "'\tTAB"),
        ("\rCR", "'\rCR"),
        ("Alice", "Alice"),
        ("a=b", "a=b"),
        (12, "12"),
        (None, ""),
    ],
)
def test_a_cell_a_spreadsheet_would_run_is_written_as_text(value: object, cell: str) -> None:
    assert spreadsheet_cell(value) == cell

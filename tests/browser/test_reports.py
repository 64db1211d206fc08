"""The manager's reports in a real browser, at 1366x768 and on a 768x1024
tablet: the three charts drawn by the local Chart.js beside their tables (below
them on the tablet), a practitioner and a range chosen, a CSV file downloaded,
and a range refused with its reason."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.urls import reverse
from playwright.sync_api import Page, expect

from clinic.models import User
from clinic.roles import Role
from tests.browser.conftest import screenshot
from tests.browser.test_journeys import NewPage, assert_styled, sign_in
from tests.factories import (
    BatchFactory,
    PatientFactory,
    ProductFactory,
    ProtocolFactory,
    UserFactory,
)
from tests.treatments.test_reports import book, event, record
from treatments.models import BookingStatus, CourseStatus, TreatmentCourse

pytestmark = pytest.mark.browser

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 18, 15, 0, tzinfo=LONDON)  # a Wednesday afternoon
# How many sessions each practitioner completed in each of the last 12 weeks.
WEEKLY = {
    ("Priya", "Shah"): [3, 4, 2, 5, 4, 3, 6, 4, 5, 3, 4, 2],
    ("Tom", "Okafor"): [1, 2, 2, 1, 3, 2, 2, 1, 2, 3, 2, 1],
    ("Zoë", "Müller"): [0, 0, 0, 2, 2, 3, 1, 2, 2, 3, 2, 1],
}
MISSED = {"Priya": 3, "Tom": 5, "Zoë": 1}
VIEWPORTS = {"desktop": {"width": 1366, "height": 768}, "tablet": {"width": 768, "height": 1024}}


def busy_clinic() -> dict[str, User]:
    protocol = ProtocolFactory()
    batch = BatchFactory(
        product=ProductFactory(name="Hyaluronic glow", maker="Lab A"),
        lot_number="HG-0417",
        received_on=date(2026, 1, 1),
    )
    monday = date(2026, 8, 31)
    people = {}
    for (first, last), counts in WEEKLY.items():
        practitioner = UserFactory(first_name=first, last_name=last, roles=[Role.PRACTITIONER])
        people[first] = practitioner
        for week, n in enumerate(counts):
            for i in range(n):
                day = monday + timedelta(weeks=week, days=i % 5)
                starts = datetime(day.year, day.month, day.day, 9 + i, 0, tzinfo=LONDON)
                done = book(practitioner, protocol, starts, BookingStatus.COMPLETED)
                if (week + i) % 9 == 0:
                    event(record(done, batch), "bruising", "mild")
        for k in range(MISSED[first]):
            day = monday + timedelta(weeks=2 * k + 1, days=4)
            book(
                practitioner,
                protocol,
                datetime(day.year, day.month, day.day, 17, 0, tzinfo=LONDON),
                BookingStatus.NO_SHOW,
            )
    for k, status in enumerate(
        [CourseStatus.COMPLETED] * 5 + [CourseStatus.STOPPED] * 2 + [CourseStatus.ACTIVE] * 4
    ):
        with time_machine.travel(datetime(2026, 9, 1 + 2 * k, 11, tzinfo=LONDON), tick=False):
            TreatmentCourse.objects.create(
                patient=PatientFactory(),
                protocol=protocol,
                planned_sessions=4,
                interval="fortnightly",
                status=status,
                created_by=people["Priya"],
            )
    return people


def drawn(page: Page, canvas: str) -> int:
    """How many datasets Chart.js drew on the canvas `canvas` (0: none)."""
    return int(
        page.evaluate(
            "(id) => { const c = window.Chart && Chart.getChart(id);"
            " return c ? c.data.datasets.length : 0; }",
            canvas,
        )
    )


def box(page: Page, selector: str) -> dict[str, float]:
    found = page.locator(selector).bounding_box()
    assert found is not None, selector
    return found


@pytest.mark.parametrize("viewport", ["desktop", "tablet"])
def test_the_manager_reads_the_charts_narrows_them_and_downloads_a_table(
    live_server, new_page: NewPage, manager: User, viewport: str
) -> None:
    with time_machine.travel(NOW, tick=True):
        people = busy_clinic()
        tab = new_page(viewport)
        page = tab.page
        page.set_viewport_size(VIEWPORTS[viewport])
        sign_in(tab, live_server.url, manager)
        page.goto(live_server.url + reverse("treatments:reports"))
        assert_styled(page)

        expect(page.get_by_test_id("report-range")).to_contain_text(
            "From Mon 31 Aug to Wed 18 Nov, the whole clinic."
        )
        page.wait_for_function("() => window.Chart && Chart.getChart('chart-courses')")
        assert drawn(page, "chart-sessions") == 3
        assert drawn(page, "chart-no-shows") == 1
        assert drawn(page, "chart-courses") == 1
        sessions = page.get_by_test_id("report-sessions")
        # 45 + 22 + 18 sessions; 9 missed of 94.
        expect(sessions.get_by_test_id("sessions-total")).to_have_text(
            "Total 45 22 18 85", use_inner_text=True
        )
        expect(page.get_by_test_id("no-show-overall")).to_contain_text("9.6%")
        expect(page.get_by_test_id("courses-completed")).to_contain_text("5 (45.5%)")

        # The tables carry the figures for screen readers; the charts stay out of their way.
        expect(page.locator("#chart-sessions")).to_have_attribute("aria-hidden", "true")
        expect(
            page.get_by_role("region", name="Sessions completed per week, table")
        ).to_be_visible()

        chart, table = box(page, "#chart-sessions"), box(page, ".report-scroll")
        if viewport == "desktop":
            assert table["x"] > chart["x"] + chart["width"] - 1, "the table beside the chart"
        else:
            assert table["y"] > chart["y"] + chart["height"] - 1, "the table below the chart"
        screenshot(page, f"reports-{viewport}.png")

        # One practitioner, over a shorter range.
        page.get_by_label("From", exact=True).fill("05/10/2026")
        page.get_by_label("To", exact=True).fill("15/11/2026")
        page.get_by_label("Practitioner", exact=True).select_option(label="Tom Okafor")
        page.get_by_role("button", name="Show", exact=True).click()
        expect(page.get_by_test_id("report-range")).to_contain_text(
            "From Mon 5 Oct to Sun 15 Nov, Tom Okafor's sessions."
        )
        page.wait_for_function("() => window.Chart && Chart.getChart('chart-sessions')")
        assert drawn(page, "chart-sessions") == 1
        expect(sessions.locator("tbody tr")).to_have_count(6)
        expect(sessions.get_by_test_id("sessions-total")).to_contain_text("12")
        screenshot(page, f"reports-one-practitioner-{viewport}.png")

        with page.expect_download() as download_info:
            page.get_by_test_id("csv-sessions").click()
        download = download_info.value
        assert download.suggested_filename == (
            f"sessions-per-week_2026-10-05_to_2026-11-15_{people['Tom'].username}.csv"
        )
        path = download.path()
        text = path.read_text(encoding="utf-8-sig")
        table_rows = list(csv.reader(io.StringIO(text)))
        assert table_rows[0] == ["Week of", "Tom Okafor", "Total"]
        assert table_rows[-1] == ["Total", "12", "12"]

        # A range that runs backwards: the reason, and no figures.
        page.get_by_label("From", exact=True).fill("10/11/2026")
        page.get_by_label("To", exact=True).fill("01/11/2026")
        page.get_by_role("button", name="Show", exact=True).click()
        expect(page.get_by_test_id("report-refused")).to_be_visible()
        expect(page.get_by_text("The start date is after the end date.")).to_be_visible()
        expect(page.locator("canvas")).to_have_count(0)
        screenshot(page, f"reports-refused-{viewport}.png")
    refused = page.url
    assert tab.errors_except(refused) == []


@pytest.mark.parametrize("viewport", ["desktop", "tablet"])
def test_this_year_is_reported_up_to_today_and_says_so(
    live_server, new_page: NewPage, manager: User, viewport: str
) -> None:
    with time_machine.travel(NOW, tick=True):
        busy_clinic()
        tab = new_page(viewport)
        page = tab.page
        sign_in(tab, live_server.url, manager)
        page.goto(live_server.url + reverse("treatments:reports"))
        ranges = page.get_by_role("navigation", name="Ranges")
        ranges.get_by_role("link", name="This year", exact=True).click()
        cut = page.get_by_test_id("report-cut")
        expect(cut).to_contain_text("The range asked for ends on Thu 31 Dec")
        expect(cut).to_contain_text("the figures go up to today, Wed 18 Nov.")
        page.wait_for_function("() => window.Chart && Chart.getChart('chart-sessions')")
        assert drawn(page, "chart-sessions") == 3
        expect(page.get_by_test_id("sessions-total")).to_have_text(
            "Total 45 22 18 85", use_inner_text=True
        )
        screenshot(page, f"reports-this-year-{viewport}.png")
        # Every range offered gives figures.
        for name in ("This month", "Last month", "Last 12 weeks"):
            page.get_by_role("navigation", name="Ranges").get_by_role(
                "link", name=name, exact=True
            ).click()
            expect(page.get_by_test_id("report-range")).to_be_visible()
            expect(page.get_by_test_id("report-refused")).to_have_count(0)
    assert tab.errors == []

"""The reports' charts: their figures are the tables' figures, carried in a
JSON element for a local script (no inline script or style: the Content
Security Policy stays as it is), the chart library is served from the
clinic's own static files, and screen readers read the tables."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.conf import settings
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import reverse

from clinic.models import User
from tests.conftest import sign_in
from tests.treatments.test_reports import known  # noqa: F401 (the fixture)

pytestmark = pytest.mark.django_db

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 18, 12, 0, tzinfo=LONDON)
ROOT = Path(settings.BASE_DIR)


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def body(known: dict[str, object], manager: User) -> str:  # noqa: F811
    response = sign_in(Client(), manager).get(reverse("treatments:reports"))
    assert response.status_code == 200
    return response.content.decode()


def charts(body: str) -> dict[str, dict[str, object]]:
    match = re.search(r'<script id="report-charts" type="application/json">(.*?)</script>', body)
    assert match, "the charts' figures are on the page"
    figures: dict[str, dict[str, object]] = json.loads(match[1])
    return figures


def test_the_charts_draw_the_tables_figures(body: str) -> None:
    figures = charts(body)
    sessions = figures["sessions"]
    assert sessions["labels"][-1] == "Mon 16 Nov"  # type: ignore[index]
    assert len(sessions["labels"]) == 12  # type: ignore[arg-type]
    series = {s["name"]: s["data"] for s in sessions["series"]}  # type: ignore[attr-defined]
    assert series["Alice Adams"][-1] == 2
    assert sum(series["Alice Adams"]) == 3
    assert sum(series["Bob Brown"]) == 1
    assert figures["noShows"] == {
        "labels": ["Alice Adams", "Bob Brown", "Whole clinic"],
        "data": [25.0, 66.7, 42.9],
        "axis": "Did not come (%)",
    }
    assert figures["courses"]["data"] == [1, 0, 1]  # completed, stopped, still running
    # The same figures are in the tables beside them.
    assert "66.7%" in body
    assert "42.9%" in body


def test_each_chart_is_named_and_left_to_its_table_for_screen_readers(body: str) -> None:
    canvases = re.findall(r"<canvas [^>]*>", body)
    assert len(canvases) == 3
    for canvas in canvases:
        assert 'aria-hidden="true"' in canvas
        assert re.search(r'aria-label="Bar chart of [^"]+"', canvas)
    # A long table scrolls beside its chart: keyboard users can reach and scroll it.
    assert re.search(r'<div class="[^"]*report-scroll[^"]*" tabindex="0" role="region"', body)


def test_the_page_has_no_inline_script_or_style_and_the_policy_is_unchanged(
    known: dict[str, object],  # noqa: F811
    manager: User,
) -> None:
    response = sign_in(Client(), manager).get(reverse("treatments:reports"))
    body = response.content.decode()
    for script in re.findall(r"<script[^>]*>", body):
        assert 'src="' in script or 'type="application/json"' in script, script
    assert " style=" not in body
    assert "<style" not in body
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "style-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert '<script src="/static/vendor/chartjs/chart.umd.min.js" defer></script>' in body
    assert '<script src="/static/js/reports.js" defer></script>' in body


def test_the_chart_library_is_pinned_and_served_from_the_clinics_own_files() -> None:
    package = json.loads((ROOT / "package.json").read_text())
    version = package["dependencies"]["chart.js"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), "an exact version"
    lock = json.loads((ROOT / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/chart.js"]["version"] == version
    found = finders.find("vendor/chartjs/chart.umd.min.js")
    assert found, "node_modules/chart.js is installed (npm ci) and in STATICFILES_DIRS"
    assert f"Chart.js v{version}" in Path(str(found)).read_text()[:200]
    assert finders.find("js/reports.js")

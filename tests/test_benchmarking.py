"""The benchmarks' shared parts: the anchor page answers, signed in and out, with one query."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from clinic.benchmarking import (
    ANCHOR_PATH,
    Timings,
    anchors,
    benchmark_urls,
    signed_in_client,
    staff_member,
    time_request,
)
from clinic.roles import Role


@pytest.mark.django_db
def test_the_anchor_runs_one_query_signed_in_and_out(settings: Any) -> None:
    # As `manage.py` runs them: no "testserver" among the allowed hosts.
    settings.ALLOWED_HOSTS = ["clinic.example"]
    reception = staff_member("bench-anchor", Role.RECEPTIONIST)
    with benchmark_urls():
        inside, outside = anchors(signed_in_client(reception), repeat=3)
        # Signed out, the signed-in anchor is refused like any staff page.
        assert Client(HTTP_HOST="clinic.example").get(ANCHOR_PATH, secure=True).status_code == 302
    assert len(inside.samples) == len(outside.samples) == 3
    # The anchor's own SELECT 1, plus what signing in costs (session, user, device).
    assert set(outside.queries) == {1}
    assert max(inside.queries) > 1


@pytest.mark.django_db
def test_the_anchor_route_exists_only_under_the_benchmark_urls() -> None:
    reception = staff_member("bench-anchor", Role.RECEPTIONIST)
    assert signed_in_client(reception).get(ANCHOR_PATH, secure=True).status_code == 404


@pytest.mark.django_db
def test_a_page_that_answers_otherwise_than_expected_stops_the_benchmark() -> None:
    with benchmark_urls(), pytest.raises(AssertionError, match="answered 302"):
        time_request(Client(), ANCHOR_PATH, repeat=1)


def test_figures_and_the_ratio_to_the_anchor() -> None:
    anchor = Timings(samples=(2.0, 2.0, 4.0), queries=(1, 1, 1))
    page = Timings(samples=(10.0, 20.0, 30.0, 40.0), queries=(5, 5, 6, 5))
    assert page.median == 25.0
    assert page.p95 == 40.0
    assert page.ratio_to(anchor) == 12.5
    assert page.row("week", anchor) == "| week | 25.0 | 40.0 | 40.0 | 5/6 | 12.5 |"

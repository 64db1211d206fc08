"""The load test's pieces (tests/load/), quickly: the accounts it prepares sign
in through the real pages with the code it computes, its clinic has no
double booking and is added once, and its report fails on any failed
request. The load test itself is `make loadtest`, not part of the suite."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from clinic.models import User
from clinic.roles import Role
from patients.models import Patient
from tests.factories import ProtocolFactory
from tests.load import prepare
from tests.load.run import Row, anchor_row, read_stats, slow_pages, summary_table, verdict
from tests.load.signin import SIGN_IN_PATHS, csrf_token, totp
from treatments.models import Booking

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # a Wednesday

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def frozen() -> object:
    with time_machine.travel(NOW, tick=True) as traveller:
        yield traveller


def test_the_accounts_are_a_third_per_role_each_with_one_confirmed_authenticator() -> None:
    accounts = prepare.prepare_staff(7)
    roles = [a["role"] for a in accounts]
    assert roles.count("reception") == 3
    assert roles.count("practitioner") == 2
    assert roles.count("manager") == 2
    role_of = {"reception": Role.RECEPTIONIST, "practitioner": Role.PRACTITIONER,
               "manager": Role.MANAGER}  # fmt: skip
    for account in accounts:
        user = User.objects.get(username=account["username"])
        assert user.roles == {role_of[account["role"]]}
        assert user.check_password(account["password"])
        [device] = TOTPDevice.objects.filter(user=user)
        assert device.confirmed
        assert device.key == account["totp_key"]


def test_preparing_again_gives_new_secrets_to_the_same_accounts_and_closing_locks_them() -> None:
    first = prepare.prepare_staff(3)
    again = prepare.prepare_staff(3)
    assert [a["username"] for a in again] == [a["username"] for a in first]
    for old, new in zip(first, again, strict=True):
        assert old["password"] != new["password"]
        assert old["totp_key"] != new["totp_key"]
    assert User.objects.filter(username__startswith="loadtest-").count() == 3
    assert prepare.close_staff() == 3
    for account in again:
        user = User.objects.get(username=account["username"])
        assert not user.is_active
        assert not TOTPDevice.objects.filter(user=user).exists()


@pytest.mark.parametrize("seconds", [0, 29, 30, 59])
def test_the_computed_code_is_the_one_the_authenticator_accepts(seconds: int) -> None:
    [account] = prepare.prepare_staff(1)
    device = TOTPDevice.objects.get(user__username=account["username"])
    with time_machine.travel(NOW.replace(second=seconds), tick=False):
        assert device.verify_token(totp(account["totp_key"]))


def test_a_prepared_account_signs_in_through_both_pages_as_the_simulated_staff_do(
    settings: object,
) -> None:
    settings.REQUIRE_STAFF_2FA = True  # type: ignore[attr-defined]
    [account] = prepare.prepare_staff(1)
    client = Client(enforce_csrf_checks=True)
    page = client.get("/accounts/login/")
    answer = client.post(
        "/accounts/login/",
        {"username": account["username"], "password": account["password"],
         "csrfmiddlewaretoken": csrf_token(page.content.decode())},
        follow=True,
    )  # fmt: skip
    assert answer.request["PATH_INFO"] == SIGN_IN_PATHS[1]
    done = client.post(
        "/accounts/two-factor/",
        {"otp_token": totp(account["totp_key"]),
         "csrfmiddlewaretoken": csrf_token(answer.content.decode())},
        follow=True,
    )  # fmt: skip
    assert done.status_code == 200
    assert done.request["PATH_INFO"] not in SIGN_IN_PATHS
    assert client.get("/patients/").status_code == 200


def test_the_clinic_is_seeded_once_without_double_booking_anyone() -> None:
    ProtocolFactory()
    prepare.prepare_staff(6)  # two practitioners
    added = prepare.seed_clinic(patients=200)
    # Two practitioners, 10 slots a day, Monday to Saturday, three weeks.
    assert added == {"patients": 200, "bookings": 2 * 10 * 6 * 3}
    assert prepare.seed_clinic(patients=200) == {"patients": 0, "bookings": 0}
    bookings = list(Booking.objects.order_by("starts_at"))
    at_once: dict[datetime, set[int]] = {}
    for booking in bookings:
        at_once.setdefault(booking.starts_at, set()).add(booking.patient_id)
    assert all(len(patients) == 2 for patients in at_once.values())
    assert Patient.objects.count() == 200
    plan = prepare.targets()
    assert plan["today"] == "2026-11-25"
    assert len(plan["session_bookings"]) == 2 * 10 * 6
    assert plan["patients"]
    assert all(re.fullmatch(r"[a-z]{2,3}", term) for term in plan["search_terms"])


STATS = """Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,\
Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,\
80%,90%,95%,98%,99%,99.9%,99.99%,100%
GET,calendar week,120,0,310,350,90,2100,40000,2.0,0.0,310,380,420,450,700,1200,1500,2000,2100,\
2100,2100
POST,sign-in: code,30,0,600,650,200,1900,9000,0.5,0.0,600,700,800,900,1000,1800,1900,1900,1900,\
1900,1900
,Aggregated,150,{failures},300,330,90,2100,30000,2.5,0.0,300,350,400,450,650,1100,1400,1900,\
2100,2100,2100
"""


def test_the_report_fails_on_any_failed_request_and_names_slow_pages(tmp_path: Path) -> None:
    path = tmp_path / "locust_stats.csv"
    path.write_text(STATS.format(failures=0))
    rows = read_stats(path)
    assert rows[0] == Row("calendar week", 120, 0, 2.0, 310, 1200, 2100)
    assert verdict(rows) == []
    # The target is for pages: sign-in is reported, not judged.
    assert slow_pages(rows) == ["calendar week: p95 1200 ms"]
    table = summary_table(rows, label="--workers 2", before="0.1 0.2 0.3", after="1 1 1")
    assert table.splitlines()[-2].startswith("| all pages | 120 | 0 | 2.0 |")
    assert table.splitlines()[-1].startswith("| all requests | 150 | 0 |")
    # The anchor, timed by the runner, is listed first and judged by nothing.
    anchor = anchor_row("anchor, during sign-in and pages", [5.0, 7.0, 4000.0], 2.0)
    assert anchor == Row("anchor, during sign-in and pages", 3, 0, 1.5, 7.0, 4000.0, 4000.0)
    with_anchor = summary_table([*rows, anchor], label="-", before="-", after="-")
    assert with_anchor.splitlines()[4].startswith("| anchor, during sign-in and pages | 3 |")
    assert "| all pages | 120 |" in with_anchor
    assert slow_pages([*rows, anchor]) == ["calendar week: p95 1200 ms"]
    path.write_text(STATS.format(failures=1))
    assert verdict(read_stats(path)) == ["1 of 150 requests failed"]

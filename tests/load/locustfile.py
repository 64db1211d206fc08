"""Thirty members of staff at once: Locust users signed in as the three roles.

Started by tests/load/run.py (`make loadtest`), which prepares the accounts
file named by LOADTEST_ACCOUNTS (tests/load/prepare.py). Each simulated
member of staff takes one account of its role, signs in through the real
pages (password, then a code computed from its authenticator's key), then
opens its role's pages with a pause of LOADTEST_WAIT seconds (default 1 to 5)
between them:

- reception: the calendar's week and day, a patient search typed as two
  requests (two letters, then three), a patient's page, the booking form;
- practitioner: a patient's page, their medical history, a session page;
- manager: the dashboard, the reports, the audit log.

Every user signs in first; the pages start once all LOADTEST_USERS have
(signing in is hashing passwords, which would otherwise crowd the first half
of the run), and the run ends LOADTEST_DURATION seconds after that. Each
request is on a new connection ("Connection: close"), as the reverse proxy in
front of gunicorn in production sends them (nginx's default towards its
upstream).

A request counts as failed when it is not answered 200, or when it lands on
the sign-in pages (a lost session). Statistics are named by page, so a page
opened by two roles is one row.
"""

from __future__ import annotations

import json
import os
import random
from collections import deque
from pathlib import Path
from typing import Any

import gevent
from gevent.event import Event
from locust import HttpUser, between, events, task

from tests.load.signin import SIGN_IN_PATHS, csrf_token, totp


def _wait() -> tuple[float, float]:
    low, _, high = os.environ.get("LOADTEST_WAIT", "1,5").partition(",")
    return float(low), float(high or low)


class Plan:
    """The accounts file, read once per Locust process; accounts handed out
    one per simulated user, by role."""

    def __init__(self, path: Path) -> None:
        data = json.loads(path.read_text())
        self.accounts: dict[str, deque[dict[str, str]]] = {}
        for account in data["accounts"]:
            self.accounts.setdefault(account["role"], deque()).append(account)
        self.patients: list[str] = data["patients"]
        self.session_bookings: list[str] = data["session_bookings"]
        self.search_terms: list[str] = data["search_terms"]
        self.today: str = data["today"]

    def take(self, role: str) -> dict[str, str]:
        try:
            return self.accounts[role].popleft()
        except (KeyError, IndexError):
            raise RuntimeError(f"No {role} account left: prepare more staff") from None


_plan: Plan | None = None
# Released once every user has gone through the sign-in pages.
_everyone_in = Event()
_signed_in = 0


def plan() -> Plan:
    global _plan
    if _plan is None:
        _plan = Plan(Path(os.environ["LOADTEST_ACCOUNTS"]))
    return _plan


class Staff(HttpUser):
    abstract = True
    role = ""
    wait_time = between(*_wait())

    def on_start(self) -> None:
        global _signed_in
        self.account = plan().take(self.role)
        self.client.headers["Connection"] = "close"
        self.sign_in()
        _signed_in += 1  # a failed sign-in counts too: its pages then fail
        if _signed_in == int(os.environ.get("LOADTEST_USERS", "1")):
            _everyone_in.set()
            runner = self.environment.runner
            assert runner is not None
            gevent.spawn_later(float(os.environ.get("LOADTEST_DURATION", "60")), runner.quit)
        _everyone_in.wait()

    def sign_in(self) -> None:
        """The two sign-in pages, as a person goes through them."""
        page = self.client.get("/accounts/login/", name="sign-in page")
        with self.client.post(
            "/accounts/login/",
            data={
                "username": self.account["username"],
                "password": self.account["password"],
                "csrfmiddlewaretoken": csrf_token(page.text),
            },
            name="sign-in: password",
            catch_response=True,
        ) as answer:
            if "/accounts/two-factor/" not in answer.url:
                answer.failure(f"password step ended at {answer.url} ({answer.status_code})")
                return
        with self.client.post(
            "/accounts/two-factor/",
            data={"otp_token": totp(self.account["totp_key"]),
                  "csrfmiddlewaretoken": csrf_token(answer.text)},
            name="sign-in: code",
            catch_response=True,
        ) as done:  # fmt: skip
            if done.status_code != 200 or any(p in done.url for p in SIGN_IN_PATHS):
                done.failure(f"code step ended at {done.url} ({done.status_code})")

    def page(self, url: str, name: str, **kwargs: Any) -> None:
        """GET a page; anything but a 200 outside the sign-in pages fails."""
        with self.client.get(url, name=name, catch_response=True, **kwargs) as answer:
            if answer.status_code == 0:
                answer.failure(f"no answer: {answer.error!r}")
            elif answer.status_code != 200:
                answer.failure(f"answered {answer.status_code}")
            elif any(path in answer.url for path in SIGN_IN_PATHS):
                answer.failure("sent back to sign in")

    def patient(self) -> str:
        return random.choice(plan().patients)


class Reception(Staff):
    role = "reception"
    weight = 1

    @task(3)
    def calendar_week(self) -> None:
        self.page(f"/treatments/calendar/?view=week&date={plan().today}", "calendar week")

    @task(3)
    def calendar_day(self) -> None:
        self.page(f"/treatments/calendar/?view=day&date={plan().today}", "calendar day")

    @task(4)
    def search(self) -> None:
        term = random.choice(plan().search_terms)
        self.page(f"/patients/?q={term[:2]}", "search")
        if len(term) > 2:
            self.page(f"/patients/?q={term}", "search")

    @task(3)
    def patient_page(self) -> None:
        self.page(f"/patients/{self.patient()}/", "patient page")

    @task(2)
    def booking_form(self) -> None:
        self.page(f"/treatments/calendar/bookings/new/?patient={self.patient()}", "booking form")


class Practitioner(Staff):
    role = "practitioner"
    weight = 1

    @task(3)
    def patient_page(self) -> None:
        self.page(f"/patients/{self.patient()}/", "patient page")

    @task(2)
    def history(self) -> None:
        self.page(f"/patients/{self.patient()}/history/", "medical history")

    @task(3)
    def session_page(self) -> None:
        booking = random.choice(plan().session_bookings)
        self.page(f"/treatments/sessions/{booking}/record/", "session page")


class Manager(Staff):
    role = "manager"
    weight = 1

    @task(3)
    def dashboard(self) -> None:
        self.page("/", "dashboard")

    @task(2)
    def reports(self) -> None:
        self.page("/treatments/reports/", "reports")

    @task(2)
    def audit_log(self) -> None:
        self.page("/audit/", "audit log")


@events.quitting.add_listener
def _no_failure_allowed(environment: Any, **_kwargs: Any) -> None:
    # Locust's own rule is the same (exit 1 on any failure); stated here so
    # that a change of default cannot hide one.
    if environment.stats.total.num_failures:
        environment.process_exit_code = 1

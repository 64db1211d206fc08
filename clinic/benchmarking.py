"""What every benchmark command shares: signed-in clients, the anchor, figures.

A benchmark's absolute times depend on the machine's load, so each one also
times a trivial page in the same run (the *anchor*: one `SELECT 1` behind the
whole middleware stack, signed in and signed out) and reports its figures as
ratios to it, beside `/proc/loadavg`. docs/benchmarks.md records both.

The anchor route exists only under the benchmark URLconf
(`clinic.benchmark_urls`), which `benchmark_urls()` switches on for the
length of a run; the product itself has no such page.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from clinic.access import authenticated, public
from clinic.models import User
from clinic.roles import Role

ANCHOR_PATH = "/benchmark-anchor/"
ANCHOR_SIGNED_OUT_PATH = "/benchmark-anchor/public/"


def _select_one(request: HttpRequest) -> HttpResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return HttpResponse("ok", content_type="text/plain")


# Two functions: the access decorators mark the function they are given.
@authenticated
def anchor_view(request: HttpRequest) -> HttpResponse:
    """The signed-in anchor: the whole middleware stack and one `SELECT 1`."""
    return _select_one(request)


@public
def anchor_public_view(request: HttpRequest) -> HttpResponse:
    """The signed-out anchor: the same, with no session to load."""
    return _select_one(request)


@dataclass(frozen=True)
class Timings:
    """Wall-clock times of one request repeated, in milliseconds."""

    samples: tuple[float, ...]
    queries: tuple[int, ...] = ()

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p95(self) -> float:
        ordered = sorted(self.samples)
        return ordered[max(0, round(0.95 * len(ordered)) - 1)]

    @property
    def most(self) -> float:
        return max(self.samples)

    def ratio_to(self, anchor: Timings) -> float:
        """Median over the anchor's median (how many anchors this page costs)."""
        return self.median / anchor.median if anchor.median else float("inf")

    def row(self, label: str, anchor: Timings | None = None) -> str:
        """A Markdown table row: label, median, p95, max (ms), queries, ratio."""
        queries = "/".join(str(q) for q in sorted(set(self.queries))) or "-"
        ratio = f"{self.ratio_to(anchor):.1f}" if anchor is not None else "-"
        return (
            f"| {label} | {self.median:.1f} | {self.p95:.1f} | {self.most:.1f} "
            f"| {queries} | {ratio} |"
        )


TABLE_HEAD = (
    "| page | median ms | p95 ms | max ms | queries | x anchor |\n|---|---|---|---|---|---|"
)


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as /proc/loadavg gives them."""
    try:
        with open("/proc/loadavg") as handle:
            return " ".join(handle.read().split()[:3])
    except OSError:
        return "unknown"


@contextlib.contextmanager
def benchmark_urls() -> Iterator[None]:
    """The clinic's routes plus the anchor, and static files served unhashed
    (no collectstatic needed), for the length of the block."""
    storages = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with override_settings(ROOT_URLCONF="clinic.benchmark_urls", STORAGES=storages):
        yield


def staff_member(username: str, role: Role) -> User:
    """A staff account with a confirmed authenticator, in `role`'s group."""
    user = User.objects.create(username=username, first_name=username.title())
    user.groups.add(Group.objects.get(name=role.value))
    TOTPDevice.objects.create(user=user, name="benchmark", confirmed=True)
    return user


def _client() -> Client:
    """A test client speaking to a host the settings allow."""
    host = next((h for h in settings.ALLOWED_HOSTS if h not in ("*", "")), "localhost")
    return Client(HTTP_HOST=host.lstrip("."))


def signed_in_client(user: User) -> Client:
    """A test client signed in as `user`, its second factor already passed."""
    client = _client()
    client.force_login(user)
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is not None:
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session.save()
    return client


def time_request(
    client: Client,
    url: str,
    *,
    repeat: int,
    warm: int = 2,
    expect: int = 200,
    check: Callable[[bytes], None] | None = None,
) -> Timings:
    """GET `url` `warm` times untimed, then `repeat` times timed (ms, with the
    number of queries each request ran). Raises AssertionError on any other
    status than `expect`, or when `check` does on the body."""
    for _ in range(warm):
        response = client.get(url, secure=True)
        assert response.status_code == expect, f"{url} answered {response.status_code}"
        if check is not None:
            check(response.content)
    samples: list[float] = []
    counts: list[int] = []
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(url, secure=True)
            samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == expect, f"{url} answered {response.status_code}"
        counts.append(len(queries))
    return Timings(samples=tuple(samples), queries=tuple(counts))


def anchors(signed_in: Client, *, repeat: int) -> tuple[Timings, Timings]:
    """The trivial page timed signed in and signed out (call inside
    `benchmark_urls()`): what every figure of the run is divided by."""
    inside = time_request(signed_in, ANCHOR_PATH, repeat=repeat)
    outside = time_request(_client(), ANCHOR_SIGNED_OUT_PATH, repeat=repeat)
    return inside, outside

"""Every page passes axe-core's WCAG 2.2 AA rules, as each role sees it.

The pages are the URL walk's (tests/test_urlwalk.py): every named route a
persona may open by GET, filled in with the walk's sample objects, plus the
states a route alone does not reach: the calendar's day and week, a search
with results, forms sent back with their errors, the 403 and 404 pages. Each
is checked at 1366x768 and at 768x1024, in one browser context per persona
that visits its pages one after the other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from playwright.sync_api import Page, ViewportSize
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from clinic.access import Access
from clinic.models import User
from tests.browser.axe import axe_violations, describe
from tests.browser.conftest import BrowserPage
from tests.conftest import sign_in
from tests.test_urlwalk import (  # noqa: F401 (fixtures: frozen, sample_objects, patient_read_samples)
    ALLOWED_GET_STATUS,
    NOW,
    PATIENT_READS,
    ROUTES,
    SAMPLE_KWARGS,
    SIGNED_IN_GET_STATUS,
    frozen,
    patient_read_samples,
    sample_objects,
)

pytestmark = pytest.mark.browser

SIZES: dict[str, ViewportSize] = {
    "1366x768": {"width": 1366, "height": 768},
    "768x1024": {"width": 768, "height": 1024},
}
PERSONAS = ("anonymous", "receptionist", "practitioner", "manager", "portal")
NewPage = Callable[[str], BrowserPage]


@dataclass(frozen=True)
class Visit:
    """A page to check: its path, the status it answers, and optionally a form
    on it to send empty (browser validation off) so its errors are checked."""

    name: str
    path: str
    status: int = 200
    send_empty: str = ""


def _allowed(access: Access, user: User | None) -> bool:
    return access.kind == "public" if user is None else access.allows(user)


def _routes_for(user: User | None, queries: dict[str, str]) -> list[Visit]:
    """The routes `user` may open by GET that the walk expects to answer 200
    (or do with the query string the walk gives them)."""
    visits = []
    for route in ROUTES:
        if route.name.startswith("admin:") or not _allowed(route.access, user):
            continue  # the admin is Django's own, for the superuser only
        query = queries.get(PATIENT_READS.get(route.name, ("", ""))[1], "")
        expected = ALLOWED_GET_STATUS.get(route.name, 200)
        if user is not None:
            expected = SIGNED_IN_GET_STATUS.get(route.name, expected)
        if expected == 200 or query:
            visits.append(Visit(route.name, route.url + query))
    return visits


def _states_for(persona: str, user: User | None) -> list[Visit]:
    """What the routes alone do not show: views, results, errors."""
    visits = [Visit("404", "/no/such/page/", status=404)]
    if user is None:
        return [*visits, Visit("login, sent empty", reverse("login"), send_empty="main form")]
    refused = next(
        (r for r in ROUTES if r.access.kind == "staff" and not _allowed(r.access, user)), None
    )
    if refused is not None:
        visits.append(Visit(f"{refused.name} refused", refused.url, status=403))
    if persona in ("receptionist", "practitioner", "manager"):
        calendar = reverse("treatments:calendar")
        tomorrow = (NOW + timedelta(days=1)).date().isoformat()
        visits += [
            Visit("calendar, day", f"{calendar}?view=day&date={tomorrow}"),
            Visit("calendar, week", f"{calendar}?view=week&date={tomorrow}"),
        ]
        from patients.models import Patient

        patient = Patient.objects.get(uuid=SAMPLE_KWARGS["patient"])
        visits.append(Visit("patients, found", f"{reverse('patients:list')}?q={patient.last_name}"))
    if persona in ("receptionist", "practitioner"):
        visits += [
            Visit("register, sent empty", reverse("patients:create"), send_empty="main form"),
            Visit(
                "booking, sent empty",
                reverse("treatments:booking_new"),
                send_empty="main form[method=post]",
            ),
        ]
    if persona == "manager":
        visits.append(
            Visit(
                "ingredient, sent empty",
                reverse("treatments:ingredient_create"),
                send_empty="main form[method=post]",
            )
        )
    return visits


# htmx marks an element while its request is out and while the answer is
# swapped in: the parts a page loads after itself (the patient's treatment
# panel and timeline) are checked with it.
_SETTLED = "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')"


def _check(page: Page, visit: Visit, failures: list[str]) -> None:
    page.wait_for_function(_SETTLED)
    for size, viewport in SIZES.items():
        page.set_viewport_size(viewport)
        found = axe_violations(page)
        where = f"{visit.name} ({visit.path}) at {size}"
        failures.extend(describe(where, found))
    page.set_viewport_size(SIZES["1366x768"])


def _send_empty(page: Page, selector: str) -> None:
    """Send the form as it is, past the browser's own checks, so that the
    server's errors are what the page shows."""
    form = page.locator(selector).first
    form.evaluate("(form) => { form.noValidate = true; }")
    with page.expect_navigation():
        form.locator("[type=submit]").last.click()
    page.locator(".invalid-feedback, .alert-danger").first.wait_for()


@pytest.fixture
def persona_user(
    request: pytest.FixtureRequest,
    patient_read_samples: dict[str, str],  # noqa: F811 (the walk's fixture)
) -> User | None:
    from treatments.models import PortalAccount

    name = request.param
    if name == "anonymous":
        return None
    if name == "portal":
        account = PortalAccount.objects.select_related("user")
        return account.get(patient__uuid=SAMPLE_KWARGS["patient"]).user
    user: User = request.getfixturevalue(name)
    return user


@pytest.mark.parametrize("persona_user", PERSONAS, indirect=True)
def test_every_page_passes_wcag_22_aa(
    live_server: Any,
    new_page: NewPage,
    request: pytest.FixtureRequest,
    persona_user: User | None,
    patient_read_samples: dict[str, str],  # noqa: F811 (the walk's fixture)
) -> None:
    persona = request.node.callspec.params["persona_user"]
    started = time.perf_counter()
    tab = new_page("desktop")
    page = tab.page
    context = page.context
    base = live_server.url
    if persona_user is not None:
        client = sign_in(Client(), persona_user)
        context.add_cookies(
            [{"name": k, "value": v.value, "url": base} for k, v in client.cookies.items()]
        )
    failures: list[str] = []
    checked = 0
    visits = _routes_for(persona_user, patient_read_samples) + _states_for(persona, persona_user)
    for visit in visits:
        where = f"{visit.name} ({visit.path})"
        # Files (PDFs, photos, CSV) and htmx fragments are not pages: ask first
        # (a photo opened in the browser's own viewer breaks the policy itself).
        answer = context.request.get(base + visit.path, max_redirects=0)
        if 300 <= answer.status < 400:
            continue  # somewhere else, visited as its own route
        if answer.status != visit.status:
            failures.append(f"{where}: answered {answer.status}, expected {visit.status}")
            continue
        if "text/html" not in answer.headers.get("content-type", ""):
            continue
        if answer.text().lstrip()[:15].lower() != "<!doctype html>":
            continue  # checked inside the page that loads it
        page.goto(base + visit.path)
        if visit.send_empty:
            _send_empty(page, visit.send_empty)
        _check(page, visit, failures)
        checked += 1
    elapsed = time.perf_counter() - started
    print(f"\n{persona}: {checked} pages, each at two sizes, in {elapsed:.1f} s")
    assert not failures, f"{len(failures)} lines of WCAG 2.2 AA violations:\n" + "\n".join(failures)
    # The browser reports each 403, 404 and form sent back (400) as an error.
    refusals = [base + v.path for v in visits if v.status != 200 or v.send_empty]
    assert tab.errors_except(*refusals) == []
    assert checked > 3


def test_the_check_reports_what_breaks_the_rules(live_server: Any, new_page: NewPage) -> None:
    """The harness itself: under the clinic's Content Security Policy, axe runs
    and names a picture without a text alternative and grey text on grey."""
    tab = new_page("desktop")
    page = tab.page
    page.goto(live_server.url + reverse("login"))
    assert axe_violations(page) == []
    page.locator("main h1").evaluate(
        """(h1) => {
          h1.insertAdjacentHTML("afterend", '<img src="/static/favicon.svg">');
          h1.style.color = "#bbbbbb";
        }"""
    )
    found = axe_violations(page)
    assert sorted(v["id"] for v in found) == ["color-contrast", "image-alt"]
    picture = next(v for v in found if v["id"] == "image-alt")
    assert [node["target"].split()[-1].split(">")[-1].strip() for node in picture["nodes"]] == [
        "img"
    ]
    report = "\n".join(describe("login", found))
    assert "login: image-alt (critical): Images must have alternative text" in report
    assert "https://dequeuniversity.com/rules/axe/4.14/image-alt" in report
    assert tab.errors == []  # no script of axe's was refused by the policy


def test_the_booking_status_badge_reads_in_every_status(
    live_server: Any, new_page: NewPage, receptionist: User
) -> None:
    """The walk sees a booked booking only: each status's badge, white on its
    colour, reads at 4.5:1 or more on the booking's page."""
    from treatments.models import Booking, BookingStatus

    tab = new_page("desktop")
    page = tab.page
    client = sign_in(Client(), receptionist)
    page.context.add_cookies(
        [{"name": k, "value": v.value, "url": live_server.url} for k, v in client.cookies.items()]
    )
    booking = Booking.objects.filter(uuid=SAMPLE_KWARGS["booking"])
    failures = []
    for status in BookingStatus:
        booking.update(status=status, cancel_reason="Unwell" if status == "cancelled" else "")
        page.goto(live_server.url + booking.get().get_absolute_url())
        assert page.get_by_test_id("booking-status").inner_text() == status.label
        found = axe_violations(
            page, within="[data-testid=booking-status]", rules=("color-contrast",)
        )
        failures += describe(f"the {status.label} badge", found)
    assert failures == [], "\n".join(failures)


# --- The keyboard alone -------------------------------------------------------------------

# What has focus: enough to find it, and whether a person can see it: a ring
# drawn by an outline or a box-shadow at least 2 px wide and at least half
# opaque (Bootstrap's own, a quarter-opaque blue, is not), inside the window.
_FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body || el === document.documentElement) return null;
  const style = getComputedStyle(el);
  const opaque = (colour) => {
    const parts = colour.match(/rgba?\\(([^)]*)\\)/);
    if (!parts) return false;
    const values = parts[1].split(",").map(Number);
    return values.length < 4 || values[3] >= 0.5;
  };
  const outlined = style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2
    && opaque(style.outlineColor);
  const shadowed = [...style.boxShadow.matchAll(
    /(rgba?\\([^)]*\\)) (-?[\\d.]+)px (-?[\\d.]+)px (-?[\\d.]+)px (-?[\\d.]+)px/g
  )].some((m) => opaque(m[1]) && parseFloat(m[5]) >= 2);
  const box = el.getBoundingClientRect();
  const label = el.getAttribute("aria-label") || (el.labels && el.labels[0]
    ? el.labels[0].innerText : el.innerText) || el.value || "";
  return {
    tag: el.tagName.toLowerCase(),
    name: el.getAttribute("name") || "",
    testid: el.dataset.testid || "",
    label: label.replace(/\\s+/g, " ").trim().slice(0, 80),
    in_main: !!el.closest("main"),
    shown: (outlined || shadowed) && box.width > 0 && box.height > 0 && box.bottom > 0
      && box.top < innerHeight && box.right > 0 && box.left < innerWidth,
  };
}"""


def _focused(page: Page) -> dict[str, str | bool] | None:
    focused: dict[str, str | bool] | None = page.evaluate(_FOCUSED)
    return focused


def _tab_to(page: Page, *, back: bool = False, limit: int = 60, **wanted: str) -> None:
    """Press Tab (Shift+Tab with `back`) until the focused element has every
    attribute of `wanted` (name, testid, label); each stop on the way must show
    its focus."""
    key = "Shift+Tab" if back else "Tab"
    seen = []
    for _ in range(limit):
        page.keyboard.press(key)
        focused = _focused(page)
        if focused is None:
            seen.append("(nothing)")
            continue
        where = f"{focused['tag']} {focused['name'] or focused['testid']} {focused['label']!r}"
        if not focused["shown"]:
            # A ring fades in (Bootstrap's transitions) and the page may still be
            # scrolling to the element (smoothly): give both a moment.
            try:
                page.wait_for_function(f"() => ({_FOCUSED})().shown", timeout=2_000)
            except PlaywrightTimeoutError:
                message = f"focus on {where} cannot be seen at {page.url}: {focused}"
                raise AssertionError(message) from None
        seen.append(where)
        if all(focused[attr] == value for attr, value in wanted.items()):
            return
    raise AssertionError(f"{key} never reached {wanted} at {page.url}; went through: {seen}")


def test_reception_registers_a_patient_and_books_a_session_with_the_keyboard_alone(
    live_server: Any, new_page: NewPage, receptionist: User, practitioner: User
) -> None:
    from datetime import time as clock_time

    from django_otp.plugins.otp_totp.models import TOTPDevice

    from clinic.localtime import local_to_utc
    from tests.conftest import totp_code
    from tests.factories import PASSWORD, ProtocolFactory
    from treatments.models import Booking, Room, WorkingHours

    for weekday in range(7):
        WorkingHours.objects.create(
            practitioner=practitioner, weekday=weekday, starts=clock_time(8), ends=clock_time(19)
        )
    Room.objects.create(name="Willow room")
    ProtocolFactory(name="Hydrating face")
    tab = new_page("desktop")
    page = tab.page
    keyboard = page.keyboard
    page.set_viewport_size(SIZES["1366x768"])
    base = live_server.url
    failures: list[str] = []

    # The sign-in page puts the cursor in the username; the password follows.
    page.goto(base + reverse("login"))
    focused = _focused(page)
    assert focused is not None
    assert focused["name"] == "username"
    keyboard.type(receptionist.username)
    _tab_to(page, name="password", limit=1)
    keyboard.type(PASSWORD)
    with page.expect_navigation():
        keyboard.press("Enter")
    _tab_to(page, name="otp_token")
    keyboard.type(totp_code(TOTPDevice.objects.get(user=receptionist)))
    with page.expect_navigation():
        keyboard.press("Enter")

    # The dashboard: the first Tab shows the skip link, which passes the
    # navigation by; then on to the registration form.
    _tab_to(page, testid="skip-link", limit=1)
    keyboard.press("Enter")
    keyboard.press("Tab")
    focused = _focused(page)
    assert focused is not None
    assert focused["in_main"], f"after the skip link, focus is on {focused}"
    _tab_to(page, label="Register a patient")
    with page.expect_navigation():
        keyboard.press("Enter")
    _tab_to(page, name="first_name")
    keyboard.type("Nadia")
    _tab_to(page, name="last_name", limit=1)
    keyboard.type("Okafor")
    _tab_to(page, name="date_of_birth", limit=1)
    # The clinic's format whatever the browser's language: dd/mm/yyyy.
    keyboard.type("03/03/1985")
    _tab_to(page, name="email", limit=1)
    keyboard.type("nadia.okafor@example.org")
    _tab_to(page, name="phone", limit=1)
    keyboard.type("07911 123456")
    _tab_to(page, name="consents_to_messages")
    keyboard.press("Space")
    # Back up with Shift+Tab to check a field, then on to the button.
    _tab_to(page, name="date_of_birth", back=True)
    assert page.get_by_label("Date of birth").input_value() == "03/03/1985"
    _tab_to(page, testid="save-patient")
    with page.expect_navigation():
        keyboard.press("Enter")
    failures.extend(describe("the new patient's page", axe_violations(page)))

    # The calendar from the main navigation, then a new booking.
    _tab_to(page, label="Calendar")
    with page.expect_navigation():
        keyboard.press("Enter")
    _tab_to(page, label="New booking")
    with page.expect_navigation():
        keyboard.press("Enter")
    _tab_to(page, testid="patient-search")
    keyboard.type("Okafor")
    choice = page.get_by_test_id("patient-choice")
    choice.wait_for()
    failures.extend(describe("the booking form with a patient found", axe_violations(page)))
    _tab_to(page, testid="patient-choice", limit=1)
    keyboard.press("Space")
    assert choice.is_checked()
    _tab_to(page, name="protocol")
    keyboard.type("Hydrating")  # a closed list jumps to the option typed
    _tab_to(page, name="practitioner")
    keyboard.type("Priya")
    _tab_to(page, name="room")
    keyboard.type("Willow")
    _tab_to(page, name="date")
    day = date(NOW.year, 12, 12)  # a Saturday 18 days on
    keyboard.type(day.strftime("%d/%m/%Y"))  # the clinic's format, whatever the browser's
    _tab_to(page, name="start_time", limit=1)
    keyboard.type("10:30")  # the 24-hour clock
    _tab_to(page, testid="book")
    with page.expect_navigation():
        keyboard.press("Enter")

    booking = Booking.objects.get(patient__last_name="Okafor")
    assert (booking.practitioner, booking.room.name, booking.protocol.name) == (
        practitioner,
        "Willow room",
        "Hydrating face",
    )
    assert booking.starts_at == local_to_utc(day, clock_time(10, 30))
    assert page.get_by_test_id("booking-status").inner_text() == "Booked"
    failures.extend(describe("the new booking's page", axe_violations(page)))
    assert not failures, "\n".join(failures)
    assert tab.errors == []

"""Error pages speak to whoever is reading them and lead somewhere useful:
patients on the portal and emailed links to the portal's sign-in, staff to
the dashboard; a refused upload offers the way back to its page."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client, RequestFactory
from django.urls import reverse

from clinic.models import User
from clinic.views import server_error
from tests.conftest import sign_in

pytestmark = pytest.mark.django_db

PORTAL_SIGN_IN = "/treatments/portal/sign-in/"
DOWNLOAD_LINK = "/treatments/d/a-link-token/"
LOGIN = "/accounts/login/"


def buttons(page: str) -> list[str]:
    """The addresses the page's buttons lead to."""
    return re.findall(r'<a class="btn[^"]*" href="([^"]+)"', page)


def test_the_routes_the_patients_pages_are_found_by_are_where_the_tests_look() -> None:
    assert reverse("treatments:portal_request") == PORTAL_SIGN_IN
    assert reverse("treatments:link_open", kwargs={"token": "a-link-token"}) == DOWNLOAD_LINK


# --- An expired form (CSRF) -----------------------------------------------------------


@pytest.mark.parametrize("path", [PORTAL_SIGN_IN, DOWNLOAD_LINK, "/treatments/portal/"])
def test_an_expired_form_on_a_patients_page_speaks_to_the_patient(path: str) -> None:
    response = Client(enforce_csrf_checks=True).post(path, {"email": "pat@example.org"})
    assert response.status_code == 403
    page = response.content.decode()
    assert "This page was open too long. Go back, reload it and try again." in page
    assert buttons(page) == [PORTAL_SIGN_IN]
    assert "Go to the portal sign-in page" in page
    assert "dashboard" not in page
    assert "sign in again" not in page


def test_an_expired_form_on_a_staff_page_keeps_the_staff_words() -> None:
    response = Client(enforce_csrf_checks=True).post(LOGIN, {"username": "x", "password": "y"})
    assert response.status_code == 403
    page = response.content.decode()
    assert "This form has expired" in page
    assert buttons(page) == [reverse("home")]
    assert "Go to the dashboard" in page


def test_staff_on_a_patients_page_are_still_spoken_to_as_staff(practitioner: User) -> None:
    client = sign_in(Client(enforce_csrf_checks=True), practitioner)
    page = client.post(PORTAL_SIGN_IN, {"email": "pat@example.org"}).content.decode()
    assert "This form has expired" in page
    assert buttons(page) == [reverse("home")]


def test_a_missing_portal_page_leads_to_the_portal_sign_in() -> None:
    response = Client().get("/treatments/portal/no-such-page/")
    assert response.status_code == 404
    page = response.content.decode()
    assert buttons(page) == [PORTAL_SIGN_IN]
    assert "Check the link in the clinic's email, or sign in to the portal." in page
    assert "dashboard" not in page


def test_the_sentence_leads_and_the_status_code_is_small() -> None:
    page = Client(enforce_csrf_checks=True).post(PORTAL_SIGN_IN, {}).content.decode()
    assert page.index("<h1") < page.index("403")
    assert re.search(r'data-testid="error-code">Error 403\b', page)
    assert "display-5" not in page


# --- Too much sent (413) ----------------------------------------------------------------


def _too_much(path: str, settings: Any, **headers: str):
    settings.REQUEST_BODY_MAX_BYTES = 1024
    return Client().generic(
        "POST", path, b"x" * 4096, content_type="application/octet-stream", **headers
    )


def test_a_refused_upload_offers_to_go_back_to_the_page_it_came_from(settings: Any) -> None:
    form_page = "http://testserver/patients/new/"
    response = _too_much("/patients/new/", settings, HTTP_REFERER=form_page)
    assert response.status_code == 413
    page = response.content.decode()
    assert buttons(page) == [form_page, "/"]
    assert ">Go back</a>" in page
    # The sentence first; the number small, beside the reference.
    assert page.index("Too much was sent at once") < page.index("413")
    assert re.search(r'data-testid="error-code">Error 413 · Reference: <code>\w+</code>', page)
    assert "display-5" not in page


@pytest.mark.parametrize(
    "referer",
    [
        "https://elsewhere.example/a-form/",
        "javascript:alert(1)",
        "//elsewhere.example/",
        "",
    ],
)
def test_go_back_never_leads_off_the_site(settings: Any, referer: str) -> None:
    response = _too_much("/patients/new/", settings, HTTP_REFERER=referer)
    assert response.status_code == 413
    page = response.content.decode()
    assert buttons(page) == ["/"]
    assert ">Go back</a>" not in page


def test_a_refused_post_on_a_patients_page_leads_to_the_portal(settings: Any) -> None:
    back = f"http://testserver{DOWNLOAD_LINK}"
    response = _too_much(DOWNLOAD_LINK, settings, HTTP_REFERER=back)
    assert response.status_code == 413
    page = response.content.decode()
    assert buttons(page) == [back, PORTAL_SIGN_IN]
    assert "dashboard" not in page


# --- Something went wrong (500) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "button", "words"),
    [
        (DOWNLOAD_LINK, PORTAL_SIGN_IN, "call the clinic"),
        ("/patients/", "/", "tell your clinic manager"),
    ],
)
def test_the_500_page_speaks_to_whoever_is_on_the_page(path: str, button: str, words: str) -> None:
    response = server_error(RequestFactory().get(path))
    assert response.status_code == 500
    page = response.content.decode()
    assert words in page
    assert buttons(page) == [button]
    assert page.index("<h1") < page.index("500")

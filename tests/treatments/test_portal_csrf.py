"""A portal sign-in link signs in only from its own page's button: the GET
shows the button and signs nobody in, and a post forged by another site
(no CSRF token) is refused without signing anyone in or using the link up,
and without writing the link's token to the log."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from django.contrib.auth import SESSION_KEY
from django.core import mail
from django.test import Client
from django.urls import reverse

from clinic.models import User
from tests.conftest import sign_in
from tests.factories import PatientFactory
from treatments.models import PortalAccount, PortalLoginToken
from treatments.services.portal import portal_invite

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_staff_two_factor(settings: Any) -> None:
    settings.REQUIRE_STAFF_2FA = False


@pytest.fixture
def account(practitioner: User) -> PortalAccount:
    return portal_invite(patient=PatientFactory(), invited_by=practitioner)


def _link(account: PortalAccount) -> tuple[str, str]:
    match = re.search(r"/treatments/portal/sign-in/([A-Za-z0-9_-]+)/", mail.outbox[-1].body)
    assert match
    token = match.group(1)
    return token, reverse("treatments:portal_login", kwargs={"token": token})


def test_opening_the_link_shows_a_button_and_signs_nobody_in(account: PortalAccount) -> None:
    _token, url = _link(account)
    browser = Client(enforce_csrf_checks=True)
    page = browser.get(url)
    assert page.status_code == 200
    body = page.content.decode()
    assert 'data-testid="portal-sign-in"' in body
    assert 'name="csrfmiddlewaretoken"' in body
    assert SESSION_KEY not in browser.session
    assert PortalLoginToken.objects.get(account=account).used_at is None


def test_a_forged_cross_site_post_is_refused_and_signs_nobody_in(
    account: PortalAccount, caplog: pytest.LogCaptureFixture
) -> None:
    token, url = _link(account)
    browser = Client(enforce_csrf_checks=True)
    with caplog.at_level(logging.WARNING):
        response = browser.post(url, HTTP_ORIGIN="https://attacker.example")
    assert response.status_code == 403
    assert SESSION_KEY not in browser.session
    assert PortalLoginToken.objects.get(account=account).used_at is None
    response = browser.get(reverse("treatments:portal_home"))
    assert response.status_code == 302  # nobody signed in: sent to sign in
    assert response["Location"] == f"{reverse('login')}?next={reverse('treatments:portal_home')}"
    assert caplog.records, "the refusal is logged"
    assert token not in caplog.text
    assert "[token]" in caplog.text


def test_a_forged_post_leaves_a_signed_in_staff_browser_as_it_was(
    account: PortalAccount, receptionist: User
) -> None:
    _token, url = _link(account)
    browser = sign_in(Client(enforce_csrf_checks=True), receptionist)
    assert browser.post(url).status_code == 403
    assert browser.session[SESSION_KEY] == str(receptionist.pk)


def test_the_button_on_the_page_signs_in_once(account: PortalAccount) -> None:
    _token, url = _link(account)
    browser = Client(enforce_csrf_checks=True)
    page = browser.get(url).content.decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert csrf
    response = browser.post(url, {"csrfmiddlewaretoken": csrf.group(1)})
    assert response.status_code == 302
    assert response["Location"] == reverse("treatments:portal_home")
    assert browser.session[SESSION_KEY] == str(account.user.pk)
    assert PortalLoginToken.objects.get(account=account).used_at is not None

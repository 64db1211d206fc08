"""Production configuration: Django's deploy checks, error pages without details."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import include, path

from clinic.access import public

BASE_DIR = Path(settings.BASE_DIR)

PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "clinic.settings",
    "DEBUG": "False",
    "HTTPS": "True",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "clinic.example.org",
    "REQUIRE_STAFF_2FA": "True",
}


def production_env() -> dict[str, str]:
    """A production process's environment: nothing inherited from the test run
    but the path and the service URLs."""
    keep = ("PATH", "HOME", "DATABASE_URL", "REDIS_URL")
    return {**{k: os.environ[k] for k in keep if k in os.environ}, **PRODUCTION_ENV}


def test_check_deploy_passes_with_production_settings() -> None:
    env = production_env()
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_settings_are_strict() -> None:
    code = (
        "from django.conf import settings as s;"
        "print(s.SESSION_COOKIE_NAME, s.CSRF_COOKIE_NAME, s.SESSION_COOKIE_SECURE,"
        " s.SECURE_HSTS_SECONDS, s.SECURE_SSL_REDIRECT, s.DEBUG, s.PASSWORD_HASHERS[0])"
    )
    env = production_env()
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert result.stdout.split() == [
        "__Host-sessionid", "__Host-csrftoken", "True", "31536000", "True", "False",
        "django.contrib.auth.hashers.Argon2PasswordHasher",
    ]  # fmt: skip


@public
def _boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("SENTINEL_SECRET_DETAIL")


urlpatterns = [path("boom/", _boom), path("", include("clinic.urls"))]
handler500 = "clinic.views.server_error"


@pytest.mark.django_db
@override_settings(ROOT_URLCONF=__name__, DEBUG=False)
def test_a_server_error_shows_the_styled_page_without_details() -> None:
    client = Client(raise_request_exception=False)
    response = client.get("/boom/")
    body = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong on our side" in body
    assert "SENTINEL_SECRET_DETAIL" not in body
    assert "Traceback" not in body
    assert response["X-Request-ID"] in body  # the reference staff can quote


@pytest.mark.django_db
def test_an_unknown_url_shows_the_styled_404(client: Client) -> None:
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    body = response.content.decode()
    assert "This page does not exist" in body
    assert "vendor/bootstrap/css/bootstrap.min.css" in body


@pytest.mark.django_db
def test_a_form_posted_without_its_csrf_token_gets_a_clear_403() -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.post("/accounts/login/", {"username": "x", "password": "y"})
    assert response.status_code == 403
    assert "This form has expired" in response.content.decode()

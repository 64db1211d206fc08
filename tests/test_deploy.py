"""Production configuration: Django's deploy checks, error pages without details."""

from __future__ import annotations

import ipaddress
import os
import re
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


# --- The edge: published ports, trusted proxies, request limits, links ------------------


def _compose_ports(text: str) -> list[str]:
    """Every published port entry of docker-compose.yml (short syntax, or the
    host_ip/published pair of the long syntax)."""
    entries: list[str] = []
    indent: int | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        depth = len(line) - len(line.lstrip())
        if stripped == "ports:":
            indent = depth
            continue
        if indent is not None and depth <= indent:
            indent = None
        if indent is not None and stripped.startswith("- "):
            entries.append(stripped[2:].strip().strip("\"'"))
        elif indent is not None:
            entries[-1] += " " + stripped
    return entries


def test_compose_publishes_the_app_to_this_host_only() -> None:
    ports = _compose_ports((BASE_DIR / "docker-compose.yml").read_text())
    assert ports, "web must be published for the reverse proxy"
    for entry in ports:
        if "published:" in entry:
            host = re.search(r"host_ip:\s*([^\s,}]+)", entry)
            assert host is not None, f"{entry}: published on all interfaces"
            assert ipaddress.ip_address(host.group(1).strip("\"'[]")).is_loopback, entry
            continue
        parts = entry.rsplit(":", 2)
        assert len(parts) == 3, f"{entry}: published on all interfaces"
        assert ipaddress.ip_address(parts[0].strip("[]")).is_loopback, f"{entry}: not loopback"


def test_compose_trusts_forwarded_headers_from_the_proxys_gateway_only() -> None:
    text = (BASE_DIR / "docker-compose.yml").read_text()
    trusted = re.search(r"TRUSTED_PROXIES: \$\{TRUSTED_PROXIES:-([^}]*)\}", text)
    subnet = re.search(r"- subnet: (\S+)", text)
    assert trusted
    assert subnet
    gateway = next(ipaddress.ip_network(subnet.group(1)).hosts())
    assert trusted.group(1).split(",") == [str(gateway)]
    assert "TRUST_X_FORWARDED_PROTO" not in text
    assert "TRUSTED_PROXY_COUNT" not in text


# gunicorn's request limits: tests/test_gunicorn_conf.py.


def _site_url_of_make_run(port: str, **env: str) -> str:
    """SITE_URL as `make run PORT=...` exports it to the clinic's processes.

    A dry run (-n) still executes the line that starts the services, since it
    calls $(MAKE): there the services runner is replaced by `printenv`, so it
    prints what it would have been given and starts nothing."""
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}  # noqa: S108
    result = subprocess.run(
        ["make", "-n", "run", f"PORT={port}", "SERVICES=printenv SITE_URL #", "MAKE=true"],
        cwd=BASE_DIR, env={**base, **env}, capture_output=True, text=True, timeout=60,
        check=True,
    )  # fmt: skip
    return result.stdout.strip().splitlines()[-1]


def test_make_run_on_another_port_emails_links_to_that_port() -> None:
    assert _site_url_of_make_run("8202") == "http://127.0.0.1:8202"
    # A SITE_URL set by the user wins.
    assert _site_url_of_make_run("8202", SITE_URL="https://clinic.example.org") == (
        "https://clinic.example.org"
    )


def test_the_image_carries_every_front_end_package_the_pages_serve() -> None:
    """The production image copies node_modules package by package from its
    build stage: a package the settings serve but the Dockerfile leaves out
    (the reports' chart library once) is missing only in production."""
    dockerfile = (settings.BASE_DIR / "Dockerfile").read_text()
    node_modules = settings.BASE_DIR / "node_modules"
    served = [
        Path(source).relative_to(node_modules).parts[0]
        for _prefix, source in (d for d in settings.STATICFILES_DIRS if isinstance(d, tuple))
        if Path(source).is_relative_to(node_modules)
    ]
    assert served, "the settings serve no front-end package"
    for package in served:
        line = f"COPY --from=node /build/node_modules/{package} node_modules/{package}"
        assert line in dockerfile, package

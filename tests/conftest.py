"""Shared fixtures: the named personas, signed-in clients, time helpers."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_django
import time_machine
from django.conf import settings
from django.test import Client, override_settings
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from clinic.dbroles import connected_as_owner
from clinic.models import User
from clinic.roles import Role
from tests.dbroles import role_drop, roles_prepare
from tests.factories import TOTPDeviceFactory, UserFactory

PERSONAS = ("receptionist", "practitioner", "manager")


@pytest.fixture(scope="session")
def django_db_setup(
    request: pytest.FixtureRequest,
    django_test_environment: None,
    django_db_blocker: pytest_django.DjangoDbBlocker,
    django_db_modify_db_settings: None,
) -> Iterator[None]:
    """pytest-django's test database, made and migrated by the owner role; the
    tests then connect as the application role, which owns nothing, as the
    clinic does (clinic/dbroles.py)."""
    from django.test.utils import setup_databases, teardown_databases

    verbosity = request.config.option.verbose
    with django_db_blocker.unblock():
        made_role = roles_prepare()
        with connected_as_owner():
            config = setup_databases(verbosity=verbosity, interactive=False)
        _moved_clock_check(request)
    yield
    with django_db_blocker.unblock():
        with connected_as_owner():
            teardown_databases(config, verbosity=verbosity)
        if made_role:
            with connected_as_owner():
                role_drop(made_role)


def _moved_clock_check(request: pytest.FixtureRequest) -> None:
    """Under `python -m tests.clock_ahead` (make test-clock-ahead): say what
    Python and the test database read as now, and stop when either is not
    the moved clock."""
    from datetime import UTC, timedelta

    from django.db import connection
    from django.utils import timezone

    asked = os.environ.get("CLINIC_CLOCK_AT")
    if not asked:
        return
    expected = datetime.fromtimestamp(int(asked), UTC)
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        database_now = cursor.fetchone()[0]
    python_now = timezone.now()
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(
                f"[clock] moved to {timezone.localtime(expected):%Y-%m-%d %H:%M %Z}: Python reads "
                f"{timezone.localtime(python_now):%Y-%m-%d %H:%M:%S %Z}, PostgreSQL reads "
                f"{timezone.localtime(database_now):%Y-%m-%d %H:%M:%S %Z}"
            )
    # The runner set the clock moments before the session started.
    for who, now in (("Python", python_now), ("PostgreSQL", database_now)):
        if not timedelta(0) <= now - expected < timedelta(minutes=10):
            pytest.exit(f"{who} reads {now}, not the moved clock {expected}", returncode=3)


def frozen_at(moment: datetime, *, tick: bool = False) -> Any:
    """An autouse fixture that sets the clock to `moment` (aware) for each
    test of the module that assigns it: `frozen = frozen_at(NOW)`; held there,
    or ticking on from there with `tick`. Tests travel from there as they
    need; nothing reads the wall clock."""

    @pytest.fixture(autouse=True)
    def frozen() -> Iterator[None]:
        with time_machine.travel(moment, tick=tick):
            yield

    return frozen


def media_in_tmp() -> Any:
    """An autouse fixture that keeps the files each test of the module
    writes (photographs, PDFs, exports) in the test's own tmp_path, yielded:
    `media_root = media_in_tmp()`."""

    @pytest.fixture(autouse=True)
    def media_root(tmp_path: Path) -> Iterator[Path]:
        with override_settings(
            STORAGES={
                **settings.STORAGES,
                "default": {
                    "BACKEND": "django.core.files.storage.FileSystemStorage",
                    "OPTIONS": {"location": str(tmp_path)},
                },
            }
        ):
            yield tmp_path

    return media_root


def totp_code(device: TOTPDevice, at: float | None = None) -> str:
    """The code the staff member's authenticator app would show now."""
    generator = TOTP(device.bin_key, device.step, device.t0, device.digits)
    generator.time = time.time() if at is None else at
    return f"{generator.token():0{device.digits}d}"


def sign_in(client: Client, user: User) -> Client:
    """Sign `user` in, with the two-factor step done, as a browser would be."""
    client.force_login(user)
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is not None:
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session.save()
    return client


@pytest.fixture
def make_staff(db: None) -> Callable[..., User]:
    def make(username: str, *roles: Role, two_factor: bool = True, **extra: object) -> User:
        user = UserFactory(username=username, roles=roles, **extra)
        if two_factor:
            TOTPDeviceFactory(user=user)
        return user

    return make


@pytest.fixture
def receptionist(make_staff: Callable[..., User]) -> User:
    return make_staff("reception", Role.RECEPTIONIST, first_name="Rosa")


@pytest.fixture
def practitioner(make_staff: Callable[..., User]) -> User:
    return make_staff("practitioner", Role.PRACTITIONER, first_name="Priya")


@pytest.fixture
def manager(make_staff: Callable[..., User]) -> User:
    return make_staff("manager", Role.MANAGER, first_name="Max")


@pytest.fixture
def superuser(make_staff: Callable[..., User]) -> User:
    return make_staff("root", Role.MANAGER, is_superuser=True, is_staff=True)


@pytest.fixture
def persona(request: pytest.FixtureRequest) -> User:
    """Indirect parametrisation by persona name."""
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="session")
def _counters_redis() -> Any:
    import redis
    from django.conf import settings

    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1)


@pytest.fixture(autouse=True)
def _no_request_counts_from_earlier_tests(_counters_redis: Any) -> None:
    """Request counters (clinic/throttle.py) live in Redis and outlast a test:
    each test starts with none. Only those keys go: Celery shares the database."""
    import redis
    from django.core.cache import cache

    from clinic.throttle import KEY_PREFIX

    try:
        keys = list(_counters_redis.scan_iter(match=cache.make_key(f"{KEY_PREFIX}:*"), count=1000))
        if keys:
            _counters_redis.delete(*keys)
    except redis.RedisError:
        pass  # a test that runs without Redis counts nothing


def deliver_sign_in_mail() -> int:
    """Do the worker's part for every password-reset or portal sign-in email
    owed (clinic/sign_in_mail.py), as the queued tasks would; how many rows."""
    from clinic.models import SignInMailRequest
    from clinic.sign_in_mail import sign_in_mail_send

    handled = 0
    for pk in SignInMailRequest.objects.order_by("pk").values_list("pk", flat=True):
        handled += sign_in_mail_send(request_id=pk)
    return handled


# The clinic's date and time fields (clinic/widgets.py) for the forms' fuzz tests.
def _register_clinic_date_fields() -> None:
    from hypothesis import strategies as st
    from hypothesis.extra.django import register_field_strategy

    from clinic.widgets import BirthDateField, ClockField, DayField, DayTimeField

    register_field_strategy(DayField, st.dates())
    register_field_strategy(BirthDateField, st.dates())
    register_field_strategy(ClockField, st.times())
    register_field_strategy(DayTimeField, st.datetimes())


_register_clinic_date_fields()

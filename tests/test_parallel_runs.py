"""The suite in several processes (pytest-xdist, `make test`): each keeps its
own test database and Redis database, and the tests hash passwords cheaply."""

from __future__ import annotations

import os

import pytest
from django.conf import settings
from django.db import connection

from tests.workers import redis_url_of_worker


@pytest.mark.parametrize(
    ("url", "worker", "expected"),
    [
        ("redis://127.0.0.1:6379/12", "gw0", "redis://127.0.0.1:6379/12"),
        ("redis://127.0.0.1:6379/12", "gw1", "redis://127.0.0.1:6379/13"),
        ("redis://127.0.0.1:41234", "gw1", "redis://127.0.0.1:41234/1"),
        ("redis://127.0.0.1:6379/15", "gw1", "redis://127.0.0.1:6379/0"),
        (
            "redis://:secret@redis:6379/2?socket_timeout=1",
            "gw3",
            "redis://:secret@redis:6379/5?socket_timeout=1",
        ),
        ("unix:///run/redis.sock?db=3", "gw1", "unix:/run/redis.sock?db=4"),
    ],
)
def test_each_worker_after_the_first_takes_the_next_redis_database(
    url: str, worker: str, expected: str
) -> None:
    assert redis_url_of_worker(url, worker) == expected


@pytest.mark.django_db
def test_this_process_uses_one_redis_database_throughout_and_its_own_test_database() -> None:
    """The cache, the broker and the processes the tests start (through the
    environment) all use the one Redis database of this worker."""
    assert os.environ["REDIS_URL"] == settings.REDIS_URL
    assert settings.CACHES["default"]["LOCATION"] == settings.REDIS_URL
    assert settings.CELERY_BROKER_URL == settings.REDIS_URL
    if worker := os.environ.get("PYTEST_XDIST_WORKER"):
        assert os.environ["CLINIC_TEST_REDIS_WORKER"] == worker
        assert connection.settings_dict["NAME"].endswith(f"_{worker}")


def test_the_suite_hashes_with_argon2id_at_its_least_cost() -> None:
    from django.contrib.auth.hashers import get_hasher

    hasher = get_hasher()
    assert hasher.algorithm == "argon2"
    assert (hasher.time_cost, hasher.memory_cost, hasher.parallelism) == (1, 8, 1)

"""Test settings: production settings, minus what a test client over plain http needs.

The production HTTPS settings are checked separately, by running
`manage.py check --deploy` with production environment variables.
"""

import os

from tests.workers import redis_url_of_worker

# pytest-xdist runs the suite in several processes (make test: two), and
# pytest-django gives each its own test database; each gets its own Redis
# database too (the next numbers after REDIS_URL's), so that one process's
# cache, request counters and Celery queues are not another's. Set before
# the clinic's settings read it, and in the environment, which the processes
# the tests start (Celery workers, manage.py) inherit: they read it as it is.
if (_worker := os.environ.get("PYTEST_XDIST_WORKER", "")) and os.environ.get(
    "CLINIC_TEST_REDIS_WORKER"
) != _worker:
    if _redis_url := os.environ.get("REDIS_URL", ""):
        os.environ["REDIS_URL"] = redis_url_of_worker(_redis_url, _worker)
    os.environ["CLINIC_TEST_REDIS_WORKER"] = _worker

from clinic.settings import *  # noqa: F403
from clinic.settings import INSTALLED_APPS, PASSWORD_HASHERS, STORAGES

# Test-only commands: flush as the database owner (tests/support).
INSTALLED_APPS = [*INSTALLED_APPS, "tests.support"]

# The test client and the browser tests' live server speak plain http.
SECURE_SSL_REDIRECT = False
SECURE_HSTS_SECONDS = 0
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SESSION_COOKIE_NAME = "sessionid"
CSRF_COOKIE_NAME = "csrftoken"

# No collectstatic before tests: serve static files from the finders.
STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

# Two suites on one server (say, two checkouts) each need their own test database.
if _test_db := env.str("TEST_DATABASE_NAME", default=""):  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": _test_db}  # noqa: F405

# No chain head written under var/ by the tests; the tests of the chain's
# anchor give it a file of their own.
AUDIT_CHAIN_HEAD_FILE = None

# Argon2id at its least cost (tests/hashers.py): the clinic's own cost is a
# fifth of a second a hash, and the suite makes thousands of users.
PASSWORD_HASHERS = ["tests.hashers.QuickArgon2PasswordHasher", *PASSWORD_HASHERS[1:]]

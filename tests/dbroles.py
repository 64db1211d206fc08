"""The test run's two database roles (see clinic/dbroles.py).

With DATABASE_OWNER_URL set (the embedded services of `make test` set it), the
owner and application roles are those of the environment. With DATABASE_URL
alone (a server's own superuser, say), that role is the owner, and an
application role named after the test database is made for the run, owning
nothing, with a fresh password; it is dropped at the end.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from urllib.parse import quote, urlsplit, urlunsplit

from django.conf import settings
from django.db import connection, connections

_CREDENTIALS = ("USER", "PASSWORD", "HOST", "PORT")


def roles_prepare() -> str | None:
    """Make sure the run has two roles; return the role made for it, if any."""
    if settings.DATABASE_OWNER:
        return None
    default = connections["default"]
    owner = {key: default.settings_dict.get(key, "") for key in _CREDENTIALS}
    role = f"{default.creation._get_test_db_name()}_app"[:63]
    password = secrets.token_urlsafe(24)
    with default._nodb_cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        if cursor.fetchone() is None:
            cursor.execute(
                f"CREATE ROLE {default.ops.quote_name(role)} "
                "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT"
            )
        cursor.execute(f"ALTER ROLE {default.ops.quote_name(role)} PASSWORD %s", [password])
    settings.DATABASE_OWNER = owner
    default.close()
    default.settings_dict.update(USER=role, PASSWORD=password)
    return role


def role_drop(role: str) -> None:
    """Drop the application role made for the run (best effort)."""
    default = connections["default"]
    with contextlib.suppress(Exception), default._nodb_cursor() as cursor:
        cursor.execute(f"DROP ROLE IF EXISTS {default.ops.quote_name(role)}")


def url_of_test_database() -> str:
    """A DATABASE_URL for the test database as the application role, for
    processes the tests start (workers, beat, gunicorn): the environment's
    URL, with the test database's name and the application role's login."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    s = connection.settings_dict
    login = quote(str(s["USER"]), safe="")
    if s.get("PASSWORD"):
        login += ":" + quote(str(s["PASSWORD"]), safe="")
    where = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{login}@{where}", path="/" + str(s["NAME"])))

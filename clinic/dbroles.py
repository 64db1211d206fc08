"""The two database roles: an owner that changes the schema, an application that only keeps rows.

- The **application role** (``DATABASE_URL``) is what the web server, the
  worker and beat connect as. It owns nothing. It may read and write rows, but
  on the append-only tables it may not DELETE, and on the audit trail and its
  hash chain it may only INSERT and SELECT. Owning no table, it cannot
  TRUNCATE, ALTER or DROP one, nor disable a trigger; not being a superuser, it
  cannot set ``session_replication_role`` to skip triggers.
- The **owner role** (``DATABASE_OWNER_URL``) owns every table and runs the
  migrations: the project's ``migrate`` command connects as it and, once the
  schema is up to date, grants the application role exactly its rights
  (:func:`application_privileges_grant`).

With no ``DATABASE_OWNER_URL`` (an installation set up before the two roles)
``migrate`` runs as ``DATABASE_URL`` and says so; ``docs/architecture.md``
explains how to move to two roles.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

# The credentials that differ between the two roles; the database name stays
# the connection's own (a test database keeps its test name).
_CREDENTIAL_KEYS = ("USER", "PASSWORD", "HOST", "PORT")

# Tables the application may only add to and read: the audit trail and its chain.
AUDIT_TABLES = ("clinic_auditevent", "clinic_auditseal")

# Where every function of the schema looks for names (database_functions_harden).
FUNCTION_SEARCH_PATH = "pg_catalog, public, pg_temp"
FUNCTION_SEARCH_PATH_SETTING = "search_path=pg_catalog, public, pg_temp"

# The statement-level trigger that refuses TRUNCATE on an append-only table
# (clinic migration 0005); the tables carrying it are the append-only ones.
TRUNCATE_GUARD_SUFFIX = "_refuse_truncate"


def owner_credentials() -> dict[str, Any] | None:
    """The owner role's credentials (``settings.DATABASE_OWNER``), or None when
    the installation has a single role."""
    owner = getattr(settings, "DATABASE_OWNER", None)
    if not owner:
        return None
    return {key: owner.get(key, "") for key in _CREDENTIAL_KEYS}


# Set in a connection's settings while it is connected as the owner: the
# application role it will return to.
_APPLICATION_USER = "CLINIC_APPLICATION_USER"


def application_user(alias: str = "default") -> str:
    """The application role of connection `alias`, even while it is the owner."""
    settings_dict = connections[alias].settings_dict
    return str(settings_dict.get(_APPLICATION_USER) or settings_dict.get("USER") or "")


@contextlib.contextmanager
def connected_as_owner(alias: str = "default") -> Iterator[BaseDatabaseWrapper]:
    """Within the block, connection `alias` connects as the owner role.

    The connection is closed on entry and on exit, so no transaction crosses
    the change of role; a block inside another is already the owner. Without
    an owner role configured, the block runs on the connection as it is.
    """
    connection = connections[alias]
    owner = owner_credentials()
    if owner is None or connection.settings_dict.get(_APPLICATION_USER):
        yield connection
        return
    saved = {key: connection.settings_dict.get(key, "") for key in _CREDENTIAL_KEYS}
    connection.close()
    connection.settings_dict.update(owner)
    connection.settings_dict[_APPLICATION_USER] = saved["USER"]
    try:
        yield connection
    finally:
        connection.close()
        del connection.settings_dict[_APPLICATION_USER]
        connection.settings_dict.update(saved)


def truncate_guarded_tables(connection: BaseDatabaseWrapper) -> list[tuple[str, str]]:
    """(table, trigger) for every table whose TRUNCATE guard is in place."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname, t.tgname
            FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
            WHERE t.tgname LIKE %s AND NOT t.tgisinternal
            ORDER BY c.relname
            """,
            ["%" + TRUNCATE_GUARD_SUFFIX],
        )
        return [(table, trigger) for table, trigger in cursor.fetchall()]


def application_privileges_grant(connection: BaseDatabaseWrapper, role: str) -> None:
    """Grant `role` (the application role) what it needs and nothing more.

    Run as the owner, after every migration (tables appear and go). Rows: read
    and write everywhere, except DELETE on the append-only tables and UPDATE on
    the audit trail. Sequences: use. Nothing else: no TRUNCATE, no REFERENCES,
    no TRIGGER, no CREATE in the schema, no temporary tables.
    """
    quote = connection.ops.quote_name
    guarded = {table for table, _ in truncate_guarded_tables(connection)}
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        tables = [row[0] for row in cursor.fetchall()]
        role_name = quote(role)
        cursor.execute(f"GRANT USAGE ON SCHEMA public TO {role_name}")
        # PostgreSQL 15 and later already refuse CREATE in public to all but its owner.
        cursor.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        # No temporary tables either: nothing needs them, and one could shadow a table.
        database = quote(connection.settings_dict["NAME"])
        cursor.execute(f"REVOKE TEMPORARY ON DATABASE {database} FROM PUBLIC, {role_name}")
        cursor.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role_name}")
        cursor.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role_name}")
        for table in tables:
            rights = ["SELECT", "INSERT"]
            if table not in AUDIT_TABLES:
                rights.append("UPDATE")
            if table not in guarded and table not in AUDIT_TABLES:
                rights.append("DELETE")
            cursor.execute(f"GRANT {', '.join(rights)} ON {quote(table)} TO {role_name}")


def database_functions_harden(connection: BaseDatabaseWrapper) -> int:
    """Fix the search path of every function of the schema (not an extension's).

    A trigger function that names a table without its schema would otherwise
    find a temporary table of the same name first: a session could shadow
    `patients_patient` and fool a check. Each function now looks in
    pg_catalog, then public, and in the session's temporary schema last.
    Run as the owner after every migration; returns how many were changed.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT p.oid::regprocedure::text FROM pg_proc p
            WHERE p.pronamespace = 'public'::regnamespace
              AND NOT EXISTS (
                  SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e'
              )
              AND NOT (coalesce(p.proconfig, '{}') @> ARRAY[%s])
            """,
            [FUNCTION_SEARCH_PATH_SETTING],
        )
        functions = [row[0] for row in cursor.fetchall()]
        for signature in functions:
            cursor.execute(f"ALTER FUNCTION {signature} SET search_path = {FUNCTION_SEARCH_PATH}")
    return len(functions)


def role_is_superuser(connection: BaseDatabaseWrapper) -> bool:
    """True when `connection` is signed in as a PostgreSQL superuser."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        row = cursor.fetchone()
    return bool(row and row[0])

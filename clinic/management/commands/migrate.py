"""Django's migrate, run as the owner role, then the application role's rights granted.

The web server, the worker and beat connect as the application role
(DATABASE_URL), which owns nothing; the schema belongs to the owner role
(DATABASE_OWNER_URL). See clinic/dbroles.py.
"""

from __future__ import annotations

from typing import Any

from django.core.management.commands.migrate import Command as DjangoMigrateCommand
from django.db import connections

from clinic.dbroles import (
    application_privileges_grant,
    application_user,
    connected_as_owner,
    database_functions_harden,
    owner_credentials,
)


class Command(DjangoMigrateCommand):
    help = (
        "Updates the database schema as the owner role (DATABASE_OWNER_URL), then "
        "grants the application role (DATABASE_URL) its rights."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        database = options["database"]
        application_role = application_user(database)
        owner = owner_credentials()
        if owner is None:
            if options["verbosity"] >= 1:
                self.stdout.write(
                    self.style.WARNING(
                        "DATABASE_OWNER_URL is not set: migrating as the application role. "
                        "Give the application a role that owns nothing (docs/architecture.md)."
                    )
                )
            super().handle(*args, **options)
            database_functions_harden(connections[database])
            return
        with connected_as_owner(database) as connection:
            super().handle(*args, **options)
            database_functions_harden(connection)
            if application_role and application_role != owner["USER"]:
                application_privileges_grant(connection, application_role)

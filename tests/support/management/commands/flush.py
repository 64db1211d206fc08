"""Django's flush for the tests: as the owner role, the TRUNCATE guards lifted.

Tests that commit (transactional tests, the browser's live server) are cleaned
up with a flush, i.e. TRUNCATE of every table. The application role may not
TRUNCATE, and the append-only tables refuse it even to their owner
(clinic/dbroles.py, clinic migration 0005). Here the owner disables those
guards inside the flush's own transaction, so they are back in place when it
commits. Only the test settings install this command.
"""

from __future__ import annotations

from typing import Any

from django.core.management.commands.flush import Command as DjangoFlushCommand
from django.db import transaction

from clinic.dbroles import connected_as_owner, truncate_guarded_tables


class Command(DjangoFlushCommand):
    def handle(self, **options: Any) -> None:
        database = options["database"]
        with connected_as_owner(database) as connection, transaction.atomic(using=database):
            guards = truncate_guarded_tables(connection)
            quote = connection.ops.quote_name
            with connection.cursor() as cursor:
                for table, trigger in guards:
                    cursor.execute(f"ALTER TABLE {quote(table)} DISABLE TRIGGER {quote(trigger)}")
            super().handle(**options)
            with connection.cursor() as cursor:
                for table, trigger in guards:
                    cursor.execute(f"ALTER TABLE {quote(table)} ENABLE TRIGGER {quote(trigger)}")

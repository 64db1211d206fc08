"""Migrations 0017 and 0018 give every existing account its username skeleton, oldest
first: an account whose look-alike was made before it (possible before the
letters of usernames were restricted) keeps none, so the migration never
fails on a clinic's data, and the older name still holds the skeleton."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

from clinic.dbroles import (
    application_privileges_grant,
    application_user,
    connected_as_owner,
    database_functions_harden,
)
from clinic.models import User

BEFORE = ("clinic", "0016_clinic_settings_quiet_hours_overnight")
AFTER = ("clinic", "0018_username_skeleton_unique")

pytestmark = pytest.mark.django_db(transaction=True)


def test_existing_accounts_get_their_skeleton_and_the_oldest_look_alike_keeps_it() -> None:
    with connected_as_owner():
        executor = MigrationExecutor(connection)
        executor.migrate([BEFORE])
        try:
            old_user = executor.loader.project_state([BEFORE]).apps.get_model("clinic", "User")
            for name in ("n\u0430dia", "nadia", "Omar", "rnaria"):
                old_user.objects.create(username=name)
            executor = MigrationExecutor(connection)
            executor.migrate([AFTER])
            with connection.cursor() as cursor:
                cursor.execute("SELECT username, username_skeleton FROM clinic_user")
                skeletons = dict(cursor.fetchall())
        finally:
            executor = MigrationExecutor(connection)
            executor.migrate(executor.loader.graph.leaf_nodes())
            database_functions_harden(connection)
            application_privileges_grant(connection, application_user())
    assert skeletons == {"n\u0430dia": "nadla", "nadia": "", "Omar": "omar", "rnaria": "marla"}
    # The older account holds the name: a new "nadla" is refused by the database.
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create(username="nadla")
    # The later look-alike keeps working: saving it (a sign-in) writes nothing new.
    later = User.objects.get(username="nadia")
    later.first_name = "Nadia"
    later.save()
    assert User.objects.get(username="nadia").username_skeleton == ""

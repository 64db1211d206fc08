"""Clinic closures can be edited and removed: each gets a uuid for its
address and a version for stale edits (clinic.concurrency), and the database
refuses a closure longer than a year.

The uuid is added in three steps (nullable, filled row by row, then unique),
so existing closures each get their own. The length check is added NOT VALID:
PostgreSQL enforces it on every row written from now on without refusing the
migration over an overlong closure already stored, which a manager can now
shorten or remove.
"""

import datetime
import uuid
from typing import Any

from django.db import migrations, models


def fill_uuids(apps: Any, schema_editor: Any) -> None:
    ClinicClosure = apps.get_model("treatments", "ClinicClosure")
    for closure in ClinicClosure.objects.filter(uuid__isnull=True).only("pk"):
        ClinicClosure.objects.filter(pk=closure.pk).update(uuid=uuid.uuid4())


LENGTH_FORWARD = """
ALTER TABLE treatments_clinicclosure ADD CONSTRAINT closure_at_most_a_year
CHECK (ends_on <= starts_on + interval '365 days') NOT VALID;
"""
LENGTH_BACKWARD = "ALTER TABLE treatments_clinicclosure DROP CONSTRAINT closure_at_most_a_year;"


class Migration(migrations.Migration):
    dependencies = [
        ("treatments", "0009_patient_merge"),
    ]

    operations = [
        migrations.AddField(
            model_name="clinicclosure",
            name="uuid",
            field=models.UUIDField(editable=False, null=True),
        ),
        migrations.RunPython(fill_uuids, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="clinicclosure",
            name="uuid",
            field=models.UUIDField(default=uuid.uuid4, editable=False, unique=True),
        ),
        migrations.AddField(
            model_name="clinicclosure",
            name="version",
            field=models.PositiveIntegerField(
                default=1, editable=False, verbose_name="record version"
            ),
        ),
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(LENGTH_FORWARD, LENGTH_BACKWARD)],
            state_operations=[
                migrations.AddConstraint(
                    model_name="clinicclosure",
                    constraint=models.CheckConstraint(
                        condition=models.Q(
                            ("ends_on__lte", models.F("starts_on") + datetime.timedelta(days=365))
                        ),
                        name="closure_at_most_a_year",
                        violation_error_message="A closure lasts at most a year (366 days).",
                    ),
                ),
            ],
        ),
    ]

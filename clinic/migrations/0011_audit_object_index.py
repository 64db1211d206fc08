"""An index on one object's history in the audit trail, built without stopping it.

A refused stale edit says who saved the record since and what they changed
(clinic/concurrency.py): it reads that object's newest events. Without an
index that read walked the whole trail, seconds at a few million events, at
the moment a receptionist is told their save did not go through.

Built CONCURRENTLY, as migration 0010's: the trail takes an insert on every
page view.
"""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("clinic", "0010_audit_indexes_per_filter"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="auditevent",
            index=models.Index(
                fields=["object_type", "object_id", "at", "id"], name="audit_object_idx"
            ),
        ),
    ]

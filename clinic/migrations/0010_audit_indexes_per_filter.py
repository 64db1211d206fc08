"""An index for each way the audit trail is read, built without stopping it.

At millions of events (about a year of a busy clinic: every page view is one)
the audit log filtered by action, by user or by date, the dashboard's recent
failed sign-ins and a staff member's previous sign-in each walked the whole
time index or the table. Each filter now has an index ending in (at, id), the
order the log is read in, so a page is one short index range (issue 14,
docs/benchmarks.md). The user filter ignores case, so its index is on
UPPER(actor_label), the expression it compares. The (at, id) index takes over
from the one on `at` alone.

Built CONCURRENTLY (so outside a transaction): the trail takes an insert on
every page view, and a plain CREATE INDEX would hold them all for as long as
it reads the table.
"""

import django.db.models.functions.text
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("clinic", "0009_audit_seal_next_link_only"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="auditevent",
            index=models.Index(fields=["at", "id"], name="audit_at_id_idx"),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="at",
            field=models.DateTimeField(auto_now_add=True),
        ),
        AddIndexConcurrently(
            model_name="auditevent",
            index=models.Index(fields=["action", "at", "id"], name="audit_action_idx"),
        ),
        AddIndexConcurrently(
            model_name="auditevent",
            index=models.Index(
                django.db.models.functions.text.Upper("actor_label"),
                models.F("at"),
                models.F("id"),
                name="audit_actor_label_idx",
            ),
        ),
        AddIndexConcurrently(
            model_name="auditevent",
            index=models.Index(
                condition=models.Q(("action", "login")),
                fields=["actor", "at"],
                name="audit_actor_login_idx",
            ),
        ),
    ]

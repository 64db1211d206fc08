"""The follow-up list reads the failed reminders of the last 30 days: an index
on just those, so it no longer reads every reminder ever planned (372,000 rows
took 316 ms; issue 14). Built CONCURRENTLY: dispatch writes to the table
every minute."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("treatments", "0013_link_attempt_link"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="reminder",
            index=models.Index(
                condition=models.Q(("status", "failed")),
                fields=["updated_at"],
                name="reminder_failed_idx",
            ),
        ),
    ]

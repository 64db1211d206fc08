"""The follow-up list reads the running courses only: an index on just those
(a few hundred among a decade of finished ones), so the courses to book are
found without reading every course ever planned, and the planner's estimate
stays small (issue 14). Built CONCURRENTLY, as 0014."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("treatments", "0014_reminder_failed_idx"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="treatmentcourse",
            index=models.Index(
                condition=models.Q(("status", "active")),
                fields=["created_at"],
                name="course_running_idx",
            ),
        ),
    ]

"""Reminders are claimed with a lease ("sending" until claimed_until) and sent
with no transaction open; a row whose worker died is taken again after it."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("treatments", "0010_closure_edit"),
    ]

    operations = [
        migrations.AddField(
            model_name="reminder",
            name="claimed_until",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="reminder",
            name="status",
            field=models.CharField(
                choices=[
                    ("planned", "Planned"),
                    ("sending", "Sending"),
                    ("sent", "Sent"),
                    ("failed", "Failed"),
                    ("cancelled", "Cancelled"),
                ],
                default="planned",
                max_length=10,
            ),
        ),
        migrations.AddIndex(
            model_name="reminder",
            index=models.Index(
                condition=models.Q(("status", "sending")),
                fields=["claimed_until"],
                name="reminder_claimed_idx",
            ),
        ),
        migrations.AddConstraint(
            model_name="reminder",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("claimed_until__isnull", False), ("status", "sending")),
                    models.Q(
                        models.Q(("status", "sending"), _negated=True),
                        ("claimed_until__isnull", True),
                    ),
                    _connector="OR",
                ),
                name="reminder_lease_while_sending",
            ),
        ),
    ]

"""Follow-ups of an adverse event: how it went on and when it resolved, each
added below the event with who and when. The event stays as recorded; its
follow-ups are, like it, never changed or deleted (the append-only trigger of
migration 0004) and never truncated (clinic migration 0005's guard)."""

import uuid

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

TABLE = "treatments_adverseeventfollowup"

FORWARD = f"""
CREATE TRIGGER {TABLE}_append_only
    BEFORE UPDATE OR DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION treatments_append_only();
CREATE TRIGGER {TABLE}_refuse_truncate
    BEFORE TRUNCATE ON {TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION clinic_refuse_truncate();
"""
BACKWARD = f"""
DROP TRIGGER IF EXISTS {TABLE}_refuse_truncate ON {TABLE};
DROP TRIGGER IF EXISTS {TABLE}_append_only ON {TABLE};
"""


class Migration(migrations.Migration):
    dependencies = [
        ("treatments", "0015_course_running_idx"),
        ("clinic", "0005_audit_chain_truncate_guard"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="AdverseEventFollowUp",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("uuid", models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                ("note", models.TextField(max_length=2000, verbose_name="follow-up")),
                ("resolved", models.BooleanField(default=False, verbose_name="resolved")),
                ("recorded_at", models.DateTimeField(editable=False)),
                (
                    "event",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="follow_ups",
                        to="treatments.adverseevent",
                    ),
                ),
                (
                    "recorded_by",
                    models.ForeignKey(
                        editable=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "verbose_name": "adverse event follow-up",
                "verbose_name_plural": "adverse event follow-ups",
                "ordering": ["recorded_at", "id"],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("note", ""), _negated=True),
                        name="follow_up_note_written",
                    ),
                    models.UniqueConstraint(
                        condition=models.Q(("resolved", True)),
                        fields=("event",),
                        name="follow_up_resolves_once",
                    ),
                ],
            },
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
    ]

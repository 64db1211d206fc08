"""Changes of a patient's email or mobile number (patients.contact_changes):
who made them, whether they may open clinical documents, and the notice owed
to the previous address.

The table points at the patient, so a row written while the patient's record
is merged into another follows it, like every such table: the trigger of
consent migration 0006 (`patients_follow_merge`). Whichever of the two
migrations runs second adds it here: that one creates the trigger on every
table pointing at a patient when it runs, and this one when the function
already exists.
"""

import uuid

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

FOLLOW_MERGE = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'patients_follow_merge')
       AND NOT EXISTS (
           SELECT 1 FROM pg_trigger
           WHERE tgname = 'a_patient_id_follows_merge'
             AND tgrelid = 'patients_contactchange'::regclass
       ) THEN
        CREATE TRIGGER a_patient_id_follows_merge
        BEFORE INSERT OR UPDATE OF patient_id ON patients_contactchange
        FOR EACH ROW EXECUTE FUNCTION patients_follow_merge('patient_id');
    END IF;
END;
$$;
"""
NO_FOLLOW_MERGE = "DROP TRIGGER IF EXISTS a_patient_id_follows_merge ON patients_contactchange;"


class Migration(migrations.Migration):
    dependencies = [
        ("patients", "0009_patient_merge"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="ContactChange",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("uuid", models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                (
                    "field",
                    models.CharField(
                        choices=[("email", "email address"), ("phone", "mobile number")],
                        max_length=10,
                        verbose_name="changed",
                    ),
                ),
                (
                    "previous",
                    models.CharField(blank=True, max_length=254, verbose_name="previous address"),
                ),
                ("changed_at", models.DateTimeField(db_index=True, verbose_name="changed at")),
                (
                    "by_clinical_role",
                    models.BooleanField(
                        default=False,
                        verbose_name="changed by someone who may open clinical documents",
                    ),
                ),
                (
                    "notice_status",
                    models.CharField(
                        choices=[
                            ("pending", "to be sent"),
                            ("sent", "sent"),
                            ("failed", "could not be sent"),
                            ("none", "nobody to tell"),
                        ],
                        default="pending",
                        max_length=10,
                        verbose_name="notice",
                    ),
                ),
                ("notice_attempts", models.PositiveSmallIntegerField(default=0)),
                ("notice_sent_at", models.DateTimeField(blank=True, null=True)),
                ("notice_error", models.CharField(blank=True, max_length=200)),
                (
                    "changed_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "patient",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="contact_changes",
                        to="patients.patient",
                    ),
                ),
            ],
            options={
                "ordering": ["-changed_at", "-id"],
                "indexes": [
                    models.Index(
                        fields=["patient", "field", "-changed_at"],
                        name="contact_change_patient_idx",
                    ),
                    models.Index(
                        condition=models.Q(("notice_status", "pending")),
                        fields=["changed_at"],
                        name="contact_notice_pending_idx",
                    ),
                ],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("notice_status", "none"), ("previous", "")),
                            models.Q(
                                models.Q(("previous", ""), _negated=True),
                                models.Q(("notice_status", "none"), _negated=True),
                            ),
                            _connector="OR",
                        ),
                        name="contact_change_notice_has_address",
                    )
                ],
            },
        ),
        migrations.RunSQL(FOLLOW_MERGE, NO_FOLLOW_MERGE),
    ]

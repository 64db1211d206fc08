"""Merging a duplicate patient record into the record that stays.

Adds `Patient.merged_into`, `merged_at` and `merged_by` (a merged record keeps
its row) and the one audited path by which a merge moves rows that are
otherwise never changed: `patients_merge_relink(old, new)` is true only when

- the transaction has set `clinic.patient_merge` (transaction-local, set by
  `treatments.services.merge.patient_merge` to the merge's uuid, and cleared
  again once the rows are moved),
- the row is unchanged but for `patient_id`, and
- the patient it leaves is recorded as merged into the one it goes to.

The triggers that keep signed records as signed ask it first and let such an
UPDATE through; anything else is refused as before. Here: the medical history
trigger of 0004. Consent (0005) and treatments (0009) replace theirs the same
way. Written by hand; reversing restores the function of 0004.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

RELINK_FORWARD = """
CREATE FUNCTION patients_merge_relink(old_row jsonb, new_row jsonb) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(current_setting('clinic.patient_merge', true), '') <> ''
       AND (old_row - 'patient_id') = (new_row - 'patient_id')
       AND EXISTS (
           SELECT 1 FROM patients_patient merged
           WHERE merged.id = (old_row ->> 'patient_id')::bigint
             AND merged.merged_into_id = (new_row ->> 'patient_id')::bigint
       )
$$;

CREATE OR REPLACE FUNCTION patients_history_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- A merge of duplicate records moves the history to the record that
    -- stays, its answers untouched (patients_merge_relink).
    IF TG_OP = 'UPDATE' THEN
        IF patients_merge_relink(to_jsonb(OLD), to_jsonb(NEW)) THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'a signed medical history is never changed (% refused); record a new one', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
"""

# The function exactly as 0004 made it, then the helper goes.
RELINK_BACKWARD = """
CREATE OR REPLACE FUNCTION patients_history_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a signed medical history is never changed (% refused); record a new one', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
DROP FUNCTION IF EXISTS patients_merge_relink(jsonb, jsonb);
"""


class Migration(migrations.Migration):
    dependencies = [
        ("patients", "0008_record_versions"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="patient",
            name="merged_into",
            field=models.ForeignKey(
                blank=True,
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="merged_records",
                to="patients.patient",
            ),
        ),
        migrations.AddField(
            model_name="patient",
            name="merged_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="patient",
            name="merged_by",
            field=models.ForeignKey(
                blank=True,
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddConstraint(
            model_name="patient",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(
                        ("merged_at__isnull", True),
                        ("merged_by__isnull", True),
                        ("merged_into__isnull", True),
                    ),
                    models.Q(
                        ("merged_at__isnull", False),
                        ("merged_by__isnull", False),
                        ("merged_into__isnull", False),
                    ),
                    _connector="OR",
                ),
                name="patient_merge_recorded",
            ),
        ),
        migrations.AddConstraint(
            model_name="patient",
            constraint=models.CheckConstraint(
                condition=models.Q(("merged_into", models.F("pk")), _negated=True),
                name="patient_not_merged_into_itself",
                violation_error_message="A record cannot be merged into itself.",
            ),
        ),
        migrations.RunSQL(RELINK_FORWARD, RELINK_BACKWARD),
    ]

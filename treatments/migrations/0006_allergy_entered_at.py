"""The 24-hour wait of an allergy test runs from the moment it is entered here.

Adds `entered_at` (the server's clock when the test was entered, never typed)
and `late_entry_reason` (required when the test was given more than 15 minutes
before it was entered). The reading opens at max(given_at, entered_at) + 24 h.

Tests already recorded had their reading set from the time given, so they keep
that rule: their `entered_at` is the earlier of `created_at` and `given_at`,
which leaves `read_due_at` as it was and makes none of them a late entry. Read
tests are protected by a trigger (0002); it is switched off for this one
backfill only, in this transaction, then the trigger is extended so that
`entered_at` and `late_entry_reason` are never changed either.

Written by hand. Reversing it fails once tests were entered under the new rule:
their reading time cannot be expressed as given + 24 h.
"""

import datetime

import django.db.models.expressions
import django.db.models.functions.comparison
from django.db import migrations, models

BACKFILL = """
ALTER TABLE treatments_allergytest DISABLE TRIGGER treatments_allergy_test_final;
UPDATE treatments_allergytest SET entered_at = LEAST(created_at, given_at);
ALTER TABLE treatments_allergytest ENABLE TRIGGER treatments_allergy_test_final;
"""

# As in 0002, plus the two new columns: what was given, and when and why it
# was entered, are fixed from the start; only the reading may be added, once.
TRIGGER_FORWARD = """
CREATE OR REPLACE FUNCTION treatments_allergy_test_final() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR OLD.read_at IS NOT NULL THEN
        RAISE EXCEPTION 'an allergy test that was given and read is never changed (% refused)', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- Only the reading may be added: what was given, where and when, and
    -- when and why it was entered, stays.
    IF NEW.patient_id <> OLD.patient_id OR NEW.given_at <> OLD.given_at
       OR NEW.given_by_id <> OLD.given_by_id OR NEW.site <> OLD.site
       OR NEW.read_due_at <> OLD.read_due_at
       OR NEW.batch_id IS DISTINCT FROM OLD.batch_id
       OR NEW.entered_at IS DISTINCT FROM OLD.entered_at
       OR NEW.late_entry_reason IS DISTINCT FROM OLD.late_entry_reason THEN
        RAISE EXCEPTION 'an allergy test given is never changed; only its reading is added'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;
"""

# The function exactly as 0002 made it.
TRIGGER_BACKWARD = """
CREATE OR REPLACE FUNCTION treatments_allergy_test_final() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR OLD.read_at IS NOT NULL THEN
        RAISE EXCEPTION 'an allergy test that was given and read is never changed (% refused)', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- Only the reading may be added: what was given, where and when stays.
    IF NEW.patient_id <> OLD.patient_id OR NEW.given_at <> OLD.given_at
       OR NEW.given_by_id <> OLD.given_by_id OR NEW.site <> OLD.site
       OR NEW.read_due_at <> OLD.read_due_at
       OR NEW.batch_id IS DISTINCT FROM OLD.batch_id THEN
        RAISE EXCEPTION 'an allergy test given is never changed; only its reading is added'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("treatments", "0005_reminders_documents_portal")]

    operations = [
        migrations.RemoveConstraint(
            model_name="allergytest",
            name="allergy_read_due_24h_after",
        ),
        # Nullable for the backfill, then required.
        migrations.AddField(
            model_name="allergytest",
            name="entered_at",
            field=models.DateTimeField(editable=False, null=True, verbose_name="entered at"),
        ),
        migrations.AddField(
            model_name="allergytest",
            name="late_entry_reason",
            field=models.CharField(
                blank=True,
                help_text="Why the test is entered more than 15 minutes after it was given.",
                max_length=300,
                verbose_name="reason for the late entry",
            ),
        ),
        migrations.RunSQL(BACKFILL, migrations.RunSQL.noop),
        migrations.AlterField(
            model_name="allergytest",
            name="entered_at",
            field=models.DateTimeField(editable=False, verbose_name="entered at"),
        ),
        migrations.AddConstraint(
            model_name="allergytest",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    (
                        "read_due_at",
                        django.db.models.expressions.CombinedExpression(
                            django.db.models.functions.comparison.Greatest(
                                models.F("given_at"), models.F("entered_at")
                            ),
                            "+",
                            models.Value(datetime.timedelta(days=1)),
                        ),
                    )
                ),
                name="allergy_read_due_24h_after_entry",
            ),
        ),
        migrations.AddConstraint(
            model_name="allergytest",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    (
                        "given_at__gte",
                        django.db.models.expressions.CombinedExpression(
                            models.F("entered_at"), "-", models.Value(datetime.timedelta(days=7))
                        ),
                    ),
                    (
                        "given_at__lte",
                        django.db.models.expressions.CombinedExpression(
                            models.F("entered_at"),
                            "+",
                            models.Value(datetime.timedelta(seconds=60)),
                        ),
                    ),
                ),
                name="allergy_given_within_week_before_entry",
                violation_error_message="The time given cannot be in the future or more than 7 days ago.",
            ),
        ),
        migrations.AddConstraint(
            model_name="allergytest",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(
                        (
                            "given_at__lt",
                            django.db.models.expressions.CombinedExpression(
                                models.F("entered_at"),
                                "-",
                                models.Value(datetime.timedelta(seconds=900)),
                            ),
                        ),
                        models.Q(("late_entry_reason", ""), _negated=True),
                    ),
                    models.Q(
                        (
                            "given_at__gte",
                            django.db.models.expressions.CombinedExpression(
                                models.F("entered_at"),
                                "-",
                                models.Value(datetime.timedelta(seconds=900)),
                            ),
                        ),
                        ("late_entry_reason", ""),
                    ),
                    _connector="OR",
                ),
                name="allergy_late_entry_has_reason",
                violation_error_message="A test entered more than 15 minutes after it was given needs a reason.",
            ),
        ),
        migrations.RunSQL(TRIGGER_FORWARD, TRIGGER_BACKWARD),
    ]

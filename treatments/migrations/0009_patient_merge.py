"""A merge of duplicate patient records moves allergy tests (read or not) to
the record that stays, through the one audited path of patients 0009
(`patients_merge_relink`): the trigger of 0002, as extended by 0006, lets
through an UPDATE that changes nothing but `patient_id`, inside a merge, from
a record merged into the one the test goes to. Every other rule of 0006 stays
as it was (tests.treatments.test_merge checks the body below still holds it).

Session records, cocktail lines, adverse events, amendments, day-of checks,
acknowledged cautions and booking history have no patient of their own: they
follow their booking, untouched, and their append-only trigger (0004, 0007)
is not changed. Written by hand; reversing restores 0006's function.
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION treatments_allergy_test_final() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- A merge of duplicate records moves the test to the record that stays,
    -- what was given and read untouched (patients_merge_relink).
    IF TG_OP = 'UPDATE' THEN
        IF patients_merge_relink(to_jsonb(OLD), to_jsonb(NEW)) THEN
            RETURN NEW;
        END IF;
    END IF;
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

# The function exactly as 0006 made it.
BACKWARD = """
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


class Migration(migrations.Migration):
    dependencies = [
        ("treatments", "0008_record_versions"),
        ("patients", "0009_patient_merge"),
        ("consent", "0005_patient_merge"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]

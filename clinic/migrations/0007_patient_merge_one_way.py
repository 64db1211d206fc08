"""A record marked as merged stays merged.

The database lets a merge move signed records only from a patient marked as
merged into the record that stays (patients migration 0009). Were the mark
removable, a role able to write rows could mark a record merged, move another
patient's signed consent or history, and clear the mark again, leaving no
trace. Now `merged_into` is set once and may only move along a chain of
merges (A into B, then B into C: A now points at C); `merged_at` and
`merged_by` are kept.
"""

from django.db import migrations

FORWARD = """
CREATE FUNCTION patients_merge_mark_kept() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    IF OLD.merged_into_id IS NULL THEN
        RETURN NEW;
    END IF;
    IF NEW.merged_into_id IS NULL OR NEW.merged_at IS NULL
       OR NEW.merged_at IS DISTINCT FROM OLD.merged_at
       OR NEW.merged_by_id IS DISTINCT FROM OLD.merged_by_id THEN
        RAISE EXCEPTION 'a merged patient record stays merged'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.merged_into_id <> OLD.merged_into_id AND NOT EXISTS (
        SELECT 1 FROM public.patients_patient target
        WHERE target.id = OLD.merged_into_id AND target.merged_into_id = NEW.merged_into_id
    ) THEN
        RAISE EXCEPTION 'a merged patient record only follows the record it was merged into'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER patients_patient_merge_mark_kept
    BEFORE UPDATE ON patients_patient
    FOR EACH ROW EXECUTE FUNCTION patients_merge_mark_kept();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS patients_patient_merge_mark_kept ON patients_patient;
DROP FUNCTION IF EXISTS patients_merge_mark_kept();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("clinic", "0006_sign_in_throttle"),
        ("patients", "0009_patient_merge"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]

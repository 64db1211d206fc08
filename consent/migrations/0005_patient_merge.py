"""A merge of duplicate patient records moves signed consents to the record
that stays, through the one audited path of patients 0009
(`patients_merge_relink`): the trigger of 0002 lets through an UPDATE that
changes nothing but `patient_id`, inside a merge, from a record merged into
the one the consent goes to. Everything else stays refused. The function is
shared with withdrawals, which have no patient: they follow their consent
untouched and stay refused. Written by hand; reversing restores 0002's function.
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION consent_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- A merge of duplicate records moves the consent to the record that
    -- stays, its text and signature untouched (patients_merge_relink).
    IF TG_OP = 'UPDATE' THEN
        IF patients_merge_relink(to_jsonb(OLD), to_jsonb(NEW)) THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION '% is never changed or deleted (% refused)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
"""

# The function exactly as 0002 made it.
BACKWARD = """
CREATE OR REPLACE FUNCTION consent_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is never changed or deleted (% refused)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("consent", "0004_record_versions"), ("patients", "0009_patient_merge")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]

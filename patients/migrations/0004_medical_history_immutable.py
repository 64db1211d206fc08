"""A signed medical history is never changed: the database refuses UPDATE and
DELETE on it. A new questionnaire supersedes the old one instead."""

from django.db import migrations

FORWARD = """
CREATE FUNCTION patients_history_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a signed medical history is never changed (% refused); record a new one', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER patients_medicalhistory_immutable
    BEFORE UPDATE OR DELETE ON patients_medicalhistory
    FOR EACH ROW EXECUTE FUNCTION patients_history_immutable();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS patients_medicalhistory_immutable ON patients_medicalhistory;
DROP FUNCTION IF EXISTS patients_history_immutable();
"""


class Migration(migrations.Migration):
    dependencies = [("patients", "0003_medical_history")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]

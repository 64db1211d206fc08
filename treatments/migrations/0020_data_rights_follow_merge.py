"""Requests to erase and subject-access exports follow a merge.

Both tables point at a patient, so a row written while the patient's record is
merged into another must land on the record that stays, like every such table:
the trigger of consent migration 0006 (`patients_follow_merge`), which that
migration adds only to the tables existing when it runs. This migration runs
after it (0019 depends on consent 0007), so the function exists.
"""

from django.db import migrations

TABLES = ("treatments_erasurerequest", "treatments_subjectaccessexport")

FOLLOW_MERGE = "\n".join(
    f"CREATE TRIGGER a_patient_id_follows_merge "
    f"BEFORE INSERT OR UPDATE OF patient_id ON {table} "
    f"FOR EACH ROW EXECUTE FUNCTION patients_follow_merge('patient_id');"
    for table in TABLES
)
NO_FOLLOW_MERGE = "\n".join(
    f"DROP TRIGGER IF EXISTS a_patient_id_follows_merge ON {table};" for table in TABLES
)


class Migration(migrations.Migration):
    dependencies = [
        ("consent", "0006_patient_link_follows_merge"),
        ("treatments", "0019_data_rights"),
    ]

    operations = [
        migrations.RunSQL(FOLLOW_MERGE, reverse_sql=NO_FOLLOW_MERGE),
    ]

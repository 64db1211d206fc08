"""A trigram index for the search box, where the server offers pg_trgm.

PostgreSQL packages (Debian, the postgres Docker image) and the embedded
server ship pg_trgm; on a server without it the search runs the same query on
a sequential scan, which is fine at small sizes.
"""

from django.db import migrations

FORWARD = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
        CREATE INDEX IF NOT EXISTS patients_patient_search_trgm
            ON patients_patient USING gin (search_text gin_trgm_ops);
    ELSE
        RAISE NOTICE 'pg_trgm is not available: patient search will not be indexed';
    END IF;
END
$$;
"""

BACKWARD = "DROP INDEX IF EXISTS patients_patient_search_trgm;"


class Migration(migrations.Migration):
    dependencies = [("patients", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]

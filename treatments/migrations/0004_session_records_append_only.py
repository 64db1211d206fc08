"""A completed session's record, its cocktail lines, adverse events,
amendments and a booking's history are only ever added to: the database
refuses UPDATE and DELETE on them."""

from django.db import migrations

TABLES = (
    "treatments_sessionrecord",
    "treatments_cocktailline",
    "treatments_adverseevent",
    "treatments_sessionamendment",
    "treatments_bookingevent",
)

FORWARD = """
CREATE FUNCTION treatments_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is never changed or deleted (% refused); add an amendment', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
""" + "".join(
    f"""
CREATE TRIGGER {table}_append_only
    BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION treatments_append_only();
"""
    for table in TABLES
)

BACKWARD = (
    "".join(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table};\n" for table in TABLES)
    + "DROP FUNCTION IF EXISTS treatments_append_only();\n"
)


class Migration(migrations.Migration):
    dependencies = [("treatments", "0003_bookings_and_sessions")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]

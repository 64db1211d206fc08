"""The audit trail's hash chain (AuditSeal), and TRUNCATE refused on append-only tables.

Row triggers refuse UPDATE and DELETE on the append-only tables, but TRUNCATE
fires no row trigger: a statement trigger now refuses it on each of them. The
application role has no TRUNCATE right anyway (clinic/dbroles.py); the guard
also stops the owner role, unless it first disables the trigger, which only a
table's owner can do and which the hash chain then shows.
"""

import django.db.models.deletion
from django.db import migrations, models

# Append-only tables: their row triggers refuse DELETE (and UPDATE, but for the
# documented exceptions). tests/test_dbroles.py fails when one is missing here.
APPEND_ONLY_TABLES = (
    "clinic_auditevent",
    "clinic_auditseal",
    "consent_consentformversion",
    "consent_consentwithdrawal",
    "consent_signedconsent",
    "patients_medicalhistory",
    "treatments_adverseevent",
    "treatments_allergytest",
    "treatments_allergytest_ingredients",
    "treatments_allergytest_products",
    "treatments_bookingevent",
    "treatments_cautionacknowledgement",
    "treatments_cocktailline",
    "treatments_dayofcheck",
    "treatments_patientallergy",
    "treatments_sessionamendment",
    "treatments_sessionrecord",
)

FORWARD = """
CREATE TRIGGER clinic_auditseal_append_only
    BEFORE UPDATE OR DELETE ON clinic_auditseal
    FOR EACH ROW EXECUTE FUNCTION clinic_audit_append_only();

CREATE FUNCTION clinic_refuse_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: TRUNCATE refused', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
""" + "".join(
    f"""
CREATE TRIGGER {table}_refuse_truncate
    BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION clinic_refuse_truncate();
"""
    for table in APPEND_ONLY_TABLES
)

BACKWARD = (
    "".join(
        f"DROP TRIGGER IF EXISTS {table}_refuse_truncate ON {table};\n"
        for table in APPEND_ONLY_TABLES
    )
    + "DROP FUNCTION IF EXISTS clinic_refuse_truncate();\n"
    + "DROP TRIGGER IF EXISTS clinic_auditseal_append_only ON clinic_auditseal;\n"
)


class Migration(migrations.Migration):
    dependencies = [
        ("clinic", "0004_audit_clinical_actions"),
        ("consent", "0005_patient_merge"),
        ("patients", "0009_patient_merge"),
        ("treatments", "0009_patient_merge"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditSeal",
            fields=[
                ("seq", models.BigAutoField(primary_key=True, serialize=False)),
                ("event_hash", models.CharField(max_length=64)),
                ("chain_hash", models.CharField(max_length=64, unique=True)),
                ("sealed_at", models.DateTimeField()),
                (
                    "event",
                    models.OneToOneField(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="seal",
                        to="clinic.auditevent",
                    ),
                ),
            ],
            options={
                "ordering": ["seq"],
            },
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
    ]

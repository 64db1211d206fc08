"""The clinical facts' version: one row that changes whenever a fact the week
view shows or judges changes, so a week computed once can be kept (in Redis)
until then.

`clinic_factsversion` holds one row (id 1): a counter and a random token.
Every INSERT, UPDATE or DELETE of a table the calendar's week reads (the
bookings, patients, histories, consents, allergy tests and readings,
protocols, cocktails, ingredients, products, batches, session records, rooms,
working hours, closures, practitioners and their roles) fires a row
trigger, and a TRUNCATE a statement trigger; a transaction that changed any
of them gives the row a new token as it commits. Raw SQL is counted like the
ORM: the triggers are the database's, not Django's signals.

How the change is recorded, so that no deadlock and no long lock come of it:

1. `<table>_facts_changed` is a constraint trigger, DEFERRABLE INITIALLY
   DEFERRED: it fires at COMMIT, not at the write. The first one of a
   transaction adds one row for the transaction to
   `clinic_factsversion_pending` (a plain INSERT: no lock shared with
   anyone) and notes it in a transaction-local setting; the others return
   at once.
2. That row's own deferred trigger, `clinic_factsversion_pending_bump`,
   fires in PostgreSQL's next round of deferred triggers, after every
   deferred check the transaction queued (foreign keys included): it removes
   the row and bumps the version. The version row is therefore locked last in
   every transaction and only for the commit itself; two transactions
   waiting for it hold nothing the other needs.
3. Whatever writes the version row, a BEFORE trigger gives it a new random
   token and the next counter: no statement can set a token that was ever
   used, so an entry cached under a token cannot be served again after any
   change (not even after a restore from a backup: the dump holds the token
   of its own moment and the facts of that moment with it).

Readers take the version first, then load the facts, then read the version
again and keep what they computed only if it is unchanged: what is kept
under token T then holds exactly the facts of T. A reader inside a
transaction that has written (txid assigned) keeps and reads nothing: its own
changes are not counted yet.

tests/treatments/test_calendar_cache.py fails when a table the week reads has
no trigger here.
"""

from django.db import migrations

# Every table the week view reads (calendar_build, safe-to-treat, the cards).
FACT_TABLES = (
    "auth_group",
    "clinic_user",
    "clinic_user_groups",
    "consent_consentform",
    "consent_consentformversion",
    "consent_consentwithdrawal",
    "consent_signedconsent",
    "patients_medicalhistory",
    "patients_patient",
    "treatments_allergytest",
    "treatments_allergytest_ingredients",
    "treatments_batch",
    "treatments_booking",
    "treatments_clinicclosure",
    "treatments_cocktailline",
    "treatments_ingredient",
    "treatments_patientallergy",
    "treatments_product",
    "treatments_product_ingredients",
    "treatments_protocol",
    "treatments_protocolcocktailline",
    "treatments_room",
    "treatments_sessionrecord",
    "treatments_workinghours",
)

# A sign-in rewrites last_login, a password upgrade the hash: neither is shown.
_USER_CHANGED = (
    "(to_jsonb(OLD) - 'last_login' - 'password')"
    " IS DISTINCT FROM (to_jsonb(NEW) - 'last_login' - 'password')"
)

FUNCTIONS = """
CREATE TABLE clinic_factsversion (
    id smallint PRIMARY KEY CHECK (id = 1),
    version bigint NOT NULL,
    token uuid NOT NULL,
    changed_at timestamptz NOT NULL
);
CREATE TABLE clinic_factsversion_pending (
    txid bigint NOT NULL
);

CREATE FUNCTION clinic_factsversion_fresh() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    NEW.token := gen_random_uuid();
    NEW.changed_at := clock_timestamp();
    IF TG_OP = 'UPDATE' THEN
        NEW.version := OLD.version + 1;
    ELSE
        NEW.version := 1;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER clinic_factsversion_fresh
    BEFORE INSERT OR UPDATE ON clinic_factsversion
    FOR EACH ROW EXECUTE FUNCTION clinic_factsversion_fresh();

CREATE FUNCTION clinic_factsversion_bump() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    -- The BEFORE trigger sets the token, counter and moment.
    INSERT INTO clinic_factsversion AS v (id, version, token, changed_at)
        VALUES (1, 1, gen_random_uuid(), clock_timestamp())
        ON CONFLICT (id) DO UPDATE SET version = v.version;
END;
$$;

CREATE FUNCTION clinic_facts_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    IF current_setting('clinic.facts_changed', true) IS DISTINCT FROM 'on' THEN
        PERFORM set_config('clinic.facts_changed', 'on', true);
        INSERT INTO clinic_factsversion_pending (txid) VALUES (txid_current());
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION clinic_factsversion_pending_bump() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    DELETE FROM clinic_factsversion_pending WHERE txid = NEW.txid;
    PERFORM clinic_factsversion_bump();
    RETURN NULL;
END;
$$;
CREATE CONSTRAINT TRIGGER clinic_factsversion_pending_bump
    AFTER INSERT ON clinic_factsversion_pending
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION clinic_factsversion_pending_bump();

CREATE FUNCTION clinic_facts_truncated() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    PERFORM clinic_factsversion_bump();
    RETURN NULL;
END;
$$;

SELECT clinic_factsversion_bump();
"""

TRIGGERS = "".join(
    f"""
CREATE CONSTRAINT TRIGGER {table}_facts_changed
    AFTER INSERT OR DELETE{"" if table == "clinic_user" else " OR UPDATE"} ON {table}
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION clinic_facts_changed();
CREATE TRIGGER {table}_facts_truncated
    AFTER TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION clinic_facts_truncated();
"""
    for table in FACT_TABLES
)
USER_TRIGGER = f"""
CREATE CONSTRAINT TRIGGER clinic_user_facts_updated
    AFTER UPDATE ON clinic_user
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN ({_USER_CHANGED})
    EXECUTE FUNCTION clinic_facts_changed();
"""

FORWARD = FUNCTIONS + TRIGGERS + USER_TRIGGER

BACKWARD = (
    "DROP TRIGGER IF EXISTS clinic_user_facts_updated ON clinic_user;\n"
    + "".join(
        f"DROP TRIGGER IF EXISTS {table}_facts_changed ON {table};\n"
        f"DROP TRIGGER IF EXISTS {table}_facts_truncated ON {table};\n"
        for table in FACT_TABLES
    )
    + """
DROP TABLE IF EXISTS clinic_factsversion_pending;
DROP TABLE IF EXISTS clinic_factsversion;
DROP FUNCTION IF EXISTS clinic_facts_truncated();
DROP FUNCTION IF EXISTS clinic_factsversion_pending_bump();
DROP FUNCTION IF EXISTS clinic_facts_changed();
DROP FUNCTION IF EXISTS clinic_factsversion_bump();
DROP FUNCTION IF EXISTS clinic_factsversion_fresh();
"""
)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("clinic", "0011_audit_object_index"),
        ("consent", "0007_documents_pipeline"),
        ("patients", "0013_contact_notice_due"),
        ("treatments", "0015_course_running_idx"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]

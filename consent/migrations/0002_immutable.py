"""What is signed stays as signed: the database refuses to change a published
consent text, a signed consent or a withdrawal, and to delete any of them."""

from django.db import migrations

FORWARD = """
CREATE FUNCTION consent_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is never changed or deleted (% refused)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

-- A draft may be edited or discarded; a published version may not.
CREATE FUNCTION consent_version_frozen() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.published_at IS NOT NULL THEN
        RAISE EXCEPTION 'a published consent form version is never changed (% refused); publish a new version', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER consent_version_frozen
    BEFORE UPDATE OR DELETE ON consent_consentformversion
    FOR EACH ROW EXECUTE FUNCTION consent_version_frozen();
CREATE TRIGGER consent_signed_immutable
    BEFORE UPDATE OR DELETE ON consent_signedconsent
    FOR EACH ROW EXECUTE FUNCTION consent_refuse_change();
CREATE TRIGGER consent_withdrawal_immutable
    BEFORE UPDATE OR DELETE ON consent_consentwithdrawal
    FOR EACH ROW EXECUTE FUNCTION consent_refuse_change();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS consent_withdrawal_immutable ON consent_consentwithdrawal;
DROP TRIGGER IF EXISTS consent_signed_immutable ON consent_signedconsent;
DROP TRIGGER IF EXISTS consent_version_frozen ON consent_consentformversion;
DROP FUNCTION IF EXISTS consent_version_frozen();
DROP FUNCTION IF EXISTS consent_refuse_change();
"""


class Migration(migrations.Migration):
    dependencies = [("consent", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]

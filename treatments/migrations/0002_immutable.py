"""A read allergy test is final: the database refuses to change or delete it
(an unread test may be read once), and allergies found are never deleted."""

from django.db import migrations

FORWARD = """
CREATE FUNCTION treatments_allergy_test_final() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR OLD.read_at IS NOT NULL THEN
        RAISE EXCEPTION 'an allergy test that was given and read is never changed (% refused)', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- Only the reading may be added: what was given, where and when stays.
    IF NEW.patient_id <> OLD.patient_id OR NEW.given_at <> OLD.given_at
       OR NEW.given_by_id <> OLD.given_by_id OR NEW.site <> OLD.site
       OR NEW.read_due_at <> OLD.read_due_at
       OR NEW.batch_id IS DISTINCT FROM OLD.batch_id THEN
        RAISE EXCEPTION 'an allergy test given is never changed; only its reading is added'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER treatments_allergy_test_final
    BEFORE UPDATE OR DELETE ON treatments_allergytest
    FOR EACH ROW EXECUTE FUNCTION treatments_allergy_test_final();

-- What was tested is part of the test: fixed once the test is read.
CREATE FUNCTION treatments_allergy_tested_final() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM treatments_allergytest t
               WHERE t.id = COALESCE(NEW.allergytest_id, OLD.allergytest_id)
                 AND t.read_at IS NOT NULL) THEN
        RAISE EXCEPTION 'the ingredients of a read allergy test are never changed'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER treatments_allergy_ingredients_final
    BEFORE INSERT OR UPDATE OR DELETE ON treatments_allergytest_ingredients
    FOR EACH ROW EXECUTE FUNCTION treatments_allergy_tested_final();
CREATE TRIGGER treatments_allergy_products_final
    BEFORE INSERT OR UPDATE OR DELETE ON treatments_allergytest_products
    FOR EACH ROW EXECUTE FUNCTION treatments_allergy_tested_final();

CREATE FUNCTION treatments_allergy_kept() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a recorded allergy is never deleted'
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER treatments_allergy_kept
    BEFORE DELETE ON treatments_patientallergy
    FOR EACH ROW EXECUTE FUNCTION treatments_allergy_kept();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS treatments_allergy_products_final ON treatments_allergytest_products;
DROP TRIGGER IF EXISTS treatments_allergy_ingredients_final ON treatments_allergytest_ingredients;
DROP FUNCTION IF EXISTS treatments_allergy_tested_final();
DROP TRIGGER IF EXISTS treatments_allergy_kept ON treatments_patientallergy;
DROP FUNCTION IF EXISTS treatments_allergy_kept();
DROP TRIGGER IF EXISTS treatments_allergy_test_final ON treatments_allergytest;
DROP FUNCTION IF EXISTS treatments_allergy_test_final();
"""


class Migration(migrations.Migration):
    dependencies = [("treatments", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]

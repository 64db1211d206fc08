"""Anonymisation reaches the signed records without opening them to anything else.

When a record's retention ends (treatments.services.data_rights.patient_anonymise)
what names the patient goes, including from rows that are otherwise never
changed: the name typed and the drawn signature on a signed consent, and the
photograph of an allergy (patch) test site. The triggers that keep these rows
as signed ask `patients_anonymise_allows(old, new, fields)` and let an UPDATE
through only when

- the transaction has set `clinic.patient_anonymise` (transaction-local) to
  the id of the record being anonymised,
- the row belongs to that record or to a record merged into it, and
- nothing but the named fields changes.

The text signed, its fingerprint, the date and the signature's fingerprint
stay. Everything else stays refused. Written by hand; reversing restores the
functions of consent 0005 and treatments 0009.
"""

from django.db import migrations

FORWARD = """
CREATE FUNCTION patients_anonymise_allows(old_row jsonb, new_row jsonb, fields text[])
RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(current_setting('clinic.patient_anonymise', true), '') <> ''
       AND (old_row - fields) = (new_row - fields)
       AND EXISTS (
           SELECT 1 FROM patients_patient p
           WHERE p.id = (old_row ->> 'patient_id')::bigint
             AND NULLIF(current_setting('clinic.patient_anonymise', true), '')::bigint
                 IN (p.id, p.merged_into_id)
       )
$$;

CREATE OR REPLACE FUNCTION consent_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        -- A merge of duplicate records moves the consent to the record that
        -- stays, its text and signature untouched (patients_merge_relink).
        IF patients_merge_relink(to_jsonb(OLD), to_jsonb(NEW)) THEN
            RETURN NEW;
        END IF;
        -- Anonymisation removes the name typed and the drawn signature;
        -- the text signed, its fingerprint and the date stay.
        IF TG_TABLE_NAME = 'consent_signedconsent' AND patients_anonymise_allows(
            to_jsonb(OLD), to_jsonb(NEW), ARRAY['signer_name', 'signature']
        ) THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION '% is never changed or deleted (% refused)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE OR REPLACE FUNCTION treatments_allergy_test_final() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        -- A merge of duplicate records moves the test to the record that stays,
        -- what was given and read untouched (patients_merge_relink).
        IF patients_merge_relink(to_jsonb(OLD), to_jsonb(NEW)) THEN
            RETURN NEW;
        END IF;
        -- Anonymisation removes the photograph of the test site; the reading stays.
        IF patients_anonymise_allows(to_jsonb(OLD), to_jsonb(NEW), ARRAY['photo']) THEN
            RETURN NEW;
        END IF;
    END IF;
    IF TG_OP = 'DELETE' OR OLD.read_at IS NOT NULL THEN
        RAISE EXCEPTION 'an allergy test that was given and read is never changed (% refused)', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- Only the reading may be added: what was given, where and when, and
    -- when and why it was entered, stays.
    IF NEW.patient_id <> OLD.patient_id OR NEW.given_at <> OLD.given_at
       OR NEW.given_by_id <> OLD.given_by_id OR NEW.site <> OLD.site
       OR NEW.read_due_at <> OLD.read_due_at
       OR NEW.batch_id IS DISTINCT FROM OLD.batch_id
       OR NEW.entered_at IS DISTINCT FROM OLD.entered_at
       OR NEW.late_entry_reason IS DISTINCT FROM OLD.late_entry_reason THEN
        RAISE EXCEPTION 'an allergy test given is never changed; only its reading is added'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;
"""

# The functions exactly as consent 0005 and treatments 0009 made them, then the helper goes.
BACKWARD = """
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

CREATE OR REPLACE FUNCTION treatments_allergy_test_final() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- A merge of duplicate records moves the test to the record that stays,
    -- what was given and read untouched (patients_merge_relink).
    IF TG_OP = 'UPDATE' THEN
        IF patients_merge_relink(to_jsonb(OLD), to_jsonb(NEW)) THEN
            RETURN NEW;
        END IF;
    END IF;
    IF TG_OP = 'DELETE' OR OLD.read_at IS NOT NULL THEN
        RAISE EXCEPTION 'an allergy test that was given and read is never changed (% refused)', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- Only the reading may be added: what was given, where and when, and
    -- when and why it was entered, stays.
    IF NEW.patient_id <> OLD.patient_id OR NEW.given_at <> OLD.given_at
       OR NEW.given_by_id <> OLD.given_by_id OR NEW.site <> OLD.site
       OR NEW.read_due_at <> OLD.read_due_at
       OR NEW.batch_id IS DISTINCT FROM OLD.batch_id
       OR NEW.entered_at IS DISTINCT FROM OLD.entered_at
       OR NEW.late_entry_reason IS DISTINCT FROM OLD.late_entry_reason THEN
        RAISE EXCEPTION 'an allergy test given is never changed; only its reading is added'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;

DROP FUNCTION IF EXISTS patients_anonymise_allows(jsonb, jsonb, text[]);
"""


class Migration(migrations.Migration):
    dependencies = [
        ("consent", "0007_documents_pipeline"),
        ("treatments", "0020_data_rights_follow_merge"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]

"""A link of the audit trail's hash chain may only be the next one.

The application role may INSERT into `clinic_auditseal`, and a link names its
event without a foreign key (an event deleted by the owner must leave its link
behind for `audit_verify` to name). Without a check, a link could be slipped
in with a number out of the chain (negative, or far ahead) or for an event not
yet written, so that event was never sealed, or later sealing chained from the
forged link. A trigger now refuses any link whose number is not the last one
plus one (1 for the first), whose event does not exist, or whose event already
has a link. It takes the sealer's advisory lock (clinic/auditchain.py) first,
so two writers cannot both check against the same last link.

The owner can still disable the trigger; `audit_verify` names such a link.
"""

from django.db import migrations

FORWARD = """
CREATE FUNCTION clinic_auditseal_next_link_only() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    expected bigint;
BEGIN
    -- One writer of links at a time: a second one waits here until the first
    -- commits, then reads its links (each statement below reads afresh).
    -- The key is clinic.auditchain._SEALER_LOCK ("audit" in ASCII).
    PERFORM pg_advisory_xact_lock(418581342580);
    SELECT coalesce(max(seq), 0) + 1 INTO expected FROM clinic_auditseal;
    IF NEW.seq IS DISTINCT FROM expected THEN
        RAISE EXCEPTION 'audit chain link % refused: the next link is %', NEW.seq, expected
            USING ERRCODE = 'check_violation';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM clinic_auditevent WHERE id = NEW.event_id) THEN
        RAISE EXCEPTION 'audit chain link % refused: audit event % does not exist',
            NEW.seq, NEW.event_id
            USING ERRCODE = 'check_violation';
    END IF;
    IF EXISTS (SELECT 1 FROM clinic_auditseal WHERE event_id = NEW.event_id) THEN
        RAISE EXCEPTION 'audit chain link % refused: audit event % is already sealed',
            NEW.seq, NEW.event_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER clinic_auditseal_next_link_only
    BEFORE INSERT ON clinic_auditseal
    FOR EACH ROW EXECUTE FUNCTION clinic_auditseal_next_link_only();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS clinic_auditseal_next_link_only ON clinic_auditseal;
DROP FUNCTION IF EXISTS clinic_auditseal_next_link_only();
"""


class Migration(migrations.Migration):
    dependencies = [("clinic", "0008_audit_sign_in_unlocked")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]

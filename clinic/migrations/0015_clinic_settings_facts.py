"""A change of the clinic's settings is a change of the clinical facts
(clinic migration 0012): the week view judges safe-to-treat with the
settings' validity windows (a medical history's days, a negative allergy
reading's months) and draws its day from the opening hours, so a saved
version gives the facts' version a new token and no week kept in Redis shows
"safe to treat" under the old windows."""

from django.db import migrations

TABLE = "clinic_clinicsettings"

FORWARD = f"""
CREATE CONSTRAINT TRIGGER {TABLE}_facts_changed
    AFTER INSERT OR DELETE OR UPDATE ON {TABLE}
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION clinic_facts_changed();
CREATE TRIGGER {TABLE}_facts_truncated
    AFTER TRUNCATE ON {TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION clinic_facts_truncated();
"""

BACKWARD = f"""
DROP TRIGGER IF EXISTS {TABLE}_facts_changed ON {TABLE};
DROP TRIGGER IF EXISTS {TABLE}_facts_truncated ON {TABLE};
"""


class Migration(migrations.Migration):
    dependencies = [
        ("clinic", "0012_facts_version"),
        ("clinic", "0014_clinic_settings"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]

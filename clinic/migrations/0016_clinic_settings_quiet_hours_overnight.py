"""Quiet hours run overnight: they start between 19:00 and 23:00 and end
between 06:00 and 09:00 (clinic/clinic_settings_rules.py). Before, only a
start equal to the end was refused, so 08:00 to 21:00 (the night left open)
or 12:00 to 12:01 were accepted.

The constraint is added NOT VALID: the settings are append-only, and a version
saved before keeps its values in the history; every version saved from now on
is checked. If the clinic's current version is outside the new bounds, the
settings page shows the field's error at the next save."""

from datetime import time

from django.db import migrations, models

CONSTRAINT = models.CheckConstraint(
    condition=models.Q(
        quiet_hours_start__gte=time(19),
        quiet_hours_start__lte=time(23),
        quiet_hours_end__gte=time(6),
        quiet_hours_end__lte=time(9),
    ),
    name="clinicsettings_quiet_hours_overnight",
)


class Migration(migrations.Migration):
    dependencies = [("clinic", "0015_clinic_settings_facts")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddConstraint(model_name="clinicsettings", constraint=CONSTRAINT)
            ],
            database_operations=[
                migrations.RunSQL(
                    sql=(
                        "ALTER TABLE clinic_clinicsettings "
                        "ADD CONSTRAINT clinicsettings_quiet_hours_overnight CHECK ("
                        "quiet_hours_start >= '19:00' AND quiet_hours_start <= '23:00' "
                        "AND quiet_hours_end >= '06:00' AND quiet_hours_end <= '09:00'"
                        ") NOT VALID"
                    ),
                    reverse_sql=(
                        "ALTER TABLE clinic_clinicsettings "
                        "DROP CONSTRAINT clinicsettings_quiet_hours_overnight"
                    ),
                )
            ],
        )
    ]

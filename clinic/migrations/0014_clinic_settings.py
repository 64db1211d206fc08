"""The clinic's settings in the database (clinic.ClinicSettings): append-only
versions, the newest being the clinic's, and the first row seeded from the
defaults and the environment variables that held these settings before
(CLINIC_NAME, CLINIC_PHONE, CLINIC_ADDRESS, MEDICAL_HISTORY_VALID_DAYS,
ALLERGY_TEST_VALID_MONTHS, REMINDER_LEAD_HOURS, QUIET_HOURS_START/END), so an
existing installation keeps its values. A value outside the safe bounds
(clinic/clinic_settings_rules.py) is brought inside them; quiet hours switched
off (start equal to end) are no longer allowed and take the defaults."""

import os
from datetime import time

import django.db.models.deletion
import django.db.models.functions.math
import django.db.models.lookups
import django.utils.timezone
import phonenumber_field.modelfields
from django.conf import settings
from django.db import migrations, models

# The defaults as they stood when the settings moved (clinic_settings_rules.DEFAULTS).
_DEFAULT_OPENING = ((time(8), time(19)),) * 6 + ((None, None),)


def _int(name, default, low, high):
    try:
        value = int(os.environ.get(name, "") or default)
    except ValueError:
        value = default
    return min(max(value, low), high)


def _clock(name, default):
    try:
        hours, minutes = (os.environ.get(name, "") or default).split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        hours, minutes = default.split(":")
        return time(int(hours), int(minutes))


def _phone(value):
    import phonenumbers
    from django.conf import settings as django_settings

    if not value.strip():
        return ""
    region = getattr(django_settings, "PHONENUMBER_DEFAULT_REGION", None) or "GB"
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return ""
    if not phonenumbers.is_valid_number(number):
        return ""
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def seed(apps, schema_editor):
    ClinicSettings = apps.get_model("clinic", "ClinicSettings")
    if ClinicSettings.objects.exists():
        return
    leads = []
    for part in (os.environ.get("REMINDER_LEAD_HOURS", "") or "48,2").split(","):
        try:
            hours = int(part)
        except ValueError:
            continue
        if 1 <= hours <= 168 and hours not in leads:
            leads.append(hours)
    leads = sorted(leads, reverse=True)[:3] or [48, 2]
    leads += [None] * (3 - len(leads))
    start = _clock("QUIET_HOURS_START", "21:00")
    end = _clock("QUIET_HOURS_END", "08:00")
    if start == end:
        start, end = time(21), time(8)
    hours = {}
    for day, (opens, closes) in zip(
        ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
        _DEFAULT_OPENING,
        strict=True,
    ):
        hours[f"{day}_opens"], hours[f"{day}_closes"] = opens, closes
    ClinicSettings.objects.create(
        clinic_name=(os.environ.get("CLINIC_NAME", "") or "Meso Clinic")[:100],
        clinic_address=os.environ.get("CLINIC_ADDRESS", "")[:300],
        clinic_phone=_phone(os.environ.get("CLINIC_PHONE", "")),
        clinic_email="",
        reminder_first_hours=leads[0],
        reminder_second_hours=leads[1],
        reminder_third_hours=leads[2],
        quiet_hours_start=start,
        quiet_hours_end=end,
        medical_history_valid_days=_int("MEDICAL_HISTORY_VALID_DAYS", 365, 30, 365),
        allergy_test_valid_months=_int("ALLERGY_TEST_VALID_MONTHS", 6, 1, 6),
        default_session_minutes=45,
        adult_record_retention_years=8,
        child_record_retention_until_age=25,
        reason="The settings of the environment, when they moved to the clinic's settings page.",
        **hours,
    )


# Append-only: UPDATE, DELETE and TRUNCATE refused in the database, even to
# the owner (clinic_refuse_truncate is migration 0005's).
APPEND_ONLY = """
CREATE FUNCTION clinic_settings_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'the clinic settings are append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER clinic_clinicsettings_append_only
    BEFORE UPDATE OR DELETE ON clinic_clinicsettings
    FOR EACH ROW EXECUTE FUNCTION clinic_settings_append_only();
CREATE TRIGGER clinic_clinicsettings_refuse_truncate
    BEFORE TRUNCATE ON clinic_clinicsettings
    FOR EACH STATEMENT EXECUTE FUNCTION clinic_refuse_truncate();
"""
APPEND_ONLY_BACKWARD = """
DROP TRIGGER IF EXISTS clinic_clinicsettings_refuse_truncate ON clinic_clinicsettings;
DROP TRIGGER IF EXISTS clinic_clinicsettings_append_only ON clinic_clinicsettings;
DROP FUNCTION IF EXISTS clinic_settings_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("clinic", "0013_staff"),
    ]

    operations = [
        migrations.CreateModel(
            name="ClinicSettings",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "created_at",
                    models.DateTimeField(
                        default=django.utils.timezone.now, verbose_name="changed at"
                    ),
                ),
                (
                    "reason",
                    models.CharField(
                        blank=True, max_length=300, verbose_name="reason for the change"
                    ),
                ),
                ("clinic_name", models.CharField(max_length=100, verbose_name="clinic name")),
                (
                    "clinic_address",
                    models.TextField(blank=True, max_length=300, verbose_name="address"),
                ),
                (
                    "clinic_phone",
                    phonenumber_field.modelfields.PhoneNumberField(
                        blank=True, max_length=128, region=None, verbose_name="phone"
                    ),
                ),
                (
                    "clinic_email",
                    models.EmailField(blank=True, max_length=254, verbose_name="email"),
                ),
                (
                    "monday_opens",
                    models.TimeField(blank=True, null=True, verbose_name="Monday opens"),
                ),
                (
                    "monday_closes",
                    models.TimeField(blank=True, null=True, verbose_name="Monday closes"),
                ),
                (
                    "tuesday_opens",
                    models.TimeField(blank=True, null=True, verbose_name="Tuesday opens"),
                ),
                (
                    "tuesday_closes",
                    models.TimeField(blank=True, null=True, verbose_name="Tuesday closes"),
                ),
                (
                    "wednesday_opens",
                    models.TimeField(blank=True, null=True, verbose_name="Wednesday opens"),
                ),
                (
                    "wednesday_closes",
                    models.TimeField(blank=True, null=True, verbose_name="Wednesday closes"),
                ),
                (
                    "thursday_opens",
                    models.TimeField(blank=True, null=True, verbose_name="Thursday opens"),
                ),
                (
                    "thursday_closes",
                    models.TimeField(blank=True, null=True, verbose_name="Thursday closes"),
                ),
                (
                    "friday_opens",
                    models.TimeField(blank=True, null=True, verbose_name="Friday opens"),
                ),
                (
                    "friday_closes",
                    models.TimeField(blank=True, null=True, verbose_name="Friday closes"),
                ),
                (
                    "saturday_opens",
                    models.TimeField(blank=True, null=True, verbose_name="Saturday opens"),
                ),
                (
                    "saturday_closes",
                    models.TimeField(blank=True, null=True, verbose_name="Saturday closes"),
                ),
                (
                    "sunday_opens",
                    models.TimeField(blank=True, null=True, verbose_name="Sunday opens"),
                ),
                (
                    "sunday_closes",
                    models.TimeField(blank=True, null=True, verbose_name="Sunday closes"),
                ),
                (
                    "reminder_first_hours",
                    models.PositiveSmallIntegerField(verbose_name="first reminder (hours before)"),
                ),
                (
                    "reminder_second_hours",
                    models.PositiveSmallIntegerField(
                        blank=True, null=True, verbose_name="second reminder (hours before)"
                    ),
                ),
                (
                    "reminder_third_hours",
                    models.PositiveSmallIntegerField(
                        blank=True, null=True, verbose_name="third reminder (hours before)"
                    ),
                ),
                ("quiet_hours_start", models.TimeField(verbose_name="quiet hours start")),
                ("quiet_hours_end", models.TimeField(verbose_name="quiet hours end")),
                (
                    "medical_history_valid_days",
                    models.PositiveSmallIntegerField(
                        verbose_name="a medical history is valid for (days)"
                    ),
                ),
                (
                    "allergy_test_valid_months",
                    models.PositiveSmallIntegerField(
                        verbose_name="a negative allergy reading is valid for (months)"
                    ),
                ),
                (
                    "default_session_minutes",
                    models.PositiveSmallIntegerField(
                        verbose_name="default session length (minutes)"
                    ),
                ),
                (
                    "adult_record_retention_years",
                    models.PositiveSmallIntegerField(
                        verbose_name="adult records kept after the last treatment (years)"
                    ),
                ),
                (
                    "child_record_retention_until_age",
                    models.PositiveSmallIntegerField(
                        verbose_name="records of patients treated as children kept until age"
                    ),
                ),
                (
                    "changed_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="changed by",
                    ),
                ),
            ],
            options={
                "verbose_name": "clinic settings",
                "verbose_name_plural": "clinic settings",
                "ordering": ["-id"],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(
                            ("medical_history_valid_days__gte", 30),
                            ("medical_history_valid_days__lte", 365),
                        ),
                        name="clinicsettings_medical_history_valid_days_range",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            ("allergy_test_valid_months__gte", 1),
                            ("allergy_test_valid_months__lte", 6),
                        ),
                        name="clinicsettings_allergy_test_valid_months_range",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            ("default_session_minutes__gte", 10),
                            ("default_session_minutes__lte", 240),
                        ),
                        name="clinicsettings_default_session_minutes_range",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            ("adult_record_retention_years__gte", 8),
                            ("adult_record_retention_years__lte", 30),
                        ),
                        name="clinicsettings_adult_record_retention_years_range",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            ("child_record_retention_until_age__gte", 25),
                            ("child_record_retention_until_age__lte", 40),
                        ),
                        name="clinicsettings_child_record_retention_until_age_range",
                    ),
                    models.CheckConstraint(
                        condition=django.db.models.lookups.Exact(
                            django.db.models.functions.math.Mod("default_session_minutes", 5), 0
                        ),
                        name="clinicsettings_session_minutes_step",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            ("reminder_first_hours__gte", 1),
                            ("reminder_first_hours__lte", 168),
                            models.Q(
                                models.Q(
                                    ("reminder_second_hours__isnull", True),
                                    ("reminder_third_hours__isnull", True),
                                ),
                                models.Q(
                                    ("reminder_second_hours__gte", 1),
                                    ("reminder_second_hours__isnull", False),
                                    ("reminder_second_hours__lt", models.F("reminder_first_hours")),
                                    ("reminder_third_hours__isnull", True),
                                ),
                                models.Q(
                                    ("reminder_second_hours__gte", 1),
                                    ("reminder_second_hours__isnull", False),
                                    ("reminder_second_hours__lt", models.F("reminder_first_hours")),
                                    ("reminder_third_hours__gte", 1),
                                    ("reminder_third_hours__isnull", False),
                                    ("reminder_third_hours__lt", models.F("reminder_second_hours")),
                                ),
                                _connector="OR",
                            ),
                        ),
                        name="clinicsettings_reminders_ordered_in_range",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            ("quiet_hours_start", models.F("quiet_hours_end")), _negated=True
                        ),
                        name="clinicsettings_quiet_hours_differ",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(
                                ("monday_closes__isnull", True), ("monday_opens__isnull", True)
                            ),
                            models.Q(
                                ("monday_closes__gt", models.F("monday_opens")),
                                ("monday_closes__isnull", False),
                                ("monday_opens__isnull", False),
                            ),
                            _connector="OR",
                        ),
                        name="clinicsettings_monday_closes_after_opens",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(
                                ("tuesday_closes__isnull", True), ("tuesday_opens__isnull", True)
                            ),
                            models.Q(
                                ("tuesday_closes__gt", models.F("tuesday_opens")),
                                ("tuesday_closes__isnull", False),
                                ("tuesday_opens__isnull", False),
                            ),
                            _connector="OR",
                        ),
                        name="clinicsettings_tuesday_closes_after_opens",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(
                                ("wednesday_closes__isnull", True),
                                ("wednesday_opens__isnull", True),
                            ),
                            models.Q(
                                ("wednesday_closes__gt", models.F("wednesday_opens")),
                                ("wednesday_closes__isnull", False),
                                ("wednesday_opens__isnull", False),
                            ),
                            _connector="OR",
                        ),
                        name="clinicsettings_wednesday_closes_after_opens",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(
                                ("thursday_closes__isnull", True), ("thursday_opens__isnull", True)
                            ),
                            models.Q(
                                ("thursday_closes__gt", models.F("thursday_opens")),
                                ("thursday_closes__isnull", False),
                                ("thursday_opens__isnull", False),
                            ),
                            _connector="OR",
                        ),
                        name="clinicsettings_thursday_closes_after_opens",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(
                                ("friday_closes__isnull", True), ("friday_opens__isnull", True)
                            ),
                            models.Q(
                                ("friday_closes__gt", models.F("friday_opens")),
                                ("friday_closes__isnull", False),
                                ("friday_opens__isnull", False),
                            ),
                            _connector="OR",
                        ),
                        name="clinicsettings_friday_closes_after_opens",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(
                                ("saturday_closes__isnull", True), ("saturday_opens__isnull", True)
                            ),
                            models.Q(
                                ("saturday_closes__gt", models.F("saturday_opens")),
                                ("saturday_closes__isnull", False),
                                ("saturday_opens__isnull", False),
                            ),
                            _connector="OR",
                        ),
                        name="clinicsettings_saturday_closes_after_opens",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(
                                ("sunday_closes__isnull", True), ("sunday_opens__isnull", True)
                            ),
                            models.Q(
                                ("sunday_closes__gt", models.F("sunday_opens")),
                                ("sunday_closes__isnull", False),
                                ("sunday_opens__isnull", False),
                            ),
                            _connector="OR",
                        ),
                        name="clinicsettings_sunday_closes_after_opens",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("clinic_name", ""), _negated=True),
                        name="clinicsettings_clinic_name_given",
                    ),
                ],
            },
        ),
        migrations.RunPython(seed, migrations.RunPython.noop),
        migrations.RunSQL(APPEND_ONLY, APPEND_ONLY_BACKWARD),
    ]

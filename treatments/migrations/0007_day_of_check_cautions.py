"""The day-of-treatment answers and the cautions acknowledged, kept with the
session record and, like it, never changed or deleted (the append-only
trigger of migration 0004)."""

import django.contrib.postgres.fields
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

TABLES = ("treatments_dayofcheck", "treatments_cautionacknowledgement")

FORWARD = "".join(
    f"""
CREATE TRIGGER {table}_append_only
    BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION treatments_append_only();
"""
    for table in TABLES
)
BACKWARD = "".join(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table};\n" for table in TABLES)

AREAS = [
    ("face", "Face"),
    ("under_eye", "Under-eye"),
    ("neck", "Neck"),
    ("decolletage", "Décolletage"),
    ("hands", "Hands"),
    ("scalp", "Scalp"),
    ("abdomen", "Abdomen"),
    ("flanks", "Flanks and hips"),
    ("thighs", "Thighs"),
    ("buttocks", "Buttocks"),
    ("arms", "Arms"),
    ("legs", "Legs"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("treatments", "0006_allergy_entered_at"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="DayOfCheck",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("unwell", models.BooleanField(verbose_name="unwell today")),
                ("pregnant", models.BooleanField(verbose_name="pregnant or possibly pregnant")),
                ("breastfeeding", models.BooleanField(verbose_name="breastfeeding")),
                (
                    "skin_infection",
                    models.BooleanField(verbose_name="skin infection in or near a treated area"),
                ),
                (
                    "active_acne",
                    models.BooleanField(verbose_name="active acne in or near a treated area"),
                ),
                (
                    "cold_sore",
                    models.BooleanField(verbose_name="cold sore in or near a treated area"),
                ),
                (
                    "new_medicine_or_allergy",
                    models.BooleanField(verbose_name="new medicine or allergy since the history"),
                ),
                ("asked_at", models.DateTimeField(editable=False)),
                (
                    "asked_by",
                    models.ForeignKey(
                        editable=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "session",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="day_of_check",
                        to="treatments.sessionrecord",
                    ),
                ),
            ],
            options={
                "verbose_name": "day-of-treatment check",
                "verbose_name_plural": "day-of-treatment checks",
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(
                            ("active_acne", False),
                            ("breastfeeding", False),
                            ("cold_sore", False),
                            ("new_medicine_or_allergy", False),
                            ("pregnant", False),
                            ("skin_infection", False),
                            ("unwell", False),
                        ),
                        name="day_of_check_all_clear",
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="CautionAcknowledgement",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("code", models.CharField(max_length=40)),
                ("wording", models.TextField(max_length=1000)),
                (
                    "areas",
                    django.contrib.postgres.fields.ArrayField(
                        base_field=models.CharField(choices=AREAS, max_length=20),
                        blank=True,
                        help_text="The treated areas the caution concerns; empty: every area.",
                        size=None,
                    ),
                ),
                ("acknowledged_at", models.DateTimeField(editable=False)),
                (
                    "acknowledged_by",
                    models.ForeignKey(
                        editable=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "session",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="caution_acknowledgements",
                        to="treatments.sessionrecord",
                    ),
                ),
            ],
            options={
                "verbose_name": "caution acknowledged",
                "verbose_name_plural": "cautions acknowledged",
                "ordering": ["session", "id"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("session", "code"), name="caution_once_per_session"
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("wording", ""), _negated=True),
                        name="caution_wording_kept",
                    ),
                ],
            },
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
    ]

"""Where on the diagram a cocktail line was given: the points tapped for it,
each a view and a place on it (fractions of its width and height). Part of
the session record, so, like its lines, never changed or deleted (the
append-only trigger of migration 0004) and never truncated (clinic migration
0005's guard)."""

import django.db.models.deletion
from django.db import migrations, models

TABLE = "treatments_injectionpoint"

FORWARD = f"""
CREATE TRIGGER {TABLE}_append_only
    BEFORE UPDATE OR DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION treatments_append_only();
CREATE TRIGGER {TABLE}_refuse_truncate
    BEFORE TRUNCATE ON {TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION clinic_refuse_truncate();
"""
BACKWARD = f"""
DROP TRIGGER IF EXISTS {TABLE}_refuse_truncate ON {TABLE};
DROP TRIGGER IF EXISTS {TABLE}_append_only ON {TABLE};
"""


class Migration(migrations.Migration):
    dependencies = [
        ("treatments", "0016_adverse_event_follow_up"),
        ("clinic", "0005_audit_chain_truncate_guard"),
    ]

    operations = [
        migrations.CreateModel(
            name="InjectionPoint",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("position", models.PositiveSmallIntegerField()),
                (
                    "view",
                    models.CharField(
                        choices=[
                            ("face", "Face"),
                            ("body_front", "Body, front"),
                            ("body_back", "Body, back"),
                            ("scalp", "Scalp, from above"),
                        ],
                        max_length=12,
                        verbose_name="view",
                    ),
                ),
                ("x", models.DecimalField(decimal_places=4, max_digits=5)),
                ("y", models.DecimalField(decimal_places=4, max_digits=5)),
                (
                    "line",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="points",
                        to="treatments.cocktailline",
                    ),
                ),
            ],
            options={
                "verbose_name": "injection point",
                "verbose_name_plural": "injection points",
                "ordering": ["line", "position"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("line", "position"), name="injection_point_once"
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("position__lt", 200)),
                        name="injection_points_per_line",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            ("x__gte", 0), ("x__lte", 1), ("y__gte", 0), ("y__lte", 1)
                        ),
                        name="injection_point_on_the_view",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            ("view__in", ["face", "body_front", "body_back", "scalp"])
                        ),
                        name="injection_point_known_view",
                    ),
                ],
            },
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
    ]

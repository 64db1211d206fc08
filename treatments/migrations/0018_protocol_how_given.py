"""A protocol says how its cocktail is usually given (technique, depth,
needle, device), each optional, within the cocktail line's own bounds
(treatments.models.injection)."""

from decimal import Decimal

import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("treatments", "0017_injection_points"),
    ]

    operations = [
        migrations.AddField(
            model_name="protocol",
            name="default_depth_mm",
            field=models.DecimalField(
                blank=True,
                decimal_places=1,
                max_digits=4,
                null=True,
                validators=[
                    django.core.validators.MinValueValidator(
                        Decimal("0.1"), message="Depth is between 0.1 and 13 mm."
                    ),
                    django.core.validators.MaxValueValidator(
                        Decimal("13"), message="Depth is between 0.1 and 13 mm."
                    ),
                ],
                verbose_name="depth (mm)",
            ),
        ),
        migrations.AddField(
            model_name="protocol",
            name="default_device",
            field=models.CharField(
                blank=True,
                choices=[("syringe", "Syringe"), ("meso_gun", "Meso-gun (injector)")],
                max_length=10,
                verbose_name="given with",
            ),
        ),
        migrations.AddField(
            model_name="protocol",
            name="default_needle_gauge",
            field=models.PositiveSmallIntegerField(
                blank=True,
                null=True,
                validators=[
                    django.core.validators.MinValueValidator(
                        18, message="Needle gauge is between 18G and 34G."
                    ),
                    django.core.validators.MaxValueValidator(
                        34, message="Needle gauge is between 18G and 34G."
                    ),
                ],
                verbose_name="needle (gauge)",
            ),
        ),
        migrations.AddField(
            model_name="protocol",
            name="default_technique",
            field=models.CharField(
                blank=True,
                choices=[
                    ("nappage", "Nappage"),
                    ("papule", "Papule"),
                    ("point", "Point-by-point"),
                    ("linear", "Linear threading"),
                ],
                max_length=10,
                verbose_name="technique",
            ),
        ),
        migrations.AddConstraint(
            model_name="protocol",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("default_depth_mm__isnull", True),
                    models.Q(
                        ("default_depth_mm__gte", Decimal("0.1")),
                        ("default_depth_mm__lte", Decimal("13")),
                    ),
                    _connector="OR",
                ),
                name="protocol_depth_range",
                violation_error_message="Depth is between 0.1 and 13 mm.",
            ),
        ),
        migrations.AddConstraint(
            model_name="protocol",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("default_needle_gauge__isnull", True),
                    models.Q(("default_needle_gauge__gte", 18), ("default_needle_gauge__lte", 34)),
                    _connector="OR",
                ),
                name="protocol_needle_range",
                violation_error_message="Needle gauge is between 18G and 34G.",
            ),
        ),
        migrations.AddConstraint(
            model_name="protocol",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("default_technique__in", ["", "nappage", "papule", "point", "linear"])
                ),
                name="protocol_known_technique",
            ),
        ),
        migrations.AddConstraint(
            model_name="protocol",
            constraint=models.CheckConstraint(
                condition=models.Q(("default_device__in", ["", "syringe", "meso_gun"])),
                name="protocol_known_device",
            ),
        ),
    ]

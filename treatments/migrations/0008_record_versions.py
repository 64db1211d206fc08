"""Every editable record carries a version (the catalogue, rooms, bookings):
the services raise it at every save, and an edit opened at an older version is
refused (clinic.concurrency). Bookings and allergy tests keep the one-time
token of the form that created them, so the same form sent twice makes one row.

Adding the columns rewrites no row, so the trigger that keeps a given allergy
test unchanged (migrations 0002 and 0006) is not involved.
"""

from django.db import migrations, models

MODELS_WITH_VERSION = ("ingredient", "product", "aftercaresheet", "protocol", "room", "booking")


class Migration(migrations.Migration):
    dependencies = [("treatments", "0007_day_of_check_cautions")]

    operations: list[migrations.operations.base.Operation] = [
        *(
            migrations.AddField(
                model_name=name,
                name="version",
                field=models.PositiveIntegerField(
                    default=1, editable=False, verbose_name="record version"
                ),
            )
            for name in MODELS_WITH_VERSION
        ),
        migrations.AddField(
            model_name="booking",
            name="submission_token",
            field=models.UUIDField(blank=True, editable=False, null=True, unique=True),
        ),
        migrations.AddField(
            model_name="allergytest",
            name="submission_token",
            field=models.UUIDField(blank=True, editable=False, null=True, unique=True),
        ),
    ]

"""Every editable record carries a version: the patient's contact details.

The services raise it at every save, and an edit opened at an older version is
refused (clinic.concurrency). Existing rows start at 1; adding a column with a
constant default rewrites no row.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("patients", "0007_search_folded")]

    operations: list[migrations.operations.base.Operation] = [
        migrations.AddField(
            model_name="patient",
            name="version",
            field=models.PositiveIntegerField(
                default=1, editable=False, verbose_name="record version"
            ),
        ),
    ]

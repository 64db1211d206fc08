"""A version on the draft of a consent form (an edit opened at an older one is
refused: clinic.concurrency), and the one-time token of the signing page on a
signed consent (the same page sent twice signs once).

Adding the columns rewrites no row, so the triggers that refuse UPDATE on
signed consents and published versions (migration 0002) are not involved.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("consent", "0003_signedconsent_sections")]

    operations: list[migrations.operations.base.Operation] = [
        migrations.AddField(
            model_name="consentformversion",
            name="version",
            field=models.PositiveIntegerField(
                default=1, editable=False, verbose_name="record version"
            ),
        ),
        migrations.AddField(
            model_name="signedconsent",
            name="submission_token",
            field=models.UUIDField(blank=True, editable=False, null=True, unique=True),
        ),
    ]

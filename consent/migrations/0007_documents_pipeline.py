"""Signed-consent PDFs join the clinic's one document pipeline
(clinic.documents): a queued PDF carries the moment it is looked at again
(`next_attempt_at`), and the constraints and index take the pipeline's names.

Rows keep their meaning: a PDF still queued is looked at again two minutes
after it was last queued, as the sweep did before; one queued after five
attempts, which the old sweep no longer queued and which showed "being
prepared" for ever, is failed ("interrupted"), so staff see it and can try
again. Ready and failed PDFs stay as they are, with no next attempt.
"""

from datetime import timedelta

import django.utils.timezone
from django.db import migrations, models
from django.db.models import F

import clinic.documents

# The pipeline's numbers at the time of this migration.
REQUEUE_AFTER = timedelta(minutes=2)
MAX_ATTEMPTS = 5


def states_keep_meaning(apps, schema_editor):
    pdfs = apps.get_model("consent", "SignedConsentPDF").objects
    pdfs.exclude(status="queued").update(next_attempt_at=None)
    queued = pdfs.filter(status="queued")
    queued.filter(attempts__gte=MAX_ATTEMPTS).update(
        status="failed", next_attempt_at=None, error="interrupted"
    )
    queued.filter(attempts__lt=MAX_ATTEMPTS).update(next_attempt_at=F("queued_at") + REQUEUE_AFTER)


def states_back(apps, schema_editor):
    """Nothing to undo: the column goes, failed rows stay failed."""


class Migration(migrations.Migration):
    dependencies = [
        ("consent", "0006_patient_link_follows_merge"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="signedconsentpdf",
            name="consent_pdf_ready_has_file",
        ),
        migrations.RemoveIndex(
            model_name="signedconsentpdf",
            name="consent_pdf_status_idx",
        ),
        migrations.AddField(
            model_name="signedconsentpdf",
            name="next_attempt_at",
            field=models.DateTimeField(
                blank=True, default=clinic.documents.next_attempt_default, editable=False, null=True
            ),
        ),
        migrations.AlterField(
            model_name="signedconsentpdf",
            name="file",
            field=models.FileField(
                blank=True, editable=False, upload_to=clinic.documents.document_file_name
            ),
        ),
        migrations.AlterField(
            model_name="signedconsentpdf",
            name="queued_at",
            field=models.DateTimeField(default=django.utils.timezone.now, editable=False),
        ),
        migrations.AddIndex(
            model_name="signedconsentpdf",
            index=models.Index(
                fields=["status", "next_attempt_at"], name="consent_signedconsentpdf_due"
            ),
        ),
        migrations.AddConstraint(
            model_name="signedconsentpdf",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("status", "ready"), _negated=True),
                    models.Q(
                        models.Q(("file", ""), _negated=True),
                        models.Q(("sha256", ""), _negated=True),
                    ),
                    _connector="OR",
                ),
                name="consent_signedconsentpdf_ready_has_file",
            ),
        ),
        migrations.AddConstraint(
            model_name="signedconsentpdf",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("status", "queued"), _negated=True),
                    ("next_attempt_at__isnull", False),
                    _connector="OR",
                ),
                name="consent_signedconsentpdf_queued_has_next",
            ),
        ),
        # Last: the schema is complete (rows with pending checks block later DDL).
        migrations.RunPython(states_keep_meaning, states_back, elidable=False),
    ]

"""Aftercare sheets join the clinic's one document pipeline
(clinic.documents), and their emailed link is tracked on the sheet.

- `next_attempt_at`: a sheet still queued is looked at again two minutes
  after it was last queued, as the sweep did before; one queued after five
  attempts is failed ("interrupted"), as the old sweep would have made it.
- `email_status`: "sent" for a sheet with a link already made (the code
  before this made the link, then emailed it; whether that email left is
  not known, and the link stays usable as it was); "pending" for a sheet
  never made yet whose patient has an email address (the first render
  would have emailed it); "none" otherwise.
- `DownloadLink.sent_at`: links made before open from when they were made,
  as they did; a new link opens only once its email is recorded as sent.
"""

from datetime import timedelta

import django.utils.timezone
from django.db import migrations, models
from django.db.models import Exists, F, Max, OuterRef

import clinic.documents

# The pipeline's numbers at the time of this migration.
REQUEUE_AFTER = timedelta(minutes=2)
MAX_ATTEMPTS = 5


def states_keep_meaning(apps, schema_editor):
    documents = apps.get_model("treatments", "PatientDocument").objects
    links = apps.get_model("treatments", "DownloadLink").objects
    links.filter(sent_at__isnull=True).update(sent_at=F("created_at"))
    documents.exclude(status="queued").update(next_attempt_at=None)
    queued = documents.filter(status="queued")
    queued.filter(attempts__gte=MAX_ATTEMPTS).update(
        status="failed", next_attempt_at=None, error="interrupted"
    )
    queued.filter(attempts__lt=MAX_ATTEMPTS).update(next_attempt_at=F("queued_at") + REQUEUE_AFTER)
    linked = links.filter(document=OuterRef("pk"))
    for pk, last in (
        documents.filter(Exists(linked))
        .annotate(last=Max("links__created_at"))
        .values_list("pk", "last")
    ):
        documents.filter(pk=pk).update(email_status="sent", emailed_at=last)
    documents.filter(~Exists(linked), generated_at__isnull=True).exclude(patient__email="").update(
        email_status="pending"
    )


def states_back(apps, schema_editor):
    """Nothing to undo: the columns go, failed rows stay failed."""


class Migration(migrations.Migration):
    dependencies = [
        ("treatments", "0011_reminder_claim_lease"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="patientdocument",
            name="document_ready_has_file",
        ),
        migrations.RemoveIndex(
            model_name="patientdocument",
            name="document_status_idx",
        ),
        migrations.AddField(
            model_name="downloadlink",
            name="sent_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="patientdocument",
            name="email_claimed_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="patientdocument",
            name="email_error",
            field=models.CharField(blank=True, editable=False, max_length=200),
        ),
        migrations.AddField(
            model_name="patientdocument",
            name="email_status",
            field=models.CharField(
                choices=[
                    ("none", "not emailed"),
                    ("pending", "waiting to be sent"),
                    ("sending", "being sent"),
                    ("sent", "sent"),
                    ("failed", "email failed"),
                ],
                default="none",
                editable=False,
                max_length=10,
            ),
        ),
        migrations.AddField(
            model_name="patientdocument",
            name="emailed_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="patientdocument",
            name="next_attempt_at",
            field=models.DateTimeField(
                blank=True, default=clinic.documents.next_attempt_default, editable=False, null=True
            ),
        ),
        migrations.AlterField(
            model_name="patientdocument",
            name="file",
            field=models.FileField(
                blank=True, editable=False, upload_to=clinic.documents.document_file_name
            ),
        ),
        migrations.AlterField(
            model_name="patientdocument",
            name="queued_at",
            field=models.DateTimeField(default=django.utils.timezone.now, editable=False),
        ),
        migrations.AddIndex(
            model_name="patientdocument",
            index=models.Index(
                fields=["status", "next_attempt_at"], name="treatments_patientdocument_due"
            ),
        ),
        migrations.AddConstraint(
            model_name="patientdocument",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("status", "ready"), _negated=True),
                    models.Q(
                        models.Q(("file", ""), _negated=True),
                        models.Q(("sha256", ""), _negated=True),
                    ),
                    _connector="OR",
                ),
                name="treatments_patientdocument_ready_has_file",
            ),
        ),
        migrations.AddConstraint(
            model_name="patientdocument",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("status", "queued"), _negated=True),
                    ("next_attempt_at__isnull", False),
                    _connector="OR",
                ),
                name="treatments_patientdocument_queued_has_next",
            ),
        ),
        migrations.AddConstraint(
            model_name="patientdocument",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("email_status", "sending"), _negated=True),
                    ("email_claimed_at__isnull", False),
                    _connector="OR",
                ),
                name="document_sending_has_claim",
            ),
        ),
        migrations.AddConstraint(
            model_name="patientdocument",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("email_status", "sent"), _negated=True),
                    ("emailed_at__isnull", False),
                    _connector="OR",
                ),
                name="document_sent_has_time",
            ),
        ),
        # Last: the schema is complete (rows with pending checks block later DDL).
        migrations.RunPython(states_keep_meaning, states_back, elidable=False),
    ]

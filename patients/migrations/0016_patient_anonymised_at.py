"""When a record was anonymised, on the record itself: pages show its
removed details as removed and offer nothing that needs the person. Records
anonymised before this field existed take the date of their request to
erase (and records merged into them, anonymised with them, the same)."""

from typing import Any

from django.db import migrations, models


def backfill(apps: Any, schema_editor: Any) -> None:
    Patient = apps.get_model("patients", "Patient")
    ErasureRequest = apps.get_model("treatments", "ErasureRequest")
    done = ErasureRequest.objects.filter(status="anonymised").order_by("anonymised_at")
    for erasure in done:
        Patient.objects.filter(pk=erasure.patient_id, anonymised_at__isnull=True).update(
            anonymised_at=erasure.anonymised_at
        )
        Patient.objects.filter(
            merged_into_id=erasure.patient_id, anonymised_at__isnull=True
        ).update(anonymised_at=erasure.anonymised_at)


class Migration(migrations.Migration):
    dependencies = [
        ("patients", "0015_patient_import"),
        ("treatments", "0019_data_rights"),
    ]

    operations = [
        migrations.AddField(
            model_name="patient",
            name="anonymised_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]

"""Search and duplicate check that ignore case, accents and apostrophes.

- Recomputes every patient's `search_text` with the folded spellings
  (patients.folding: Müller as "muller" and "mueller", O'Grady as "ogrady" and
  "o grady"), in batches, so existing patients are found the new way. The
  trigram index of 0002 keeps serving the column.
- `registration_token`: the one-time token of the registration form, unique,
  so that one form sent twice registers one patient.
- Indexes for the duplicate check run at each registration: birth date,
  email whatever its case, phone.
"""

from typing import Any

import django.db.models.functions.text
from django.db import migrations, models

BATCH = 2000


def recompute_search_text(apps: Any, schema_editor: Any) -> None:
    # The services' own function: the stored text must be exactly what they
    # would write, or the search box and the register would disagree.
    from patients.services import patient_search_text

    patient_model = apps.get_model("patients", "Patient")
    last_pk = 0
    while True:
        batch = list(
            patient_model.objects.filter(pk__gt=last_pk)
            .order_by("pk")
            .only("pk", "first_name", "last_name", "email", "phone", "date_of_birth")[:BATCH]
        )
        if not batch:
            return
        for patient in batch:
            patient.search_text = patient_search_text(patient)
        patient_model.objects.bulk_update(batch, ["search_text"])
        last_pk = batch[-1].pk


class Migration(migrations.Migration):
    dependencies = [("patients", "0006_photo")]

    operations = [
        migrations.AddField(
            model_name="patient",
            name="registration_token",
            field=models.UUIDField(blank=True, editable=False, null=True, unique=True),
        ),
        migrations.AddIndex(
            model_name="patient",
            index=models.Index(fields=["date_of_birth"], name="patient_birth_date_idx"),
        ),
        migrations.AddIndex(
            model_name="patient",
            index=models.Index(
                django.db.models.functions.text.Upper("email"), name="patient_email_ci_idx"
            ),
        ),
        migrations.AddIndex(
            model_name="patient",
            index=models.Index(fields=["phone"], name="patient_phone_idx"),
        ),
        # Going back leaves the folded text: the earlier search still reads it.
        migrations.RunPython(recompute_search_text, migrations.RunPython.noop, elidable=False),
    ]

"""Names stored composed (Unicode NFC): patients' names and the other short
texts naming a person, and staff names, typed before they were normalised on
the way in (a decomposed "Zoë" as "Zoe" followed by a combining diaeresis).
Only rows whose text changes are written; versions are not raised, since an
NFC text is no change for the forms (clinic.concurrency.differs). Signed
consents keep the signer's name as signed (their rows never change)."""

import unicodedata

from django.db import migrations

PATIENT_FIELDS = ("first_name", "last_name", "emergency_contact_name", "gp_details")
USER_FIELDS = ("first_name", "last_name")


def _normalise(model, fields):
    for row in model.objects.only("pk", *fields).iterator(chunk_size=500):
        changes = {}
        for name in fields:
            value = getattr(row, name) or ""
            composed = unicodedata.normalize("NFC", value)
            if composed != value:
                changes[name] = composed
        if changes:
            model.objects.filter(pk=row.pk).update(**changes)


def names_to_nfc(apps, schema_editor):
    _normalise(apps.get_model("patients", "Patient"), PATIENT_FIELDS)
    _normalise(apps.get_model("clinic", "User"), USER_FIELDS)


class Migration(migrations.Migration):
    dependencies = [
        ("clinic", "0006_sign_in_throttle"),
        ("patients", "0010_contact_change_confirmation"),
    ]

    # Nothing to undo: the composed text is the same name.
    operations = [migrations.RunPython(names_to_nfc, migrations.RunPython.noop)]

"""Signed consents keep their sections as data (name, heading, text), so no page
has to split the stored text on "## " lines (which a section's own text may hold).

Existing signed consents get theirs from the version they signed (its text is
frozen by the trigger of 0002) and their photographs choice. Each is checked
first against the text stored and hashed at signing: a row whose text would not
be written out again, byte for byte, from those sections stops the migration
(nothing is changed) rather than be given sections that differ from what was
signed. The append-only trigger is disabled only for the fill, inside this
migration's transaction, and enabled again before it commits.
"""

import django.db.models
from django.db import migrations, models

# Frozen here: the headings and sentences as signatures have always written them.
SECTIONS = (
    ("procedure", "The procedure"),
    ("benefits", "Expected benefits"),
    ("common_side_effects", "Common side effects"),
    ("rare_complications", "Rare complications"),
    ("alternatives", "Alternatives"),
    ("aftercare", "Aftercare"),
)
AGREES = "The patient agrees to photographs being taken."
DOES_NOT_AGREE = "The patient does not agree to photographs being taken."
TRIGGER = "consent_signed_immutable"


def _plain(text):
    return text.strip().replace("\r\n", "\n")


def _sections(version, photo_consent):
    sections = [
        {"name": name, "heading": heading, "text": _plain(getattr(version, name))}
        for name, heading in SECTIONS
    ]
    choice = AGREES if photo_consent else DOES_NOT_AGREE
    sections.append(
        {
            "name": "photographs",
            "heading": "Photographs",
            "text": _plain(version.photo_consent_text) + "\n" + choice,
        }
    )
    return sections


def _written_out(sections):
    return "\n\n".join(f"## {s['heading']}\n{s['text']}" for s in sections) + "\n"


def fill_sections(apps, schema_editor):
    SignedConsent = apps.get_model("consent", "SignedConsent")
    rows = SignedConsent.objects.select_related("version").order_by("pk")
    filled = {}
    disagree = []
    for row in rows.iterator(chunk_size=500):
        sections = _sections(row.version, row.photo_consent)
        # The text opens with the form's title and the version line.
        title_and_version = row.text.split("\n", 2)
        if (
            row.version.published_at is None
            or len(title_and_version) != 3
            or title_and_version[2] != "\n" + _written_out(sections)
        ):
            disagree.append(str(row.uuid))
        else:
            filled[row.pk] = sections
    if disagree:
        raise RuntimeError(
            "These signed consents do not hold the text of the version they signed, so "
            "their sections cannot be derived from it; nothing was changed. Look at them "
            "before migrating: " + ", ".join(disagree)
        )
    if not filled:
        return
    table = schema_editor.quote_name(SignedConsent._meta.db_table)
    schema_editor.execute(f"ALTER TABLE {table} DISABLE TRIGGER {TRIGGER}")
    for pk, sections in filled.items():
        SignedConsent.objects.filter(pk=pk).update(sections=sections)
    schema_editor.execute(f"ALTER TABLE {table} ENABLE TRIGGER {TRIGGER}")


class Migration(migrations.Migration):
    dependencies = [("consent", "0002_immutable")]

    operations = [
        migrations.AddField(
            model_name="signedconsent",
            name="sections",
            field=models.JSONField(editable=False, null=True),
        ),
        migrations.RunPython(fill_sections, migrations.RunPython.noop, elidable=False),
        migrations.AlterField(
            model_name="signedconsent",
            name="sections",
            field=models.JSONField(editable=False),
        ),
        migrations.AddConstraint(
            model_name="signedconsent",
            constraint=models.CheckConstraint(
                condition=django.db.models.Q(("sections__contains", [{}])),
                name="consent_sections_recorded",
            ),
        ),
    ]

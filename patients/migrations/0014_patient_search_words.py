"""Every word of every patient's search text, in one ordered index, for the search box.

The trigram index (0002) finds the patients whose search text contains what
was typed, but in no order: a term shared by a fixed part of the register
("smi", "wi") read and sorted every match, ten times the rows at ten times
the register (issue 14). `patients_patientsearchword` holds one row per
distinct word of `search_text` (names folded, the email, the phone's digits,
the birth date), and its primary key (word, patient) is a B-tree in byte
order: the patients with a word starting with a term are one range of it, in
word order, so a page of them is read and the rest never is.

Statement triggers on `patients_patient` keep it from the rows each INSERT,
UPDATE or DELETE changed (transition tables: one statement for a bulk
insert, not one per row), whatever wrote `search_text`: the services, a
migration, raw SQL. Existing patients' words are added here.
"""

from django.db import migrations, models

# The words of the patient rows `rows` (id, search_text), each once.
WORDS_OF = """
    SELECT DISTINCT word, p.id
    FROM {rows} AS p
    CROSS JOIN LATERAL unnest(string_to_array(p.search_text, ' ')) AS word
    WHERE word <> ''
"""

# The rows of an UPDATE whose search text changed (most leave it alone: a
# version, a reminder preference), as they were (`side` b) or are now (a).
CHANGED = """(
    SELECT {side}.id, {side}.search_text
    FROM before_rows AS b JOIN after_rows AS a ON a.id = b.id
    WHERE a.search_text IS DISTINCT FROM b.search_text
)"""

FUNCTION = """
CREATE FUNCTION {name}() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
{body}
    RETURN NULL;
END
$$;
"""


REMOVE = """
    DELETE FROM patients_patientsearchword AS kept
    USING ({words}) AS gone (word, id)
    WHERE kept.word = gone.word AND kept.patient_id = gone.id;"""

ADD = """
    INSERT INTO patients_patientsearchword (word, patient_id)
    {words}
    ON CONFLICT DO NOTHING;"""


def _remove(rows: str) -> str:
    return REMOVE.format(words=WORDS_OF.format(rows=rows))


def _add(rows: str) -> str:
    return ADD.format(words=WORDS_OF.format(rows=rows))


TRIGGERS = {
    # name: (event, transition tables, body)
    "patients_search_words_insert": ("INSERT", "NEW TABLE AS added", _add("added")),
    "patients_search_words_update": (
        "UPDATE",
        "OLD TABLE AS before_rows NEW TABLE AS after_rows",
        _remove(CHANGED.format(side="b")) + _add(CHANGED.format(side="a")),
    ),
    "patients_search_words_delete": ("DELETE", "OLD TABLE AS removed", _remove("removed")),
}

# Every patient registered before this migration.
BACKFILL = _add("patients_patient")

FORWARD = (
    "".join(
        FUNCTION.format(name=name, body=body)
        + f"""
CREATE TRIGGER {name} AFTER {event} ON patients_patient
    REFERENCING {tables}
    FOR EACH STATEMENT EXECUTE FUNCTION {name}();
"""
        for name, (event, tables, body) in TRIGGERS.items()
    )
    + BACKFILL
)

BACKWARD = "".join(
    f"DROP TRIGGER IF EXISTS {name} ON patients_patient; DROP FUNCTION IF EXISTS {name}();\n"
    for name in TRIGGERS
)


class Migration(migrations.Migration):
    dependencies = [("patients", "0013_contact_notice_due")]

    operations = [
        migrations.CreateModel(
            name="PatientSearchWord",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "word",
                        "patient_id",
                        blank=True,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                ("word", models.TextField(db_collation="C")),
                ("patient_id", models.BigIntegerField()),
            ],
            options={"verbose_name": "patient search word"},
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
    ]

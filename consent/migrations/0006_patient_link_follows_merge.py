"""A row written for a record while that record is merged into another goes
to the record that stays; and a few changes to the patient register that the
same work needs. Written by hand; every step reverses.

1. `patients_follow_merge()`, a trigger function, and a trigger calling it on
   every column that points at `patients_patient` (all of them at the time
   of this migration, found in the catalogue): BEFORE INSERT, or an UPDATE
   that changes the column, it reads the patient pointed at with
   `FOR KEY SHARE` (so it waits for a merge of that record under way, which
   holds it `FOR UPDATE`, and then sees it committed) and, for a record
   merged into another, points the row at the record that stays, following
   merges. That is what the merge would have done had the row been written a
   moment earlier. The triggers are named `a_<column>_follows_merge` so that
   they fire before every other BEFORE trigger of their table (PostgreSQL
   fires them by name), and the checks of those see the record the row goes
   to. A table added later with a foreign key to `patients_patient` needs
   the same trigger (tests/treatments/test_merge_races.py checks every one).
2. `submission_token` on medical histories and consultations: the one-time
   token of the form that made the row (clinic.concurrency), so the same
   form sent twice saves one row. These are the patients app's models: the
   operations are applied to that app (`InApp`).
3. Every patient's `search_text` folded again (patients.folding now drops
   invisible format characters and folds compatibility forms): existing
   records are found the new way. The same step as patients migration 0007.
"""

from typing import Any

from django.db import migrations, models
from django.db.migrations.operations.base import Operation

FOLLOW_FORWARD = """
CREATE FUNCTION patients_follow_merge() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    -- The column pointing at the patient, given by the trigger.
    link text := TG_ARGV[0];
    wanted bigint := (to_jsonb(NEW) ->> link)::bigint;
    target bigint := wanted;
    further bigint;
    hops integer := 0;
BEGIN
    IF wanted IS NULL THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' AND wanted IS NOT DISTINCT FROM (to_jsonb(OLD) ->> link)::bigint THEN
        RETURN NEW;
    END IF;
    LOOP
        -- Waits for a merge of this record under way, then reads it committed.
        SELECT merged_into_id INTO further FROM patients_patient
        WHERE id = target FOR KEY SHARE;
        EXIT WHEN further IS NULL;
        hops := hops + 1;
        IF hops > 5 THEN
            RAISE EXCEPTION 'patient record % is merged through more than 5 records', wanted;
        END IF;
        target := further;
    END LOOP;
    IF target <> wanted THEN
        NEW := jsonb_populate_record(NEW, jsonb_build_object(link, target));
    END IF;
    RETURN NEW;
END;
$$;

DO $$
DECLARE
    fk record;
BEGIN
    FOR fk IN
        SELECT c.conrelid::regclass AS link_table, a.attname AS link_column
        FROM pg_constraint c
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
        WHERE c.contype = 'f'
          AND c.confrelid = 'patients_patient'::regclass
          AND cardinality(c.conkey) = 1
    LOOP
        EXECUTE format(
            'CREATE TRIGGER %I BEFORE INSERT OR UPDATE OF %I ON %s '
            'FOR EACH ROW EXECUTE FUNCTION patients_follow_merge(%L)',
            'a_' || fk.link_column || '_follows_merge',
            fk.link_column,
            fk.link_table,
            fk.link_column
        );
    END LOOP;
END;
$$;
"""

FOLLOW_BACKWARD = """
DO $$
DECLARE
    found record;
BEGIN
    FOR found IN
        SELECT t.tgname, t.tgrelid::regclass AS link_table
        FROM pg_trigger t
        WHERE t.tgfoid = 'patients_follow_merge'::regproc
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', found.tgname, found.link_table);
    END LOOP;
END;
$$;
DROP FUNCTION patients_follow_merge();
"""

BATCH = 2000


class InApp(Operation):
    """`operation` applied to a model of the app `app_label` (its state and its
    table), from a migration of another app."""

    reversible = True

    def __init__(self, app_label: str, operation: Operation) -> None:
        self.app_label = app_label
        self.operation = operation

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return (self.__class__.__name__, [self.app_label, self.operation], {})

    def state_forwards(self, app_label: str, state: Any) -> None:
        self.operation.state_forwards(self.app_label, state)

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        self.operation.database_forwards(self.app_label, schema_editor, from_state, to_state)

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        self.operation.database_backwards(self.app_label, schema_editor, from_state, to_state)

    def describe(self) -> str:
        return f"{self.operation.describe()} (app {self.app_label})"


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
            .only(
                "pk", "first_name", "last_name", "email", "phone", "date_of_birth", "search_text"
            )[:BATCH]
        )
        if not batch:
            return
        changed = []
        for patient in batch:
            folded = patient_search_text(patient)
            if folded != patient.search_text:
                patient.search_text = folded
                changed.append(patient)
        if changed:
            patient_model.objects.bulk_update(changed, ["search_text"])
        last_pk = batch[-1].pk


def _submission_token() -> models.UUIDField:
    return models.UUIDField(blank=True, editable=False, null=True, unique=True)


class Migration(migrations.Migration):
    dependencies = [
        ("clinic", "0006_sign_in_throttle"),
        ("patients", "0010_contact_change_confirmation"),
        ("treatments", "0010_closure_edit"),
        ("consent", "0005_patient_merge"),
    ]

    operations = [
        migrations.RunSQL(FOLLOW_FORWARD, FOLLOW_BACKWARD),
        InApp(
            "patients",
            migrations.AddField(
                model_name="medicalhistory", name="submission_token", field=_submission_token()
            ),
        ),
        InApp(
            "patients",
            migrations.AddField(
                model_name="consultation", name="submission_token", field=_submission_token()
            ),
        ),
        # Going back leaves the folded text: the earlier search still reads it.
        migrations.RunPython(recompute_search_text, migrations.RunPython.noop, elidable=False),
    ]

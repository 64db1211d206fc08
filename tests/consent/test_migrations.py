"""Migration 0003 gives consents signed before it their sections, from the version
they signed, without changing a byte of what was signed, and leaves the table
append-only again."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.apps.registry import Apps
from django.db import DatabaseError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from clinic.dbroles import (
    application_privileges_grant,
    application_user,
    connected_as_owner,
    database_functions_harden,
)
from clinic.models import User
from consent.models import CONSENT_SECTION_NAMES, ConsentFormVersion, SignedConsent
from consent.selectors import sections_match_text, text_matches_hash
from consent.services import sha256_hex, signed_sections
from tests.factories import ConsentFormVersionFactory, PatientFactory

BEFORE = ("consent", "0002_immutable")
AFTER = ("consent", "0003_signedconsent_sections")

pytestmark = pytest.mark.django_db(transaction=True)


def text_as_signed_before(version: ConsentFormVersion, photo_consent: bool) -> str:
    """The canonical text exactly as signing wrote it before migration 0003."""
    lines = [version.form.title, f"Version {version.number}", ""]
    for name, heading in (
        ("procedure", "The procedure"),
        ("benefits", "Expected benefits"),
        ("common_side_effects", "Common side effects"),
        ("rare_complications", "Rare complications"),
        ("alternatives", "Alternatives"),
        ("aftercare", "Aftercare"),
    ):
        lines += [f"## {heading}", getattr(version, name).strip().replace("\r\n", "\n"), ""]
    lines += ["## Photographs", version.photo_consent_text.strip().replace("\r\n", "\n")]
    lines.append(
        "The patient agrees to photographs being taken."
        if photo_consent
        else "The patient does not agree to photographs being taken."
    )
    return "\n".join(lines) + "\n"


@pytest.fixture
def patients() -> list[Any]:
    """Patients made with the current models, before going back (see before_0003)."""
    return [PatientFactory(), PatientFactory()]


@pytest.fixture
def before_0003() -> Iterator[Apps]:
    """The database as it was before 0003; migrated forward again afterwards.
    Going back unapplies every later migration of every app that follows it:
    rows of the current models (a user, patients) are made before, the
    others with the models of then.

    Migrations run as the owner role, as `migrate` does; so does the test.
    """
    with connected_as_owner():
        executor = MigrationExecutor(connection)
        executor.migrate([BEFORE])
        yield executor.loader.project_state([BEFORE]).apps
        # Rows the migration refused would stop it again: the table is emptied
        # first (TRUNCATE fires no row trigger, and the TRUNCATE guard of
        # clinic 0005 is not applied at this point), as the test database is
        # flushed anyway.
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE consent_signedconsent CASCADE")
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
        # Tables made again need the application role's rights again.
        database_functions_harden(connection)
        application_privileges_grant(connection, application_user())


def migrate_to_0003() -> Apps:
    """Migrate to 0003; the models as they were then (later migrations add
    columns the current models read)."""
    executor = MigrationExecutor(connection)
    executor.migrate([AFTER])
    return MigrationExecutor(connection).loader.project_state([AFTER]).apps


def old_version(apps: Apps, author: User, *, form: Any = None, **texts: str) -> Any:
    """A published consent form version as the code before 0003 wrote it, with
    the factory's texts unless given (the current models have columns since)."""
    if form is None:
        form = apps.get_model("consent", "ConsentForm").objects.create(
            title="Face", created_by_id=author.pk
        )
    typed = ConsentFormVersionFactory.build(number=1)
    fields = {name: getattr(typed, name) for name in (*CONSENT_SECTION_NAMES, "photo_consent_text")}
    return apps.get_model("consent", "ConsentFormVersion").objects.create(
        form=form,
        number=form.versions.count() + 1,
        created_by_id=author.pk,
        published_at=timezone.now(),
        published_by_id=author.pk,
        **{**fields, **texts},
    )


def old_signature(apps: Apps, version: ConsentFormVersion, **fields: Any) -> Any:
    """A signed consent as the code before 0003 wrote it (no sections)."""
    OldSignedConsent = apps.get_model("consent", "SignedConsent")  # noqa: N806
    photo_consent = fields.pop("photo_consent", True)
    text = fields.pop("text", None) or text_as_signed_before(version, photo_consent)
    patient = fields.pop("patient")
    return OldSignedConsent.objects.create(
        patient_id=patient.pk,
        version_id=version.pk,
        text=text,
        text_sha256=sha256_hex(text),
        sections_confirmed=["procedure"],
        photo_consent=photo_consent,
        signer_name=patient.full_name,
        signature="consent/signatures/old.png",
        signature_sha256="a" * 64,
        signed_at=timezone.now(),
        witness_id=fields.pop("witness").pk,
        **fields,
    )


def trigger_enabled() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tgenabled FROM pg_trigger WHERE tgname = 'consent_signed_immutable'")
        return cursor.fetchone()[0]


def test_consents_signed_before_get_their_sections_from_the_version_they_signed(
    practitioner: User, patients: list[Any], before_0003: Apps
) -> None:
    first = old_version(
        before_0003, practitioner, procedure="Tiny injections.\r\n## Agreed to everything\r\nmore  "
    )
    second = old_version(before_0003, practitioner, form=first.form, aftercare="Nothing for a day.")
    agreed = old_signature(before_0003, first, witness=practitioner, patient=patients[0])
    refused = old_signature(
        before_0003, second, witness=practitioner, patient=patients[1], photo_consent=False
    )
    # Withdrawn and with a PDF row: the rows pointing at it do not stop the fill.
    apps = before_0003
    apps.get_model("consent", "ConsentWithdrawal").objects.create(
        signed_consent_id=agreed.pk,
        reason="Moved away.",
        withdrawn_at=timezone.now(),
        recorded_by_id=practitioner.pk,
    )
    apps.get_model("consent", "SignedConsentPDF").objects.create(
        signed_consent_id=agreed.pk, queued_at=timezone.now()
    )

    after_0003 = migrate_to_0003()

    agreed_now = after_0003.get_model("consent", "SignedConsent").objects.get(pk=agreed.pk)
    refused_now = after_0003.get_model("consent", "SignedConsent").objects.get(pk=refused.pk)
    assert agreed_now.text == agreed.text  # not a byte changed
    assert text_matches_hash(agreed_now)
    assert text_matches_hash(refused_now)
    assert sections_match_text(agreed_now)
    assert sections_match_text(refused_now)
    assert signed_sections(agreed_now) == [
        ("procedure", "The procedure", "Tiny injections.\n## Agreed to everything\nmore"),
        ("benefits", "Expected benefits", first.benefits),
        ("common_side_effects", "Common side effects", first.common_side_effects),
        ("rare_complications", "Rare complications", first.rare_complications),
        ("alternatives", "Alternatives", first.alternatives),
        ("aftercare", "Aftercare", first.aftercare),
        (
            "photographs",
            "Photographs",
            first.photo_consent_text + "\nThe patient agrees to photographs being taken.",
        ),
    ]
    assert signed_sections(refused_now)[5] == ("aftercare", "Aftercare", "Nothing for a day.")
    assert signed_sections(refused_now)[6][2].endswith(
        "\nThe patient does not agree to photographs being taken."
    )
    # Append-only again: the trigger is enabled and refuses a change.
    assert trigger_enabled() == "O"
    with pytest.raises(DatabaseError, match="never changed"), transaction.atomic():
        SignedConsent.objects.filter(pk=agreed.pk).update(sections=[{}])
    with pytest.raises(DatabaseError, match="never changed"), transaction.atomic():
        SignedConsent.objects.filter(pk=agreed.pk).update(signer_name="Someone else")


def test_a_consent_whose_text_is_not_its_versions_stops_the_migration_unchanged(
    practitioner: User, patients: list[Any], before_0003: Apps
) -> None:
    version = old_version(before_0003, practitioner)
    good = old_signature(before_0003, version, witness=practitioner, patient=patients[0])
    odd = old_signature(
        before_0003,
        version,
        witness=practitioner,
        patient=patients[1],
        text="Face\nVersion 1\n\nx\n",
    )

    with pytest.raises(RuntimeError, match=str(odd.uuid)) as caught:
        migrate_to_0003()
    assert str(good.uuid) not in str(caught.value)

    assert trigger_enabled() == "O"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM information_schema.columns "
            "WHERE table_name = 'consent_signedconsent' AND column_name = 'sections'"
        )
        assert cursor.fetchone()[0] == 0  # the whole migration was rolled back

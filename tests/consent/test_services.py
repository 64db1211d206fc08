"""Consent services: publishing, signing with every kind of bad input, withdrawal,
and the database refusing to change what was signed."""

from __future__ import annotations

import base64
import hashlib
import io
import uuid
from typing import Any
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, IntegrityError, connection, transaction
from PIL import Image

from clinic.models import AuditAction, AuditEvent, User
from consent.models import (
    CONSENT_SECTION_NAMES,
    ConsentFormVersion,
    ConsentWithdrawal,
    DocumentStatus,
    SignedConsent,
    SignedConsentPDF,
)
from consent.selectors import (
    ConsentStatus,
    consent_state,
    sections_match_text,
    text_matches_hash,
)
from consent.services import (
    consent_draft_save,
    consent_pdf_requeue_stale,
    consent_sign,
    consent_text,
    consent_version_publish,
    consent_withdraw,
    signed_sections,
)
from tests.consent.helpers import data_url, drawn_signature, png_bytes
from tests.factories import ConsentFormFactory, ConsentFormVersionFactory, PatientFactory

pytestmark = pytest.mark.django_db

TEXTS = {
    "procedure": "Small injections.",
    "benefits": "Brighter skin.",
    "common_side_effects": "Redness.",
    "rare_complications": "Infection.",
    "alternatives": "Peels.",
    "aftercare": "No make-up for 12 hours.",
    "photo_consent_text": "Photographs for my record only.",
}


@pytest.fixture
def version() -> ConsentFormVersion:
    return ConsentFormVersionFactory(form=ConsentFormFactory(title="Face"))


def sign(version: ConsentFormVersion, witness: User, **overrides: Any) -> SignedConsent:
    arguments: dict[str, Any] = {
        "patient": overrides.pop("patient", None) or PatientFactory(),
        "form": version.form,
        "version_uuid": version.uuid,
        "sections_confirmed": CONSENT_SECTION_NAMES,
        "photo_consent": True,
        "signer_name": "Amelia Hart",
        "signature_data_url": drawn_signature(),
        "witness": witness,
        "witnessed": True,
    }
    arguments.update(overrides)
    with mock.patch("consent.services.consent_pdf_enqueue"), transaction.atomic():
        return consent_sign(**arguments)


def refused(version: ConsentFormVersion, witness: User, **overrides: Any) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        sign(version, witness, **overrides)
    assert SignedConsent.objects.count() == 0
    assert SignedConsentPDF.objects.count() == 0
    return caught.value.message_dict


# --- Publishing -----------------------------------------------------------------------------


def test_publishing_a_draft_numbers_it_and_freezes_its_text(manager: User) -> None:
    form = ConsentFormFactory()
    draft = consent_draft_save(form=form, saved_by=manager, expected_version=None, **TEXTS)
    assert draft.published_at is None
    published = consent_version_publish(version=draft, published_by=manager)
    assert published.number == 1
    assert published.published_by == manager
    assert AuditEvent.objects.filter(
        action=AuditAction.PUBLISHED,
        object_id=str(published.uuid),
        changed_fields__contains=["published_at"],
    ).exists()
    second = consent_draft_save(
        form=form, saved_by=manager, expected_version=None, **{**TEXTS, "aftercare": "New."}
    )
    assert consent_version_publish(version=second, published_by=manager).number == 2
    with pytest.raises(ValidationError, match="already published"):
        consent_version_publish(version=second, published_by=manager)


def test_the_database_refuses_to_change_or_delete_a_published_version(
    version: ConsentFormVersion,
) -> None:
    with pytest.raises(DatabaseError, match="never changed"), transaction.atomic():
        ConsentFormVersion.objects.filter(pk=version.pk).update(procedure="Changed")
    with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic():
        ConsentFormVersion.objects.filter(pk=version.pk).delete()
    version.refresh_from_db()
    assert version.procedure != "Changed"


def test_a_draft_can_still_be_edited(manager: User, version: ConsentFormVersion) -> None:
    draft = consent_draft_save(form=version.form, saved_by=manager, expected_version=None, **TEXTS)
    again = consent_draft_save(
        form=version.form, saved_by=manager, expected_version=None, **{**TEXTS, "benefits": "B"}
    )
    assert again.pk == draft.pk
    assert again.benefits == "B"
    assert again.number == 2


# --- Signing --------------------------------------------------------------------------------


def test_signing_stores_the_exact_text_its_hash_and_a_reencoded_signature(
    version: ConsentFormVersion, practitioner: User
) -> None:
    signed = sign(version, practitioner, photo_consent=False, signer_name="  Amelia   Hart ")
    assert signed.signer_name == "Amelia Hart"
    assert version.procedure in signed.text
    assert "Face" in signed.text
    assert "Version 1" in signed.text
    assert "does not agree to photographs" in signed.text
    assert signed.text_sha256 == hashlib.sha256(signed.text.encode()).hexdigest()
    assert text_matches_hash(signed)
    stored = signed.signature.read()
    assert stored.startswith(b"\x89PNG")
    assert signed.signature_sha256 == hashlib.sha256(stored).hexdigest()
    assert signed.witness == practitioner
    assert signed.pdf.status == DocumentStatus.QUEUED
    assert AuditEvent.objects.filter(
        action=AuditAction.SIGNED, object_type="consent.signedconsent", object_id=str(signed.uuid)
    ).exists()


def test_signing_queues_the_pdf_after_commit(
    version: ConsentFormVersion, practitioner: User, django_capture_on_commit_callbacks: Any
) -> None:
    with (
        mock.patch("consent.tasks.consent_pdf_render.apply_async") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        signed = consent_sign(
            patient=PatientFactory(),
            form=version.form,
            version_uuid=version.uuid,
            sections_confirmed=CONSENT_SECTION_NAMES,
            photo_consent=True,
            signer_name="A B",
            signature_data_url=drawn_signature(),
            witness=practitioner,
            witnessed=True,
        )
    delay.assert_called_once_with((signed.pk,), retry=False)


def test_signing_succeeds_and_stays_queued_when_the_broker_is_down(
    version: ConsentFormVersion, practitioner: User, django_capture_on_commit_callbacks: Any
) -> None:
    with (
        mock.patch(
            "consent.tasks.consent_pdf_render.apply_async",
            side_effect=ConnectionError("broker down"),
        ),
        django_capture_on_commit_callbacks(execute=True),
    ):
        signed = consent_sign(
            patient=PatientFactory(),
            form=version.form,
            version_uuid=version.uuid,
            sections_confirmed=CONSENT_SECTION_NAMES,
            photo_consent=True,
            signer_name="A B",
            signature_data_url=drawn_signature(),
            witness=practitioner,
            witnessed=True,
        )
    assert SignedConsentPDF.objects.get(pk=signed.pk).status == DocumentStatus.QUEUED


def test_the_sweep_requeues_pdfs_still_waiting_after_two_minutes(
    version: ConsentFormVersion, practitioner: User
) -> None:
    import time_machine
    from django.utils import timezone

    signed = sign(version, practitioner)
    with mock.patch("consent.tasks.consent_pdf_render.apply_async") as delay:
        assert consent_pdf_requeue_stale() == 0
        with time_machine.travel(timezone.now() + timezone.timedelta(minutes=3), tick=False):
            assert consent_pdf_requeue_stale() == 1
            assert consent_pdf_requeue_stale() == 0  # the clock restarted
    delay.assert_called_once_with((signed.pk,), retry=False)


def test_a_tampered_version_id_is_refused_asking_to_reload(
    version: ConsentFormVersion, practitioner: User
) -> None:
    errors = refused(version, practitioner, version_uuid=uuid.uuid4())
    assert "Reload the page" in errors["version"][0]


def test_an_old_version_is_refused_once_a_new_one_is_published(
    version: ConsentFormVersion, practitioner: User
) -> None:
    ConsentFormVersionFactory(form=version.form)
    errors = refused(version, practitioner, version_uuid=version.uuid)
    assert "changed since the page was opened" in errors["version"][0]


def test_another_forms_version_is_refused(version: ConsentFormVersion, practitioner: User) -> None:
    other = ConsentFormVersionFactory()
    errors = refused(version, practitioner, version_uuid=other.uuid)
    assert "version" in errors


def test_a_draft_version_cannot_be_signed(
    version: ConsentFormVersion, practitioner: User, manager: User
) -> None:
    draft = consent_draft_save(form=version.form, saved_by=manager, expected_version=None, **TEXTS)
    errors = refused(version, practitioner, version_uuid=draft.uuid)
    assert list(errors) == ["version"]


def test_every_section_must_be_confirmed(version: ConsentFormVersion, practitioner: User) -> None:
    errors = refused(
        version,
        practitioner,
        sections_confirmed=[n for n in CONSENT_SECTION_NAMES if n != "aftercare"],
    )
    assert list(errors) == ["confirm_aftercare"]
    assert "Aftercare" in errors["confirm_aftercare"][0]


def test_an_empty_name_is_refused(version: ConsentFormVersion, practitioner: User) -> None:
    errors = refused(version, practitioner, signer_name="   ")
    assert errors["signer_name"] == ["Please type your full name."]


def test_a_missing_signature_is_refused(version: ConsentFormVersion, practitioner: User) -> None:
    errors = refused(version, practitioner, signature_data_url="")
    assert "draw the signature" in errors["signature"][0]


@pytest.mark.parametrize(
    "signature",
    [
        data_url(b"GIF89a not a png", "image/gif"),
        data_url(b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml"),
        "data:image/png;base64,!!!not base64!!!",
        data_url(b"\x89PNG\r\n\x1a\n" + b"truncated"),
        data_url(b"just text"),
    ],
    ids=["gif", "svg", "bad-base64", "truncated-png", "text"],
)
def test_a_signature_that_is_not_a_png_is_refused(
    version: ConsentFormVersion, practitioner: User, signature: str
) -> None:
    errors = refused(version, practitioner, signature_data_url=signature)
    assert "not received as a picture" in errors["signature"][0]


def test_a_signature_with_too_many_pixels_is_refused(
    version: ConsentFormVersion, practitioner: User
) -> None:
    errors = refused(version, practitioner, signature_data_url=data_url(png_bytes(3000, 1000)))
    assert "too large" in errors["signature"][0]


def test_a_signature_of_too_many_bytes_is_refused(
    version: ConsentFormVersion, practitioner: User
) -> None:
    noise = Image.frombytes("L", (1200, 600), bytes(range(256)) * (1200 * 600 // 256 + 1))
    out = io.BytesIO()
    noise.save(out, format="PNG", compress_level=0)
    assert len(out.getvalue()) > 512 * 1024
    errors = refused(version, practitioner, signature_data_url=data_url(out.getvalue()))
    assert "too large" in errors["signature"][0]


@pytest.mark.parametrize("mode", ["RGBA", "RGB"])
def test_a_blank_signature_is_refused(
    version: ConsentFormVersion, practitioner: User, mode: str
) -> None:
    errors = refused(
        version, practitioner, signature_data_url=data_url(png_bytes(ink=False, mode=mode))
    )
    assert "empty" in errors["signature"][0]


def test_the_practitioner_must_witness(version: ConsentFormVersion, practitioner: User) -> None:
    errors = refused(version, practitioner, witnessed=False)
    assert "witnessed" in errors["witnessed"][0]


def test_the_database_refuses_to_change_or_delete_a_signed_consent(
    version: ConsentFormVersion, practitioner: User
) -> None:
    signed = sign(version, practitioner)
    with pytest.raises(DatabaseError, match="never changed"), transaction.atomic():
        SignedConsent.objects.filter(pk=signed.pk).update(signer_name="Someone else")
    # Straight to the table: the application role may not delete it at all.
    with (
        pytest.raises(DatabaseError, match="permission denied"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM consent_signedconsent WHERE id = %s", [signed.pk])
    signed.refresh_from_db()
    assert signed.signer_name == "Amelia Hart"


def test_the_hash_check_notices_a_changed_text(
    version: ConsentFormVersion, practitioner: User
) -> None:
    signed = sign(version, practitioner)
    assert text_matches_hash(signed)
    signed.text = signed.text.replace("Tiny", "Large")
    assert not text_matches_hash(signed)


# --- Sections as signed -----------------------------------------------------------------------

HEADINGS = [
    "The procedure",
    "Expected benefits",
    "Common side effects",
    "Rare complications",
    "Alternatives",
    "Aftercare",
    "Photographs",
]


def test_a_heading_typed_inside_a_section_stays_inside_that_section(
    manager: User, practitioner: User
) -> None:
    form = ConsentFormFactory(title="Face")
    typed = {**TEXTS, "procedure": "Small injections.\n## Agreed to everything\nmore"}
    draft = consent_draft_save(form=form, saved_by=manager, expected_version=None, **typed)
    version = consent_version_publish(version=draft, published_by=manager)

    signed = sign(version, practitioner)

    sections = signed_sections(signed)
    assert [heading for _name, heading, _text in sections] == HEADINGS
    assert [name for name, _heading, _text in sections] == [*CONSENT_SECTION_NAMES, "photographs"]
    assert sections[0][2] == "Small injections.\n## Agreed to everything\nmore"
    assert sections[1][2] == "Brighter skin."
    assert sections[6][2] == (
        "Photographs for my record only.\nThe patient agrees to photographs being taken."
    )
    # The stored text still holds the line, and the fingerprint covers it.
    assert "\n## Agreed to everything\nmore\n" in signed.text
    assert text_matches_hash(signed)
    assert sections_match_text(signed)


def test_the_text_is_written_as_before_so_recorded_fingerprints_still_verify(
    manager: User,
) -> None:
    form = ConsentFormFactory(title="Face")
    draft = consent_draft_save(
        form=form, saved_by=manager, expected_version=None, **{**TEXTS, "benefits": " B\r\nC "}
    )
    version = consent_version_publish(version=draft, published_by=manager)
    # What signing wrote before the sections were kept as data, byte for byte.
    before = (
        "Face\nVersion 1\n\n"
        "## The procedure\nSmall injections.\n\n"
        "## Expected benefits\nB\nC\n\n"
        "## Common side effects\nRedness.\n\n"
        "## Rare complications\nInfection.\n\n"
        "## Alternatives\nPeels.\n\n"
        "## Aftercare\nNo make-up for 12 hours.\n\n"
        "## Photographs\nPhotographs for my record only.\n"
        "The patient does not agree to photographs being taken.\n"
    )
    assert consent_text(version=version, photo_consent=False) == before


def test_a_signed_consent_without_sections_is_refused(
    version: ConsentFormVersion, practitioner: User
) -> None:
    signed = sign(version, practitioner)
    copy = {
        field.attname: getattr(signed, field.attname)
        for field in SignedConsent._meta.concrete_fields
        if field.attname not in ("id", "uuid", "sections")
    }
    for bad in ([], "## The procedure", {"name": "procedure"}, [[]]):
        with pytest.raises(ValidationError) as caught:
            SignedConsent(**copy, sections=bad).full_clean()
        assert "sections" in caught.value.message_dict
        with (
            pytest.raises(IntegrityError, match="consent_sections_recorded"),
            transaction.atomic(),
        ):
            SignedConsent.objects.create(**copy, sections=bad)
    with pytest.raises(ValidationError, match="its own name, a heading and a text"):
        SignedConsent(
            **copy, sections=[{"name": "procedure", "heading": "", "text": "x"}]
        ).full_clean()


def test_the_pages_notice_sections_that_differ_from_the_text_signed(
    version: ConsentFormVersion, practitioner: User
) -> None:
    signed = sign(version, practitioner)
    assert sections_match_text(signed)
    signed.sections[0]["text"] = "Something else."
    assert text_matches_hash(signed)
    assert not sections_match_text(signed)


# --- State, re-consent, withdrawal ----------------------------------------------------------


def test_a_new_version_flags_re_consent_needed(
    version: ConsentFormVersion, practitioner: User
) -> None:
    signed = sign(version, practitioner)
    assert consent_state(patient=signed.patient, form=version.form).status == ConsentStatus.VALID
    ConsentFormVersionFactory(form=version.form)
    state = consent_state(patient=signed.patient, form=version.form)
    assert state.status == ConsentStatus.RECONSENT_NEEDED
    assert "version 1" in state.sentence
    assert "version 2" in state.sentence


def test_withdrawal_then_signing_again(version: ConsentFormVersion, practitioner: User) -> None:
    signed = sign(version, practitioner)
    patient = signed.patient
    withdrawal = consent_withdraw(
        signed=signed, reason="Changed her mind.", recorded_by=practitioner
    )
    assert consent_state(patient=patient, form=version.form).status == ConsentStatus.WITHDRAWN
    assert AuditEvent.objects.filter(
        action=AuditAction.WITHDRAWN, object_id=str(withdrawal.uuid), patient_ref=patient.uuid
    ).exists()
    signed.refresh_from_db()
    assert signed.signer_name == "Amelia Hart"  # the signed record itself is unchanged
    again = sign(version, practitioner, patient=patient)
    state = consent_state(patient=patient, form=version.form)
    assert state.status == ConsentStatus.VALID
    assert state.signed == again


def test_a_withdrawal_needs_a_reason_and_happens_once(
    version: ConsentFormVersion, practitioner: User
) -> None:
    signed = sign(version, practitioner)
    with pytest.raises(ValidationError, match="why"):
        consent_withdraw(signed=signed, reason="  ", recorded_by=practitioner)
    consent_withdraw(signed=signed, reason="No longer wants it.", recorded_by=practitioner)
    with pytest.raises(ValidationError, match="already been withdrawn") as caught:
        consent_withdraw(signed=signed, reason="Again.", recorded_by=practitioner)
    assert caught.value.error_dict["reason"][0].code == "already_withdrawn"
    assert ConsentWithdrawal.objects.count() == 1
    with pytest.raises(DatabaseError), transaction.atomic():
        ConsentWithdrawal.objects.all().update(reason="Edited")


def test_locking_a_signed_consent_is_allowed_but_changing_it_is_not(
    version: ConsentFormVersion, practitioner: User
) -> None:
    signed = sign(version, practitioner)
    with transaction.atomic():
        # SELECT ... FOR UPDATE takes the row lock without firing the UPDATE trigger.
        assert SignedConsent.objects.select_for_update().get(pk=signed.pk) == signed
    with pytest.raises(DatabaseError, match="never changed"), transaction.atomic():
        SignedConsent.objects.filter(pk=signed.pk).update(signer_name="Someone else")


def test_signature_bytes_are_re_encoded_not_stored_as_sent(
    version: ConsentFormVersion, practitioner: User
) -> None:
    image = Image.open(io.BytesIO(png_bytes()))
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=_with_text("Comment", "tracking"))
    sent = out.getvalue()
    signed = sign(version, practitioner, signature_data_url=data_url(sent))
    stored = signed.signature.read()
    assert b"tracking" not in stored
    assert base64.b64encode(stored) != base64.b64encode(sent)


def _with_text(key: str, value: str) -> Any:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(key, value)
    return info

"""The demo's aftercare sheets, printed, say each instruction once and agree
with the consent form the patient signed before the session (domain.md,
"Aftercare advice"): touching for 6 hours, make-up for 12, sauna, pools and
hard exercise for 48, alcohol for 48, other facial treatments for two weeks;
the "call 999" line once; the opening paragraph once."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from clinic.roles import Role
from consent.demo import COMMON, FACE_V2_AFTERCARE
from tests.conftest import frozen_at
from tests.factories import ProtocolFactory, UserFactory
from tests.treatments.test_aftercare import completed_session, file_bytes, pdf_text, ready_document
from treatments.demo.catalogue import BODY_SHEET, FACE_SHEET, SCALP_SHEET, SHEETS
from treatments.services.catalogue import sheet_create

pytestmark = pytest.mark.django_db

frozen = frozen_at(datetime(2026, 11, 24, 9, 30, tzinfo=UTC))


def printed(title: str, tmp_path: Path) -> str:
    """The demo sheet `title` as the patient gets it: its PDF's words, one space apart."""
    manager = UserFactory(roles=[Role.MANAGER])
    sheet = sheet_create(created_by=manager, title=title, **SHEETS[title])
    record = completed_session(protocol=ProtocolFactory(aftercare_sheet=sheet))
    return " ".join(pdf_text(file_bytes(ready_document(record)), tmp_path, layout=False).split())


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("title", [FACE_SHEET, BODY_SHEET, SCALP_SHEET])
def test_each_demo_sheet_prints_each_instruction_and_warning_once(
    title: str, tmp_path: Path
) -> None:
    text = printed(title, tmp_path)
    assert text.count("999") == 1
    first_sentence = SHEETS[title]["introduction"].split(". ")[0]
    assert text.count(flat(first_sentence)) == 1
    assert "The first 48 hours" not in text
    for line in SHEETS[title]["avoid_advice"].splitlines():
        assert text.count(flat(line)) == 1, line
    # One duration per thing to avoid, never two (the day after / 48 hours).
    assert len(re.findall(r"[Aa]lcohol", text)) == 1
    assert "for a week" not in text


def test_the_face_sheet_gives_the_durations_of_the_face_consent_the_patient_signs(
    tmp_path: Path,
) -> None:
    text = printed(FACE_SHEET, tmp_path)
    consent = flat(FACE_V2_AFTERCARE)
    for on_sheet, in_consent in (
        ("Touching, rubbing, pressing or scratching the treated skin: for 6 hours", "for 6 hours"),
        ("Make-up: for 12 hours", "No make-up for 12 hours"),
        (
            "Hard exercise, sauna, steam room, swimming pools and sun beds: for 48 hours",
            "No sauna, steam room, swimming pool, hard exercise or alcohol for 48 hours",
        ),
        ("Alcohol: for 48 hours", "alcohol for 48 hours"),
        ("Facials, peels or other skin treatments: for two weeks", "for two weeks"),
        ("SPF 30 or more", "SPF 30 or more"),
    ):
        assert on_sheet in text
        assert in_consent in consent


@pytest.mark.parametrize("title", [BODY_SHEET, SCALP_SHEET])
def test_the_body_and_scalp_sheets_give_the_durations_of_their_consent(
    title: str, tmp_path: Path
) -> None:
    text = printed(title, tmp_path)
    consent = flat(COMMON["aftercare"])
    assert "do not touch it for 6 hours" in consent
    assert re.search(r"Touching[^:]*: for 6 hours", text)
    assert "No sauna, steam room, swimming pool or hard exercise for 48 hours" in consent
    assert re.search(r"sauna, steam room, swimming pools[^:]*: for 48 hours", text)
    assert "Swimming pools: for 24 hours" not in text

"""An adverse event resolved through a follow-up ("Resolved" ticked) reads
as resolved, with its day, in the summary PDF and the FHIR bundle of a
subject-access export, as on the session page (adverse_event_resolution)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import time_machine

from clinic.models import User
from patients.models import Patient
from tests.conftest import frozen_at
from tests.treatments.test_merge import NOW, treatment  # noqa: F401 (fixtures)
from tests.treatments.test_subject_access import (
    _bundle,
    _make,
    _resources,
    _zip,
    golden,  # noqa: F401 (fixture)
    pdf_text,
)
from treatments.models import AdverseEvent, AdverseEventFollowUp

pytestmark = pytest.mark.django_db


frozen = frozen_at(NOW)


def test_an_event_resolved_by_a_follow_up_reads_as_resolved_with_its_day(
    golden: Patient,  # noqa: F811
    practitioner: User,
    tmp_path: Path,
) -> None:
    event = AdverseEvent.objects.get(session__booking__patient=golden)
    assert event.resolved_on is None
    # Mon 30 Nov 2026, a week after the golden record's follow-up.
    AdverseEventFollowUp.objects.create(
        event=event,
        note="Bruise gone",
        resolved=True,
        recorded_at=NOW + timedelta(days=7),
        recorded_by=practitioner,
    )
    with time_machine.travel(NOW + timedelta(days=8), tick=False):
        archive = _zip(_make(golden, practitioner))
    text = " ".join(pdf_text(archive.read("summary.pdf"), tmp_path).split())
    assert "resolved on Mon 30 Nov 2026" in text
    [resource] = _resources(_bundle(archive), "AdverseEvent")
    assert resource["outcome"]["coding"][0]["code"] == "resolved"
    resolved_on = [
        x["valueString"] for x in resource["extension"] if x["url"].endswith("/resolved-on")
    ]
    assert resolved_on == ["2026-11-30"]


def test_an_event_still_open_is_not_said_to_be_resolved(
    golden: Patient,  # noqa: F811
    practitioner: User,
    tmp_path: Path,
) -> None:
    archive = _zip(_make(golden, practitioner))
    text = pdf_text(archive.read("summary.pdf"), tmp_path)
    assert "Fading well" in text
    assert "resolved on" not in text
    [resource] = _resources(_bundle(archive), "AdverseEvent")
    assert resource["outcome"]["coding"][0]["code"] == "ongoing"

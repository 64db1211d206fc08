"""The search benchmark runs on a small register and leaves nothing behind."""

from datetime import UTC, datetime
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command

from patients.models import Patient
from tests.factories import PatientFactory


@pytest.mark.django_db
@time_machine.travel(datetime(2026, 11, 23, 9, 0, tzinfo=UTC), tick=False)
def test_benchmark_search_measures_then_rolls_back() -> None:
    PatientFactory(first_name="Kept")
    out = StringIO()
    call_command("benchmark_search", patients=[1000], repeat=2, stdout=out)
    report = out.getvalue()
    assert "1,000 synthetic patients" in report
    assert "| anchor, signed in |" in report
    assert "phone part (6 digits)" in report
    assert "accented name, typed plain" in report
    assert "duplicate check" in report
    assert "Plan for a late-alphabet name part" in report
    assert "Plan for a two-letter term" in report
    assert "Plan for a term found inside words" in report
    assert "patients_patientsearchword_pkey" in report  # the word index, in the plans
    assert "| CPU ms | CPU x anchor |" in report
    assert "inside a word (mit, ilso)" in report
    assert "Rolled back" in report
    assert list(Patient.objects.values_list("first_name", flat=True)) == ["Kept"]

"""The gates' shortcuts say what the rules they stand for say: a negative
reading judged without the calendar sum, a practitioner's sentence written
only when read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.test import override_settings

from tests.clinic_settings_support import settings_saved
from treatments.gates import GateFailure, _negative_valid_at, negative_reading_valid_until

LONDON = ZoneInfo("Europe/London")

# Month ends (Aug 31 + 6 months is Feb 28), a leap day, and readings that
# cross a clock change on the way, at the clinic's midnight and late evening.
READINGS = [
    datetime(2025, 8, 31, 23, 30, tzinfo=LONDON),
    datetime(2025, 8, 31, 0, 0, tzinfo=LONDON),
    datetime(2026, 1, 31, 10, 0, tzinfo=LONDON),
    datetime(2023, 8, 29, 9, 15, tzinfo=LONDON),
    datetime(2026, 3, 29, 1, 30, tzinfo=UTC),
    datetime(2026, 10, 25, 0, 45, tzinfo=UTC),
    datetime(2026, 4, 30, 18, 0, tzinfo=LONDON),
]


@pytest.mark.django_db
@pytest.mark.parametrize("months", [1, 3, 6])
@pytest.mark.parametrize("read_at", READINGS)
def test_a_negative_reading_is_valid_exactly_when_its_calendar_months_say(
    read_at: datetime, months: int
) -> None:
    settings_saved(allergy_test_valid_months=months)
    with override_settings(TIME_ZONE="Europe/London"):
        until = negative_reading_valid_until(read_at)
        # Around the end, around the shortcut's own bound, and well inside.
        bound = read_at + timedelta(days=28 * months - 1)
        moments = [
            until - timedelta(hours=2),
            until - timedelta(seconds=1),
            until,
            until + timedelta(seconds=1),
            until + timedelta(hours=2),
            bound - timedelta(seconds=1),
            bound,
            bound + timedelta(hours=1),
            read_at + timedelta(days=3),
            read_at - timedelta(days=1),
        ]
        for at in moments:
            assert _negative_valid_at(read_at, at) is (at <= until), at


def test_a_sentence_given_as_a_callable_is_written_once_when_read_and_compares_as_text() -> None:
    written = []

    def sentence() -> str:
        written.append(1)
        return "No allergy test for Vitamin C."

    later = GateFailure(4, sentence, "allergy test needed")
    assert written == []
    assert later.reception_note == "allergy test needed"
    assert written == []
    assert later == GateFailure(4, "No allergy test for Vitamin C.", "allergy test needed", None)
    assert later.sentence == "No allergy test for Vitamin C."
    assert " ".join([later.sentence, "Then"]) == "No allergy test for Vitamin C. Then"
    assert written == [1]
    assert later != GateFailure(4, "No allergy test for Hyaluronic acid.", "allergy test needed")
    same = GateFailure(4, "No allergy test for Vitamin C.", "allergy test needed")
    assert hash(later) == hash(same)

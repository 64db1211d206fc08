"""The summary at the top of a patient's page: may the patient be treated,
and if not, what is missing, in reception's words.

Ready-to-treat is the safety gates' answer for the bookings to come, and the
gates and bookings live in `treatments`, which the register may not import
(clinic <- patients <- consent <- treatments). So `treatments` registers the
function that judges a patient when it starts (its `ready()`), and the
patient's page asks it here: the card then says what the bookings shown
beside it say, from the same gates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from patients.models import Patient


@dataclass(frozen=True)
class ReadinessNote:
    """One thing standing in the way, in reception's words (no clinical
    detail), with the latest moment waiting clears it (None: waiting does not)."""

    note: str
    earliest: datetime | None


@dataclass(frozen=True)
class PatientReadiness:
    """What stands in the way: `notes`, once each; `bookings_judged`, how
    many bookings to come they speak for (0: the patient's record alone,
    judged now, with no booking to come)."""

    notes: Sequence[ReadinessNote]
    bookings_judged: int

    @property
    def ready(self) -> bool:
        return not self.notes


ReadinessJudge = Callable[[Patient, datetime], PatientReadiness]
_judges: list[ReadinessJudge] = []


def readiness_judge_register(judge: ReadinessJudge) -> None:
    """Set `judge(patient, at) -> PatientReadiness` (called by the treatments
    app's `ready()`); registering again replaces it."""
    _judges[:] = [judge]


def patient_page_readiness(*, patient: Patient, at: datetime) -> PatientReadiness | None:
    """The summary for `patient` at `at` (aware, now), or None when no judge
    is registered (the page then says nothing rather than "ready")."""
    if not _judges:
        return None
    return _judges[0](patient, at)

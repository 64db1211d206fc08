"""Row locks on patient records, taken in one order: the patient first, then
the rows of the record.

A merge of duplicate records (treatments.services.merge) locks the record
merged away FOR UPDATE, then its bookings, then moves every row. A change that
locks a row of a record (a booking moved, a test read) and then adds rows to
that record (reminders, an allergy) must therefore hold the patient before
the row, or the two would each wait for the other. `patient_hold` takes that
hold; `patient_row_lock` takes it and then locks the row alone.

A row is always locked alone (`FOR UPDATE` of that table, no join): when
PostgreSQL has waited for a lock it checks the row again as it now is, and a
join to a row that has since changed (the booking moved to the record that
stays) would drop it from the answer. What the row points at is read after.

PostgreSQL keeps the same rule for every row written to a record
(consent migration 0006): a row written for a record merged meanwhile goes to
the record that stays.
"""

from __future__ import annotations

from typing import TypeVar

from django.db import connection, models
from django.utils.translation import gettext as _

from clinic.refusals import RefusalKind, RefusedError
from patients.models import Patient
from patients.selectors import MERGE_HOPS

M = TypeVar("M", bound=models.Model)

# FOR KEY SHARE: what adding a row for the patient takes anyway (the foreign
# key's check); it waits only for a merge or a change of identity, never for
# another booking or test of the same patient. FOR NO KEY UPDATE: one writer
# at a time for a record where the newest row supersedes the others (a
# medical history), still letting bookings and tests through.
SHARED = "FOR KEY SHARE"
EXCLUSIVE = "FOR NO KEY UPDATE"


class PatientRecordMovedError(RefusedError):
    """A row kept moving between records while it was being locked: more
    merges at that moment than a record is ever merged through."""

    code = "record_moving"
    kind = RefusalKind.CONFLICT

    def __init__(self) -> None:
        super().__init__(
            _("This record is being merged with another at this moment. Try again in a minute.")
        )


def _hold(patient_id: int, *, exclusive: bool) -> int:
    """Hold the row of `patient_id` and of each record it was merged into;
    the id of the last one."""
    strength = EXCLUSIVE if exclusive else SHARED
    with connection.cursor() as cursor:
        for _hop in range(MERGE_HOPS + 1):
            cursor.execute(
                f"SELECT merged_into_id FROM patients_patient WHERE id = %s {strength}",  # noqa: S608 (a constant)
                [patient_id],
            )
            found = cursor.fetchone()
            if found is None or found[0] is None:
                return patient_id
            patient_id = found[0]
    raise PatientRecordMovedError()


def patient_hold(patient: Patient, *, exclusive: bool = False) -> Patient:
    """Hold the patient's row until the transaction ends, following merges:
    return `patient` itself, or the record it was merged into (read again),
    which is where rows for it are written.

    `exclusive` False takes FOR KEY SHARE (other bookings and tests for the
    patient go on; a merge of the record waits, or is waited for); True takes
    FOR NO KEY UPDATE (also one such writer at a time, for a record whose
    newest row supersedes the others). A merge already running finishes
    first. One query per record held, plus the read of the record that stays
    when it is another. Raises `PatientRecordMovedError` past MERGE_HOPS merges.
    """
    held = _hold(patient.pk, exclusive=exclusive)
    if held == patient.pk:
        return patient
    return Patient.objects.get(pk=held)


def patient_row_lock(
    model: type[M],
    pk: int,
    *,
    patient_id: int | None = None,
    exclusive: bool = False,
) -> M:
    """Lock the row `pk` of `model` (a model with a `patient`), for a change
    that may add rows to its record: first its patient (`patient_hold`), then
    the row alone (FOR UPDATE). Returns the row as it now is; what it points
    at (its patient among them) is for the caller to read afterwards.

    `patient_id` is the row's patient as last read, if known (saves a
    query); a merge that moved the row since is noticed and followed.
    Raises the model's DoesNotExist when there is no such row, and
    `PatientRecordMovedError` if it kept moving between records. Two queries
    when nothing moved.
    """
    rows = model._default_manager.all()
    if patient_id is None:
        patient_id = rows.filter(pk=pk).values_list("patient_id", flat=True).get()
    for _attempt in range(MERGE_HOPS + 1):
        held = _hold(patient_id, exclusive=exclusive)
        # Only while it is still on that record: a merge that moved it since
        # it was read has committed (the hold waited for it): read it again.
        row = rows.select_for_update(of=("self",)).filter(pk=pk, patient_id=held).first()
        if row is not None:
            return row
        patient_id = rows.filter(pk=pk).values_list("patient_id", flat=True).get()
    raise PatientRecordMovedError

"""The summary at the top of a patient's page (`patients.readiness`): may
this patient be treated, and if not, what is missing, in reception's words.

It is made from the failures of the very bookings the page's sessions panel
shows (the same bookings, `upcoming_bookings`, judged by the same
`treatments.selectors.readiness.booking_readiness`), so the card can never
say that nothing stands in the way while a booking says "consent needed".
With no booking to come, only what the patient's record says on its own is
judged, now: gates 1 and 2 (medical history, absolute contraindications);
consent and allergy readings depend on the protocol and cocktail, so a
booking is needed to judge them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from patients.models import Patient
from patients.readiness import PatientReadiness, ReadinessNote
from treatments.gates import (
    GateFailure,
    gate_contraindications,
    gate_facts_load,
    gate_medical_history,
)
from treatments.models import HOLDING_STATUSES, Booking, BookingStatus
from treatments.selectors.readiness import booking_readiness

# Bookings to come a patient's page shows and judges.
UPCOMING_SHOWN = 10


def upcoming_bookings(*, patient: Patient, now: datetime) -> list[Booking]:
    """The patient's next UPCOMING_SHOWN bookings that hold their slot and
    have not ended by `now` (aware), soonest first, with what ready-to-treat
    reads of them (protocol and its consent form) and what the panel shows
    (practitioner, room). One query."""
    return list(
        Booking.objects.filter(patient=patient, ends_at__gte=now, status__in=HOLDING_STATUSES)
        .exclude(status=BookingStatus.COMPLETED)
        .select_related("protocol__consent_form", "practitioner", "room")
        .order_by("starts_at")[:UPCOMING_SHOWN]
    )


def cancelled_to_come(*, patient: Patient, now: datetime, until: datetime | None) -> list[Booking]:
    """The patient's cancelled bookings whose booked start is after `now`
    (aware), up to `until` (aware, the last booking to come shown; None: no
    bound), soonest first, at most UPCOMING_SHOWN: the sessions panel lists
    them, marked cancelled, among the bookings to come, where reception looks
    for a session the patient asks about. One query."""
    rows = Booking.objects.filter(
        patient=patient, starts_at__gt=now, status=BookingStatus.CANCELLED
    )
    if until is not None:
        rows = rows.filter(starts_at__lte=until)
    return list(
        rows.select_related("protocol", "practitioner", "room").order_by("starts_at", "id")[
            :UPCOMING_SHOWN
        ]
    )


def reception_notes(failures: Iterable[GateFailure]) -> list[ReadinessNote]:
    """Each reception note once (several ingredients, or several bookings,
    may need the same test), with the latest moment waiting clears it, in the
    order first met. Failures without a note for reception are left out."""
    notes: dict[str, datetime | None] = {}
    for failure in failures:
        if not failure.reception_note:
            continue
        known = notes.get(failure.reception_note)
        if failure.earliest is not None and (known is None or failure.earliest > known):
            known = failure.earliest
        notes[failure.reception_note] = known
    return [ReadinessNote(note=note, earliest=earliest) for note, earliest in notes.items()]


def patient_readiness(
    *,
    patient: Patient,
    upcoming: Sequence[Booking],
    flags: Mapping[int, list[GateFailure]],
    at: datetime,
) -> PatientReadiness:
    """The card's summary for `patient`.

    `upcoming` are the bookings to come shown beside it and `flags` what
    `booking_readiness` said of them ({booking id: failures}); the summary
    is every note of those failures, once each. With no booking to come,
    gates 1 and 2 are judged at `at` (aware, now) on the patient's record:
    one query. Raises nothing. Source: design.md, "Clinical safety gates"
    (reception's flag and the practitioner's gates are one code path)."""
    if upcoming:
        failures = [failure for booking in upcoming for failure in flags.get(booking.pk, [])]
        return PatientReadiness(notes=reception_notes(failures), bookings_judged=len(upcoming))
    facts = gate_facts_load(patient_ids=[patient.pk], consent_form_ids=[], ingredient_ids=[])
    failures = [
        *gate_medical_history(patient=patient, at=at, facts=facts),
        *gate_contraindications(patient=patient, at=at, facts=facts),
    ]
    return PatientReadiness(notes=reception_notes(failures), bookings_judged=0)


def patient_page_readiness(patient: Patient, at: datetime) -> PatientReadiness:
    """The summary of the patient's page at `at` (aware, now): the bookings
    the sessions panel shows (`upcoming_bookings`), judged as it judges them.
    Registered with `patients.readiness` by the app's `ready()`. Eight
    queries at most whatever the number of bookings."""
    upcoming = upcoming_bookings(patient=patient, now=at)
    flags = booking_readiness(bookings=upcoming, at=at)
    return patient_readiness(patient=patient, upcoming=upcoming, flags=flags, at=at)

"""Reads for merging two records of one person: what each record holds, how
their details differ, and what stops the merge, shown before anything
changes. The merge itself (`treatments.services.merge.patient_merge`) asks
`merge_problems` again, under its locks.

It lives in `treatments` because it reads the rows of every app
(clinic <- patients <- consent <- treatments).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import models
from django.db.models import Exists, F, Func, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from clinic import dates
from clinic.models import User
from consent.models import ConsentWithdrawal, SignedConsent
from patients.models import Consultation, ContactChange, MedicalHistory, Patient, Photo
from patients.selectors import patient_possible_duplicates, patient_records_visible_to
from treatments.models import (
    HOLDING_STATUSES,
    AdverseEvent,
    AllergyTest,
    Booking,
    CocktailLine,
    DownloadLink,
    ErasureRequest,
    PatientAllergy,
    PatientDocument,
    PortalAccount,
    Reminder,
    SessionRecord,
    SubjectAccessExport,
    TreatmentCourse,
)

if TYPE_CHECKING:
    from django.utils.functional import _StrOrPromise as StrOrPromise


@dataclass(frozen=True)
class RecordKind:
    """One kind of row a patient record holds, and the lookup from it to the patient."""

    key: str  # a stable name: the audit trail counts rows under it
    label: StrOrPromise
    model: type[models.Model]
    path: str

    @property
    def direct(self) -> bool:
        """Points at the patient itself (moved by the merge); otherwise it
        hangs from such a row (a session from its booking) and follows it."""
        return "__" not in self.path


# Everything a record can hold, in the order the comparison lists it.
RECORD_KINDS: tuple[RecordKind, ...] = (
    RecordKind("medical_histories", gettext_lazy("Medical histories"), MedicalHistory, "patient"),
    RecordKind("consultations", gettext_lazy("Consultations"), Consultation, "patient"),
    RecordKind("photos", gettext_lazy("Photos"), Photo, "patient"),
    RecordKind("signed_consents", gettext_lazy("Signed consents"), SignedConsent, "patient"),
    RecordKind(
        "consent_withdrawals",
        gettext_lazy("Consent withdrawals"),
        ConsentWithdrawal,
        "signed_consent__patient",
    ),
    RecordKind("allergy_tests", gettext_lazy("Allergy (patch) tests"), AllergyTest, "patient"),
    RecordKind("allergies", gettext_lazy("Allergies recorded"), PatientAllergy, "patient"),
    RecordKind("courses", gettext_lazy("Treatment courses"), TreatmentCourse, "patient"),
    RecordKind("bookings", gettext_lazy("Bookings"), Booking, "patient"),
    RecordKind(
        "session_records", gettext_lazy("Session records"), SessionRecord, "booking__patient"
    ),
    RecordKind(
        "cocktail_lines", gettext_lazy("Cocktail lines"), CocktailLine, "session__booking__patient"
    ),
    RecordKind(
        "adverse_events", gettext_lazy("Adverse events"), AdverseEvent, "session__booking__patient"
    ),
    RecordKind("reminders", gettext_lazy("Reminders"), Reminder, "patient"),
    RecordKind("documents", gettext_lazy("Aftercare sheets"), PatientDocument, "patient"),
    RecordKind("download_links", gettext_lazy("Download links sent"), DownloadLink, "patient"),
    RecordKind("portal_accounts", gettext_lazy("Portal account"), PortalAccount, "patient"),
    RecordKind("contact_changes", gettext_lazy("Contact detail changes"), ContactChange, "patient"),
    RecordKind(
        "subject_access_exports",
        gettext_lazy("Copies of the records made (subject access)"),
        SubjectAccessExport,
        "patient",
    ),
    RecordKind("erasure_requests", gettext_lazy("Requests to erase"), ErasureRequest, "patient"),
    RecordKind(
        "merged_records", gettext_lazy("Records merged into it before"), Patient, "merged_into"
    ),
)

# The details compared side by side: (field, label). Of these, only the
# contact details in TAKEABLE may be taken from the duplicate.
COMPARED_FIELDS: tuple[tuple[str, StrOrPromise], ...] = (
    ("first_name", gettext_lazy("First name")),
    ("last_name", gettext_lazy("Last name")),
    ("date_of_birth", gettext_lazy("Date of birth")),
    ("email", gettext_lazy("Email")),
    ("phone", gettext_lazy("Mobile phone")),
    ("address", gettext_lazy("Address")),
    ("postcode", gettext_lazy("Postcode")),
    ("emergency_contact_name", gettext_lazy("Emergency contact")),
    ("emergency_contact_phone", gettext_lazy("Emergency contact phone")),
    ("gp_details", gettext_lazy("GP")),
)
TAKEABLE = ("email", "phone")


@dataclass(frozen=True)
class MergeProblem:
    """Something that stops the merge: what it is and what to do (`lead`), and
    the rows it concerns, one line each (a clash: both bookings)."""

    code: str
    lead: str
    lines: tuple[str, ...] = ()

    @property
    def sentence(self) -> str:
        """All of it in one sentence, as a refusal says it."""
        return " ".join([self.lead, "; ".join(self.lines) + "." if self.lines else ""]).strip()


@dataclass(frozen=True)
class DetailRow:
    """One detail of both records, as shown."""

    field: str
    label: str
    duplicate: str
    survivor: str
    takeable: bool  # differs, and the duplicate has a value the survivor may take

    @property
    def differs(self) -> bool:
        return self.duplicate != self.survivor


@dataclass(frozen=True)
class HoldingRow:
    key: str
    label: str
    duplicate: int
    survivor: int


@dataclass(frozen=True)
class MergeComparison:
    """Everything the comparison page shows, for `duplicate` merged into `survivor`."""

    duplicate: Patient
    survivor: Patient
    details: list[DetailRow]
    holdings: list[HoldingRow]
    problems: list[MergeProblem]
    shared_allergies: list[str]

    @property
    def can_merge(self) -> bool:
        return not self.problems

    @property
    def differences(self) -> list[DetailRow]:
        return [row for row in self.details if row.differs]

    @property
    def takeable(self) -> list[DetailRow]:
        return [row for row in self.details if row.takeable]


def _shown(patient: Patient, field: str) -> str:
    value = getattr(patient, field)
    if not value:
        return ""
    if field == "date_of_birth":
        return dates.birth_date(value)
    if field in ("phone", "emergency_contact_phone"):
        return str(value.as_national)
    return " ".join(str(value).split())


def _day(moment: object) -> str:
    return dates.day(moment)  # type: ignore[arg-type]


def _booking_words(booking: Booking) -> str:
    return _("%(when)s, %(protocol)s with %(practitioner)s in %(room)s") % {
        "when": dates.day_time(booking.starts_at),
        "protocol": booking.protocol.name,
        "practitioner": booking.practitioner.get_full_name() or booking.practitioner.get_username(),
        "room": booking.room.name,
    }


# --- Finding the records --------------------------------------------------------------


def merge_record_get_for_user(*, user: User, patient_uuid: uuid.UUID) -> Patient:
    """A record this user may see, merged or not (the merge judges that), with
    the record it was merged into, if any; 404 otherwise."""
    try:
        return patient_records_visible_to(user).select_related("merged_into").get(uuid=patient_uuid)
    except Patient.DoesNotExist:
        raise Http404 from None


def merge_candidates(*, user: User, patient: Patient) -> list[Patient]:
    """Records that may be the same person as `patient` (same folded name and
    birth date, same email or same mobile; `patient_possible_duplicates`),
    not merged, that `user` may see. Two queries."""
    return patient_possible_duplicates(
        user=user,
        first_name=patient.first_name,
        last_name=patient.last_name,
        date_of_birth=patient.date_of_birth,
        email=patient.email,
        phone=patient.phone.as_e164 if patient.phone else "",
        exclude=patient,
    )


# --- What stops a merge ---------------------------------------------------------------


def merge_booking_clashes(
    *, duplicate: Patient, survivor: Patient
) -> list[tuple[Booking, Booking]]:
    """Pairs (duplicate's booking, survivor's booking) that hold overlapping
    times: the database's exclusion constraint on a patient's bookings would
    refuse to hold both on one record. Past or future, booked, arrived or
    completed (cancelled and missed ones hold no time). One query."""
    holding = Booking.objects.filter(status__in=HOLDING_STATUSES)

    def overlapping(patient: Patient) -> Exists:
        return Exists(
            holding.filter(
                patient=patient,
                starts_at__lt=OuterRef("ends_at"),
                ends_at__gt=OuterRef("starts_at"),
            )
        )

    rows = list(
        holding.filter(
            (Q(patient=duplicate) & overlapping(survivor))
            | (Q(patient=survivor) & overlapping(duplicate))
        )
        .select_related("protocol", "practitioner", "room")
        .order_by("starts_at", "id")
    )
    ours = [b for b in rows if b.patient_id == duplicate.pk]
    theirs = [b for b in rows if b.patient_id == survivor.pk]
    return [
        (a, b) for a in ours for b in theirs if a.starts_at < b.ends_at and b.starts_at < a.ends_at
    ]


def merge_problems(*, duplicate: Patient, survivor: Patient) -> list[MergeProblem]:
    """Every reason `duplicate` cannot be merged into `survivor` now, each a
    sentence naming what to do; empty when the merge can go ahead.

    The same record twice; a record already merged; an anonymised record
    (never joined to one that names someone); bookings of the two that
    overlap in time (reception cancels or moves one first); a portal account
    on each (a record holds one). At most three queries.
    """
    if duplicate.pk == survivor.pk:
        return [
            MergeProblem(
                "same_record",
                _("A record cannot be merged into itself. Choose the other record of this person."),
            )
        ]
    problems = []
    if duplicate.merged_into_id is not None:
        problems.append(
            MergeProblem(
                "already_merged",
                _("%(name)s's record was already merged into %(target)s's, on %(day)s.")
                % {
                    "name": duplicate.full_name,
                    "target": duplicate.merged_into.full_name if duplicate.merged_into else "",
                    "day": _day(duplicate.merged_at),
                },
            )
        )
    if survivor.merged_into_id is not None:
        problems.append(
            MergeProblem(
                "survivor_merged",
                _(
                    "%(name)s's record was itself merged into another on %(day)s: "
                    "open the record that stays and merge into that one."
                )
                % {"name": survivor.full_name, "day": _day(survivor.merged_at)},
            )
        )
    if problems:
        return problems
    anonymised = [p for p in (duplicate, survivor) if p.is_anonymised]
    if anonymised:
        # Joining a record that names no one to one that does would put a name
        # back on the anonymised clinical record (treatments.services.data_rights).
        return [
            MergeProblem(
                "anonymised",
                _(
                    "One of these records was anonymised when its retention period ended: "
                    "it names no one and is never merged with a record that does."
                ),
            )
        ]
    for ours, theirs in merge_booking_clashes(duplicate=duplicate, survivor=survivor):
        problems.append(
            MergeProblem(
                "bookings_overlap",
                _(
                    "Both records are booked at the same time, and one person cannot hold "
                    "both bookings: reception must cancel or move one of them first."
                ),
                (
                    _("%(name)s's record: %(booking)s")
                    % {"name": duplicate.full_name, "booking": _booking_words(ours)},
                    _("%(name)s's record: %(booking)s")
                    % {"name": survivor.full_name, "booking": _booking_words(theirs)},
                ),
            )
        )
    accounts = {
        a.patient_id: a
        for a in PortalAccount.objects.filter(patient__in=[duplicate, survivor]).select_related(
            "user"
        )
    }
    if len(accounts) == 2:
        problems.append(
            MergeProblem(
                "two_portal_accounts",
                _(
                    "Both records have a patient portal account (%(ours)s on %(duplicate)s's "
                    "record, %(theirs)s on %(survivor)s's): a record can have only one. One of "
                    "them must be closed first."
                )
                % {
                    "ours": accounts[duplicate.pk].user.email or _("no email"),
                    "theirs": accounts[survivor.pk].user.email or _("no email"),
                    "duplicate": duplicate.full_name,
                    "survivor": survivor.full_name,
                },
            )
        )
    return problems


# --- What each record holds ----------------------------------------------------------


def merge_holdings(*, patients: Sequence[Patient]) -> dict[int, dict[str, int]]:
    """{patient id: {kind key: rows}} for every kind of RECORD_KINDS: one
    query, whatever the number of rows."""
    counts = {
        f"n_{kind.key}": Coalesce(
            Subquery(
                kind.model._default_manager.filter(**{kind.path: OuterRef("pk")})
                .order_by()
                .annotate(n=Func(F("pk"), function="COUNT"))
                .values("n")
            ),
            0,
        )
        for kind in RECORD_KINDS
    }
    rows = Patient.objects.filter(pk__in=[p.pk for p in patients]).annotate(**counts)
    return {
        row["pk"]: {kind.key: row[f"n_{kind.key}"] for kind in RECORD_KINDS}
        for row in rows.values("pk", *counts)
    }


def merge_shared_allergies(*, duplicate: Patient, survivor: Patient) -> list[PatientAllergy]:
    """The duplicate's allergies to an ingredient the survivor's record already
    lists: a record lists each ingredient once, and a recorded allergy is never
    deleted, so these stay on the merged record. One query."""
    return list(
        PatientAllergy.objects.filter(
            patient=duplicate,
            ingredient__in=PatientAllergy.objects.filter(patient=survivor).values("ingredient"),
        )
        .select_related("ingredient")
        .order_by("ingredient__name")
    )


def merge_comparison(*, duplicate: Patient, survivor: Patient) -> MergeComparison:
    """Both records side by side, for the practitioner to check before
    merging `duplicate` into `survivor`: their details, what each holds, and
    every problem that stops the merge. Six queries at most, whatever the
    number of rows."""
    holdings = merge_holdings(patients=[duplicate, survivor])
    empty = dict.fromkeys((k.key for k in RECORD_KINDS), 0)
    ours, theirs = holdings.get(duplicate.pk, empty), holdings.get(survivor.pk, empty)
    details = []
    for field, label in COMPARED_FIELDS:
        mine, kept = _shown(duplicate, field), _shown(survivor, field)
        details.append(
            DetailRow(
                field=field,
                label=str(label),
                duplicate=mine,
                survivor=kept,
                takeable=field in TAKEABLE and bool(mine) and mine != kept,
            )
        )
    return MergeComparison(
        duplicate=duplicate,
        survivor=survivor,
        details=details,
        holdings=[
            HoldingRow(kind.key, str(kind.label), ours[kind.key], theirs[kind.key])
            for kind in RECORD_KINDS
        ],
        problems=merge_problems(duplicate=duplicate, survivor=survivor),
        shared_allergies=[
            a.ingredient.name
            for a in merge_shared_allergies(duplicate=duplicate, survivor=survivor)
        ],
    )

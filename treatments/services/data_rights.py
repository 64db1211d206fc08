"""Patients' data rights (UK GDPR): subject-access exports (Art. 15).

An export is a document of the clinic's one pipeline (clinic.documents): a
row queued with the request, a render task sent after commit, retried and
swept like every other document. Every request, download and deletion of
an export is an audit event naming the patient, so the patient's access
history shows it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial

from dateutil.relativedelta import relativedelta
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from clinic.audit import audit_log
from clinic.background import enqueue
from clinic.documents import (
    DocumentStatus,
    document_queue,
    document_render,
    document_requeue_afresh,
    document_requeue_due,
)
from clinic.models import AuditAction, User
from clinic.refusals import RefusalKind, RefusedError
from patients.models import Patient
from treatments.models import (
    SUBJECT_ACCESS_KEEP,
    ErasureRequest,
    ErasureStatus,
    SubjectAccessExport,
)

logger = logging.getLogger(__name__)


class DataRightsRefusedError(RefusedError):
    code = "data_rights_refused"
    kind = RefusalKind.CONFLICT


def subject_access_enqueue(*, export_id: int) -> bool:
    """Send the render task to the broker; False (logged) if it cannot be reached."""
    from treatments.tasks.data_rights import subject_access_render as render_task

    return enqueue(render_task, export_id, label=f"subject access export {export_id}")


def _enqueue(pk: int) -> bool:
    return subject_access_enqueue(export_id=pk)


@transaction.atomic
def subject_access_request(*, patient: Patient, requested_by: User) -> SubjectAccessExport:
    """Queue a subject-access export of `patient`'s whole record (UK GDPR
    Art. 15; the clinic has one month to answer, ICO guidance), asked for by
    `requested_by` (a practitioner or manager; the view checks the role and
    that the user may see the patient). An export of the patient still being
    made is returned instead of a second one (a double click makes one ZIP).
    Audited as a creation naming the patient. Raises `DataRightsRefusedError`
    for a record merged into another (export the record that stayed), and
    for an anonymised record."""
    if patient.merged_into_id is not None:
        raise DataRightsRefusedError(
            "This record was merged into another: export the record that stayed."
        )
    if patient.is_anonymised:
        # Art. 15 gives a person a copy of the data about them. An anonymised
        # record no longer relates to anyone who can be identified (UK GDPR
        # recital 26): no name, date of birth or contact detail is left to
        # check a requester's identity against, so no one can be given it.
        raise DataRightsRefusedError(
            _(
                "This record was anonymised: it names no one any more, so no one can be "
                "given a copy of it."
            )
        )
    # The patient's row locked: two requests at once make one export.
    Patient.objects.select_for_update().filter(pk=patient.pk).values_list("pk").get()
    pending = SubjectAccessExport.objects.filter(
        patient=patient, status=DocumentStatus.QUEUED
    ).first()
    if pending is not None:
        return pending
    export = document_queue(
        row=SubjectAccessExport(patient=patient, requested_by=requested_by), enqueue=_enqueue
    )
    audit_log(actor=requested_by, action=AuditAction.CREATE, obj=export, patient_ref=patient.uuid)
    return export


def _set_progress(pk: int, percent: int) -> None:
    SubjectAccessExport.objects.filter(pk=pk, status=DocumentStatus.QUEUED).update(progress=percent)


def subject_access_render_zip(export: SubjectAccessExport) -> bytes:
    """The renderer of the pipeline: read the record and build the ZIP,
    writing the progress (0-100) to the row as it goes."""
    from treatments.subject_access.archive import build_zip
    from treatments.subject_access.collect import subject_access_collect

    _set_progress(export.pk, 5)
    data = subject_access_collect(patient=export.patient, made_at=timezone.now())
    _set_progress(export.pk, 15)
    return build_zip(data, lambda percent: _set_progress(export.pk, percent))


def subject_access_render(*, export_id: int) -> SubjectAccessExport:
    """Make one export (the task's body): ready with its checksum and an
    expiry SUBJECT_ACCESS_KEEP (7 days) ahead, or the failure recorded by the
    pipeline. Safe to run twice: the ZIP is replaced at its one path.
    An export withdrawn before its render (`subject_access_withdraw`: a
    request to erase, or the anonymisation) is not made; one withdrawn while
    it was being made has its file deleted at once.
    Raises `SubjectAccessExport.DoesNotExist` for a row that is gone."""
    withdrawn = SubjectAccessExport.objects.filter(pk=export_id, purged_at__isnull=False).first()
    if withdrawn is not None:
        return withdrawn
    row = document_render(
        model=SubjectAccessExport,
        pk=export_id,
        renderer=subject_access_render_zip,
        related=("patient",),
    )
    if row.status == DocumentStatus.READY:
        size = row.file.size if row.file else 0
        kept = SubjectAccessExport.objects.filter(pk=row.pk, purged_at__isnull=True).update(
            progress=100,
            size_bytes=size,
            expires_at=(row.generated_at or timezone.now()) + SUBJECT_ACCESS_KEEP,
        )
        if not kept and row.file:
            _unlink(row.file.name)
        row.refresh_from_db(fields=["progress", "size_bytes", "expires_at", "purged_at"])
    return row


# `error` of an export withdrawn before it was made (shown as withdrawn, not as failed).
WITHDRAWN = "withdrawn"


def subject_access_withdraw(
    *, patient_ids: list[int], by: User | None, actor_label: str = ""
) -> int:
    """Withdraw every export of these records not yet deleted: the file is
    deleted once the caller's transaction commits, the download refused from
    now (410) and an export still being made is not made (`error`
    WITHDRAWN). Each is audited as a deletion by `by` (or `actor_label` for
    the scheduled task), naming the patient. Call inside a transaction.
    Idempotent. Returns how many were withdrawn."""
    now = timezone.now()
    rows = list(
        SubjectAccessExport.objects.select_for_update(of=("self",))
        .filter(patient_id__in=patient_ids, purged_at__isnull=True)
        .select_related("patient")
        .order_by("pk")
    )
    for export in rows:
        # A new generation: a render under way writes no file (clinic.documents).
        changes: dict[str, object] = {"purged_at": now, "generation": F("generation") + 1}
        if export.status == DocumentStatus.QUEUED:
            changes.update(status=DocumentStatus.FAILED, next_attempt_at=None, error=WITHDRAWN)
        SubjectAccessExport.objects.filter(pk=export.pk).update(**changes)
        audit_log(
            actor=by,
            actor_label=actor_label,
            action=AuditAction.DELETE,
            obj=export,
            patient_ref=export.patient.uuid,
        )
        if export.file:
            transaction.on_commit(partial(_unlink, export.file.name))
    return len(rows)


def subject_access_requeue_due() -> int:
    """The sweep, every minute: send again the render tasks that were lost
    (broker down, worker killed). Returns how many were sent."""
    return document_requeue_due(model=SubjectAccessExport, enqueue=_enqueue)


def subject_access_purge_expired(*, limit: int = 100) -> int:
    """Delete the files of exports past their expiry (a whole record should
    not linger on the server), keeping the rows as the record that each
    request was met. Audited as a deletion by the scheduled task. Idempotent.
    Returns how many files were deleted."""
    now = timezone.now()
    due = SubjectAccessExport.objects.filter(
        purged_at__isnull=True, expires_at__lte=now
    ).select_related("patient")[:limit]
    purged = 0
    for export in due:
        with transaction.atomic():
            claimed = SubjectAccessExport.objects.filter(
                pk=export.pk, purged_at__isnull=True
            ).update(purged_at=now)
            if not claimed:
                continue
            audit_log(
                actor=None,
                actor_label="scheduled task",
                action=AuditAction.DELETE,
                obj=export,
                patient_ref=export.patient.uuid,
            )
        if export.file:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(export.file.path)
        purged += 1
    return purged


# --- Erasure and retention (UK GDPR Art. 17, 5(1)(e)) ---------------------------------

# The values an erased or anonymised record is left with.
ANONYMOUS_FIRST_NAME = "Anonymised"
ANONYMOUS_LAST_NAME = "record"
# A date of birth is required by the register; this placeholder (the
# earliest the database allows) says nothing about the person.
ANONYMOUS_BIRTH_DATE = date(1900, 1, 1)
# What a request to erase erases at once: the contact details used to send
# messages and the agreement to messages (the erasure Art. 17 asks for where
# no exemption applies). The rest of the record is clinical and kept.
ERASED_AT_ONCE = ("email", "phone", "reminder_channel", "consents_to_messages")
# What anonymisation removes from the register when the retention ends.
ANONYMISED_FIELDS = (
    "first_name",
    "last_name",
    "date_of_birth",
    "email",
    "phone",
    "address",
    "postcode",
    "emergency_contact_name",
    "emergency_contact_phone",
    "gp_details",
    "reminder_channel",
    "consents_to_messages",
)
SCHEDULED_TASK = "scheduled task"


@dataclass(frozen=True)
class Anonymised:
    """What anonymisation does with one model reaching a patient: the fields
    it removes, replaces or makes again (`removes`), and what happens to the
    rest and why (`why`)."""

    removes: tuple[str, ...]
    why: str


_CLINICAL = (
    "part of the clinical record the retention keeps (what was done, found or agreed, "
    "when and by whom); it names no one once the register's details are anonymised"
)

# Every model reaching a patient, and what `patient_anonymise` does with it.
# A test (tests/treatments/test_anonymisation.py) fails on a model reaching
# a patient that is not here, or whose files or naming fields are not removed.
ANONYMISATION: dict[str, Anonymised] = {
    "patients.patient": Anonymised(
        (*ANONYMISED_FIELDS, "search_text"),
        "the register's details that name or reach the person are replaced or emptied, "
        "on the record and on every record merged into it; the row stays for the record",
    ),
    "patients.medicalhistory": Anonymised((), "the health questionnaire as signed: " + _CLINICAL),
    "patients.consultation": Anonymised((), "the consultation's findings: " + _CLINICAL),
    "patients.photo": Anonymised(
        ("image",), "clinical photographs show the person: rows and files are deleted"
    ),
    "patients.contactchange": Anonymised(
        ("previous",),
        "the previous email or number is forgotten; which detail changed, when and by "
        "whom stays as the trail of the change",
    ),
    "consent.signedconsent": Anonymised(
        ("signer_name", "signature"),
        "the name typed and the drawn signature go; the text signed, its fingerprint, "
        "the version, the date and the choice about photographs stay (what was agreed)",
    ),
    "consent.consentwithdrawal": Anonymised((), "the withdrawal of a consent: " + _CLINICAL),
    "consent.signedconsentpdf": Anonymised(
        ("file",),
        "the copy naming the patient is deleted and the PDF made again from the anonymised consent",
    ),
    "treatments.allergytest": Anonymised(
        ("photo",),
        "the photograph of the test site is deleted (it shows the person); the test and "
        "its reading stay as clinical record",
    ),
    "treatments.patientallergy": Anonymised(
        ("notes",),
        "an allergy found stays (clinical record); in its notes, the name and birth date "
        "a merge quoted are replaced",
    ),
    "treatments.treatmentcourse": Anonymised((), "the course of treatment: " + _CLINICAL),
    "treatments.booking": Anonymised((), "the booking and its times: " + _CLINICAL),
    "treatments.bookingevent": Anonymised((), "the history of a booking: " + _CLINICAL),
    "treatments.sessionrecord": Anonymised((), "the session given: " + _CLINICAL),
    "treatments.cocktailline": Anonymised((), "what was injected, batch and lot: " + _CLINICAL),
    "treatments.injectionpoint": Anonymised((), "where it was injected: " + _CLINICAL),
    "treatments.adverseevent": Anonymised((), "a side effect: " + _CLINICAL),
    "treatments.adverseeventfollowup": Anonymised((), "a side effect's follow-up: " + _CLINICAL),
    "treatments.sessionamendment": Anonymised((), "a correction of a session: " + _CLINICAL),
    "treatments.dayofcheck": Anonymised((), "the checks on the day: " + _CLINICAL),
    "treatments.cautionacknowledgement": Anonymised((), "a caution acknowledged: " + _CLINICAL),
    "treatments.patientdocument": Anonymised(
        ("file",),
        "the aftercare sheet naming the patient is deleted and made again from the "
        "anonymised record",
    ),
    "treatments.downloadlink": Anonymised(
        (), "links still live are revoked; a link holds only the hash of its token"
    ),
    "treatments.portalaccount": Anonymised(
        (),
        "the account's sign-in user loses its name and email, is renamed after the "
        "record's reference and can no longer sign in",
    ),
    "treatments.portallogintoken": Anonymised(
        (), "one-time sign-in codes, stored as hashes, of a user who can no longer sign in"
    ),
    "treatments.linkattempt": Anonymised(
        (), "network addresses of tries at a download link, deleted after a day anyway"
    ),
    "treatments.reminder": Anonymised(
        (), "messages still owed are cancelled; a reminder holds no address itself"
    ),
    "treatments.subjectaccessexport": Anonymised(
        ("file",),
        "every export not yet deleted is withdrawn: its ZIP deleted, its download refused; "
        "the row stays as the record that the request was met",
    ),
    "treatments.erasurerequest": Anonymised(
        ("notes",),
        "the request's notes may name the patient and are cleared; the dates and the "
        "retention's reason stay as the record of the request",
    ),
}


class ErasureRefusedError(RefusedError):
    code = "erasure_refused"
    kind = RefusalKind.CONFLICT


@dataclass(frozen=True)
class Retention:
    """How long a patient's clinical record is kept, and why.

    `last_treated_on`: the local date of the last treatment (None: never
    treated); `retain_until`: the last day the record is kept (anonymised
    from the day after); `reason`: the manager's explanation."""

    last_treated_on: date | None
    retain_until: date
    reason: str


def last_treatment_on(patient: Patient) -> date | None:
    """The local (clinic) date of the patient's last treatment: the latest
    moment of their clinical record, whichever kind it is (a completed
    session, a consultation, an allergy (patch) test given, a medical
    history or consent form signed, a side effect's onset or follow-up).
    Each is part of the health record the retention keeps (NHS Records
    Management Code of Practice 2021: the whole record, not only the
    procedures). None if the patient has none of them (never treated).
    Seven queries, whatever the record holds."""
    from django.db.models import Max

    from consent.models import SignedConsent
    from patients.models import MedicalHistory
    from treatments.models import (
        AdverseEvent,
        AdverseEventFollowUp,
        AllergyTest,
        Booking,
        BookingStatus,
    )

    moments = [
        Booking.objects.filter(patient=patient, status=BookingStatus.COMPLETED).aggregate(
            at=Max("starts_at")
        )["at"],
        patient.consultations.aggregate(at=Max("recorded_at"))["at"],
        AllergyTest.objects.filter(patient=patient).aggregate(at=Max("given_at"))["at"],
        MedicalHistory.objects.filter(patient=patient).aggregate(at=Max("signed_at"))["at"],
        SignedConsent.objects.filter(patient=patient).aggregate(at=Max("signed_at"))["at"],
        AdverseEvent.objects.filter(session__booking__patient=patient).aggregate(at=Max("onset"))[
            "at"
        ],
        AdverseEventFollowUp.objects.filter(event__session__booking__patient=patient).aggregate(
            at=Max("recorded_at")
        )["at"],
    ]
    days = [timezone.localtime(moment).date() for moment in moments if moment]
    return max(days, default=None)


def birthday(born: date, years: int) -> date:
    """The day a person born on `born` turns `years` old. Someone born on 29
    February turns a year older on 1 March in a common year: the Family Law
    Reform Act 1969 s.9 makes an age start at "the commencement of the
    relevant anniversary of the date of his birth", and a 29 February
    birthday has no anniversary in a common year until the day after 28
    February (the Age of Legal Capacity (Scotland) Act 1991 s.6(2) says 1
    March in so many words). For the retention it is also the later day, so
    a record is never anonymised early. Raises nothing."""
    try:
        return born.replace(year=born.year + years)
    except ValueError:  # 29 February in a common year
        return date(born.year + years, 3, 1)


def _age_on(born: date, day: date) -> int:
    years = day.year - born.year
    return years if day >= birthday(born, years) else years - 1


def retention_for(patient: Patient, *, today: date, since: date | None = None) -> Retention:
    """The retention of `patient`'s clinical record, from the clinic's
    settings as they are now (clinic.clinic_settings.current()):

    - treated as an adult (18 or over at the last treatment): until
      `adult_record_retention_years` (default 8) after the last treatment;
    - treated as a child: until the `child_record_retention_until_age`
      birthday (default 25), a year later (26) if they were 17 at the last
      treatment, or the adult period if that ends later. A 29 February
      birthday falls on 1 March in a common year (`birthday`).

    Source: NHS Records Management Code of Practice (2021), retention
    schedule for adult and children's health records; UK GDPR Art. 17(3)(c)
    and (h) let the clinic keep a health record it must keep despite a
    request to erase. A patient never treated (no clinical record at all,
    `last_treatment_on`) has nothing the clinic must keep: the retention
    ends on `since` (the day the request was received; the same answer
    every day, so the next daily run anonymises), or `today` when not given.
    `today`: the clinic's local date. Raises nothing."""
    from clinic.clinic_settings import current

    rules = current()
    last = last_treatment_on(patient)
    if last is None:
        return Retention(
            None,
            since or today,
            _(
                "This patient was never treated (no session, consultation, allergy test, "
                "medical history, consent or side effect on record), so there is no clinical "
                "record the clinic must keep: the record is anonymised at the next daily run."
            ),
        )
    adult_years = rules.adult_record_retention_years
    adult_until = last + relativedelta(years=adult_years)
    age = _age_on(patient.date_of_birth, last)
    if age >= 18:
        reason = _(
            "Clinical records of adults are kept for %(years)s years after the last "
            "treatment (%(last)s), as the NHS Records Management Code of Practice sets out; "
            "UK GDPR Article 17(3)(c) and (h) allow the clinic to keep them despite the "
            "request. The record is anonymised after %(until)s."
        ) % {"years": adult_years, "last": _long(last), "until": _long(adult_until)}
        return Retention(last, adult_until, reason)
    until_age = rules.child_record_retention_until_age + (1 if age == 17 else 0)
    child_until = birthday(patient.date_of_birth, until_age)
    until = max(child_until, adult_until)
    reason = _(
        "This patient was treated as a child (aged %(age)s at the last treatment, %(last)s). "
        "Children's records are kept until the %(until_age)sth birthday%(when_17)s, as the "
        "NHS Records Management Code of Practice sets out; UK GDPR Article 17(3)(c) and (h) "
        "allow the clinic to keep them despite the request. The record is anonymised after "
        "%(until)s."
    ) % {
        "age": age,
        "last": _long(last),
        "until_age": until_age,
        "when_17": _(" (a year later because they were 17)") if age == 17 else "",
        "until": _long(until),
    }
    return Retention(last, until, reason)


def _long(day: date) -> str:
    from clinic import dates

    return dates.day(day, year=True)


def _search_text(patient: Patient) -> str:
    from patients.services import patient_search_text

    return patient_search_text(patient)


def _stop_messages(patient: Patient, *, reason: str) -> None:
    """Cancel the messages still owed to the patient and forget the previous
    addresses kept for contact-change notices."""
    from patients.models import ContactChange, ContactNoticeStatus
    from treatments.models import DownloadLink, Reminder, ReminderChannel, ReminderStatus

    now = timezone.now()
    Reminder.objects.filter(
        patient=patient,
        status__in=(ReminderStatus.PLANNED, ReminderStatus.SENDING),
        channel__in=(ReminderChannel.EMAIL, ReminderChannel.SMS),
    ).update(
        status=ReminderStatus.CANCELLED, error=reason[:300], claimed_until=None, updated_at=now
    )
    ContactChange.objects.filter(patient=patient).exclude(previous="").update(
        previous="", notice_status=ContactNoticeStatus.NONE, notice_due_at=None
    )
    DownloadLink.objects.filter(patient=patient, revoked_at__isnull=True).update(revoked_at=now)


def erasure_apply_at_once(*, patient: Patient, by: User) -> list[str]:
    """Erase what a request to erase erases at once (`ERASED_AT_ONCE`: the
    email address, mobile number, reminder channel and agreement to
    messages) from `patient` and every record merged into it, cancel the
    messages still owed, revoke live download links, withdraw the
    subject-access exports not yet deleted (`subject_access_withdraw`),
    forget previous addresses kept for notices and close a portal account. Used when a
    request is recorded and when a merge brings a request to the record
    that stays (the same person: the erasure follows them). Call inside a
    transaction; the rows are locked. Each record changed is audited by
    `by`, naming the fields (never their values). Idempotent. Returns the
    names of the fields erased on `patient` itself."""
    from patients.models import ReminderChannel as PatientChannel

    empty = {
        "email": "",
        "phone": "",
        "reminder_channel": PatientChannel.NONE,
        "consents_to_messages": False,
    }
    records = list(
        Patient.objects.select_for_update()
        .filter(Q(pk=patient.pk) | Q(merged_into=patient))
        .order_by("pk")
    )
    erased_here: list[str] = []
    for record in records:
        erased = [name for name, value in empty.items() if getattr(record, name) != value]
        if record.pk == patient.pk:
            erased_here = erased
        if not erased:
            continue
        for name in erased:
            setattr(record, name, empty[name])
        record.search_text = _search_text(record)
        record.version += 1
        record.save(update_fields=[*erased, "search_text", "version", "updated_at"])
        audit_log(
            actor=by,
            action=AuditAction.UPDATE,
            obj=record,
            patient_ref=record.uuid,
            changed_fields=erased,
        )
    for record in records:
        _stop_messages(record, reason=str(_("The patient asked for their data to be erased.")))
        _close_portal(record)
    # Exports already made are withdrawn at once rather than left for their 7
    # days: each holds the contact details this request erases (and the whole
    # record), and a copy kept on the server would outlive the erasure. The
    # patient may ask for a new export, which shows the record as it now is.
    subject_access_withdraw(patient_ids=[record.pk for record in records], by=by)
    return erased_here


@transaction.atomic
def erasure_request_record(
    *,
    patient: Patient,
    recorded_by: User,
    received_on: date,
    notes: str = "",
    submission_token: uuid.UUID | None = None,
) -> ErasureRequest:
    """Record a patient's request to erase their data (UK GDPR Art. 17),
    received on `received_on` (local date; the clinic has one month to
    answer), and act on it at once (`erasure_apply_at_once`, on the record
    and the records merged into it). The clinical record is kept until
    `retention_for` says (stored with its reason, which the page shows the
    manager; the daily run works it out again from the settings of the day),
    then anonymised by `retention_anonymise_due`.

    When a request is already recorded and not yet done (a second one, or
    one a merge brought), that request is returned, not a new one, and the
    erasure at once is applied again (details typed since are erased).

    Audited: the request's creation and each record's erased fields, naming
    the patient. Raises `ErasureRefusedError` when the record was merged
    into another or already anonymised; `AlreadySubmittedError` for the same
    form sent twice."""
    from clinic.concurrency import submission_check

    submission_check(ErasureRequest, submission_token, by=recorded_by)
    if patient.merged_into_id is not None:
        raise ErasureRefusedError(
            _("This record was merged into another: record the request on the record that stayed.")
        )
    if patient.is_anonymised:
        raise ErasureRefusedError(
            _(
                "This record was already anonymised: nothing that names the patient is left "
                "to erase."
            )
        )
    locked = Patient.objects.select_for_update().get(pk=patient.pk)
    erased = erasure_apply_at_once(patient=locked, by=recorded_by)
    existing = (
        ErasureRequest.objects.filter(patient=locked, status=ErasureStatus.RETAINED)
        .order_by("received_on", "pk")
        .first()
    )
    if existing is not None:
        patient.refresh_from_db()
        return existing
    retention = retention_for(locked, today=timezone.localdate(), since=received_on)
    erasure = ErasureRequest(
        patient=locked,
        received_on=received_on,
        notes=notes,
        recorded_by=recorded_by,
        erased_fields=erased,
        last_treated_on=retention.last_treated_on,
        retain_until=retention.retain_until,
        retention_reason=str(retention.reason),
        submission_token=submission_token,
    )
    erasure.full_clean()
    erasure.save(force_insert=True)
    audit_log(actor=recorded_by, action=AuditAction.CREATE, obj=erasure, patient_ref=locked.uuid)
    patient.refresh_from_db()
    return erasure


def _close_portal(patient: Patient) -> None:
    from treatments.models import PortalAccount

    account = PortalAccount.objects.filter(patient=patient).select_related("user").first()
    if account is not None and account.user.is_active:
        User.objects.filter(pk=account.user_id).update(is_active=False)


def _treatment_open(patient: Patient, now: datetime) -> bool:
    """An upcoming booking or a side effect not yet resolved: the patient is
    still in the clinic's care, so the record is not anonymised."""
    from treatments.models import AdverseEvent, Booking, BookingStatus

    upcoming = Booking.objects.filter(
        patient=patient,
        status__in=(BookingStatus.BOOKED, BookingStatus.ARRIVED),
        ends_at__gte=now,
    ).exists()
    open_event = AdverseEvent.objects.filter(
        session__booking__patient=patient, resolved_on__isnull=True
    ).exists()
    return upcoming or open_event


def patient_anonymise(*, patient: Patient) -> list[str]:
    """Remove from `patient` and the records merged into it everything that
    names them (what happens to each model reaching a patient, and why the
    rest stays, is ANONYMISATION):

    - the register's details: names, date of birth, contact details,
      address, emergency contact, GP;
    - the name typed and the drawn signature on their signed consents (the
      text signed, its fingerprint, the version, the date and the choice
      about photographs stay: the clinical record of what was agreed);
    - their clinical photographs and the photographs of allergy test sites
      (files and, for clinical photographs, rows; the readings stay);
    - the PDFs made of the record (consent copies, aftercare sheets): the
      copies naming them are deleted and the documents made again, anonymous;
    - their subject-access exports (withdrawn, `subject_access_withdraw`);
    - their portal sign-in; the messages still owed; previous addresses;
    - their names and birth dates quoted by a merge in allergy notes.

    The signed rows change through the database's one path for this
    (ANONYMISE_SETTING, treatments migration 0021). Files are deleted, and
    documents queued again, once the caller's transaction commits. The
    clinical record stays, anonymous, for the clinic's statistics and batch
    recalls; audit events keep their references (patient_ref). Call inside a
    transaction. Idempotent: a second run changes nothing. Returns the names
    of what it changed (fields of the register, then kinds of rows)."""
    from patients.models import Photo
    from patients.models import ReminderChannel as PatientChannel

    changed: set[str] = set()
    blank = {
        "first_name": ANONYMOUS_FIRST_NAME,
        "last_name": ANONYMOUS_LAST_NAME,
        "date_of_birth": ANONYMOUS_BIRTH_DATE,
        "email": "",
        "phone": "",
        "address": "",
        "postcode": "",
        "emergency_contact_name": "",
        "emergency_contact_phone": "",
        "gp_details": "",
        "reminder_channel": PatientChannel.NONE,
        "consents_to_messages": False,
    }
    records = [patient, *Patient.objects.filter(merged_into=patient).order_by("pk")]
    ids = [record.pk for record in records]
    # Before the names go: what a merge wrote quoting them.
    if _merge_notes_anonymise(records):
        changed.add("allergy_notes")
    now = timezone.now()
    for record in records:
        differs = [name for name, value in blank.items() if getattr(record, name) != value]
        if not differs and record.anonymised_at is not None:
            continue
        for name in differs:
            setattr(record, name, blank[name])
        # Kept once set: a second run leaves the day it was anonymised.
        marked = ["anonymised_at"] if record.anonymised_at is None else []
        if marked:
            record.anonymised_at = now
        record.search_text = _search_text(record)
        record.version += 1
        record.save(update_fields=[*differs, *marked, "search_text", "version", "updated_at"])
        changed.update(differs)
    _set_anonymise(str(patient.pk))
    try:
        if _signed_records_anonymise(ids):
            changed.add("signed_consents")
        if _allergy_photos_remove(ids):
            changed.add("allergy_test_photos")
    finally:
        _set_anonymise("")
    photos = list(Photo.objects.filter(patient_id__in=ids).order_by("pk"))
    for photo in photos:
        name = photo.image.name
        photo.delete()
        transaction.on_commit(partial(_unlink, name))
    if photos:
        changed.add("photos")
    if changed & {*blank, "signed_consents"}:
        # The copies made while the record named them; made again anonymous.
        changed.update(_documents_remake(ids))
    if subject_access_withdraw(patient_ids=ids, by=None, actor_label=SCHEDULED_TASK):
        changed.add("subject_access_exports")
    if _portal_accounts_anonymise(ids):
        changed.add("portal_account")
    for record in records:
        _stop_messages(record, reason="The record was anonymised.")
    return sorted(changed)


# The transaction-local setting the triggers of signed records read
# (treatments migration 0021): the id of the record being anonymised.
ANONYMISE_SETTING = "clinic.patient_anonymise"
# The name a signed consent is left with (the database requires one).
ANONYMOUS_SIGNER = f"{ANONYMOUS_FIRST_NAME} {ANONYMOUS_LAST_NAME}"
# A birth date quoted in a note, once anonymised.
ANONYMOUS_BORN = "-"


def _set_anonymise(value: str) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config(%s, %s, true)", [ANONYMISE_SETTING, value])


def _merge_notes_anonymise(records: list[Patient]) -> bool:
    """A merge quotes the merged record's name and birth date in the notes
    of the allergies both records listed (treatments.services.merge.
    _shared_allergies_note): replace them. Other clinical notes are the
    clinic's own words about the treatment and stay as written."""
    from clinic import dates
    from treatments.models import PatientAllergy

    quoted = [
        (record.full_name, dates.birth_date(record.date_of_birth))
        for record in records
        if record.first_name != ANONYMOUS_FIRST_NAME or record.last_name != ANONYMOUS_LAST_NAME
    ]
    if not quoted:
        return False
    changed = False
    allergies = PatientAllergy.objects.select_for_update().filter(
        patient_id__in=[record.pk for record in records]
    )
    for allergy in allergies.order_by("pk"):
        notes = allergy.notes
        for name, born in quoted:
            if name.strip():
                notes = notes.replace(name, ANONYMOUS_SIGNER)
            notes = notes.replace(born, ANONYMOUS_BORN)
        if notes != allergy.notes:
            PatientAllergy.objects.filter(pk=allergy.pk).update(notes=notes)
            changed = True
    return changed


def _signed_records_anonymise(ids: list[int]) -> bool:
    """The name typed and the drawn signature of each signed consent of these
    records go; its PDF is made again by `_documents_remake`."""
    from consent.models import SignedConsent

    consents = SignedConsent.objects.filter(patient_id__in=ids).exclude(
        signer_name=ANONYMOUS_SIGNER, signature=""
    )
    found = False
    for signed in consents.order_by("pk"):
        SignedConsent.objects.filter(pk=signed.pk).update(
            signer_name=ANONYMOUS_SIGNER, signature=""
        )
        if signed.signature:
            transaction.on_commit(partial(_unlink, signed.signature.name))
        found = True
    return found


def _allergy_photos_remove(ids: list[int]) -> bool:
    from treatments.models import AllergyTest

    tests = list(AllergyTest.objects.filter(patient_id__in=ids).exclude(photo="").order_by("pk"))
    for test in tests:
        AllergyTest.objects.filter(pk=test.pk).update(photo="")
        transaction.on_commit(partial(_unlink, test.photo.name))
    return bool(tests)


def _documents_remake(ids: list[int]) -> set[str]:
    """Queue again every consent PDF and aftercare sheet of these records:
    the copy on disk, which names the patient, is deleted after commit and
    only then is the render sent (the new file goes to the same path), so
    the document is made from the anonymised record. Until it is ready,
    nothing is downloadable. Returns the kinds queued again."""
    from consent.models import SignedConsentPDF
    from consent.services import consent_pdf_enqueue
    from treatments.models import PatientDocument
    from treatments.services.aftercare import aftercare_enqueue

    kinds: set[str] = set()
    for key, model, rows, send in (
        (
            "consent_pdfs",
            SignedConsentPDF,
            SignedConsentPDF.objects.filter(signed_consent__patient_id__in=ids),
            lambda pk: consent_pdf_enqueue(signed_consent_id=pk),
        ),
        (
            "aftercare_documents",
            PatientDocument,
            PatientDocument.objects.filter(patient_id__in=ids),
            lambda pk: aftercare_enqueue(document_id=pk),
        ),
    ):
        for pk, name in rows.order_by("pk").values_list("pk", "file"):
            # A new generation: a render under way, which read the name, is discarded.
            document_requeue_afresh(model=model, pk=pk)
            transaction.on_commit(partial(_unlink_then_remake, name, send, pk))
            kinds.add(key)
    return kinds


def _unlink_then_remake(name: str, enqueue: Callable[[int], bool], pk: int) -> None:
    if name:
        _unlink(name)
    enqueue(pk)


def _portal_accounts_anonymise(ids: list[int]) -> bool:
    from treatments.models import PortalAccount

    changed = False
    for account in PortalAccount.objects.filter(patient_id__in=ids).select_related(
        "user", "patient"
    ):
        user = account.user
        anonymous_name = f"anonymised-{account.patient.uuid}"
        if user.username != anonymous_name or user.is_active or user.email or user.get_full_name():
            User.objects.filter(pk=user.pk).update(
                username=anonymous_name, email="", first_name="", last_name="", is_active=False
            )
            changed = True
    return changed


def _unlink(name: str) -> None:
    from django.core.files.storage import default_storage

    with contextlib.suppress(FileNotFoundError):
        default_storage.delete(name)


# How many requests the daily run reads at a time (it reads them all).
RETENTION_BATCH = 200


def retention_anonymise_due(*, today: date | None = None) -> dict[str, int]:
    """The daily run: for every request to erase not yet done, work the
    retention out again from the record and the clinic's settings of the day
    (`retention_for`; a shorter setting applies to requests already
    recorded, a longer one keeps them longer) and anonymise each record
    whose retention ended before `today` (the clinic's local date; default
    today). A never-treated patient's retention runs from the day the
    request was received, so it does not move. A record whose patient is
    still in care (an upcoming booking, a side effect not resolved) is left:
    they came back, so the clinic is treating them again and the period
    starts again from that treatment. The retention stored on the request
    (what the page shows) is brought up to date when it changed.

    All requests are read, RETENTION_BATCH at a time in the order they were
    recorded, so none waits behind others that are postponed. Each
    anonymisation is audited as a change of the patient by the scheduled
    task, naming the patient by reference; the request's own notes, which
    may name the patient, are cleared then (audited as a change of the
    request). Idempotent. Returns counts: {"anonymised": n, "postponed": m}
    (postponed: still kept, whatever the reason)."""
    today = today or timezone.localdate()
    now = timezone.now()
    counts = {"anonymised": 0, "postponed": 0}
    after = 0
    while True:
        batch = list(
            ErasureRequest.objects.filter(status=ErasureStatus.RETAINED, pk__gt=after)
            .order_by("pk")
            .values_list("pk", flat=True)[:RETENTION_BATCH]
        )
        if not batch:
            break
        after = batch[-1]
        for pk in batch:
            counts[_retention_apply(pk, today=today, now=now)] += 1
    return counts


def _retention_apply(pk: int, *, today: date, now: datetime) -> str:
    with transaction.atomic():
        erasure = (
            ErasureRequest.objects.select_for_update()
            .filter(pk=pk, status=ErasureStatus.RETAINED)
            .first()
        )
        if erasure is None:
            return "postponed"
        patient = Patient.objects.select_for_update().get(pk=erasure.patient_id)
        retention = retention_for(patient, today=today, since=erasure.received_on)
        if (
            retention.retain_until != erasure.retain_until
            or retention.last_treated_on != erasure.last_treated_on
            or str(retention.reason) != erasure.retention_reason
        ):
            ErasureRequest.objects.filter(pk=pk).update(
                retain_until=retention.retain_until,
                last_treated_on=retention.last_treated_on,
                retention_reason=str(retention.reason),
            )
        if retention.retain_until >= today or _treatment_open(patient, now):
            return "postponed"
        changed = patient_anonymise(patient=patient)
        ErasureRequest.objects.filter(pk=pk).update(
            status=ErasureStatus.ANONYMISED, anonymised_at=now, notes=""
        )
        audit_log(
            actor=None,
            actor_label=SCHEDULED_TASK,
            action=AuditAction.UPDATE,
            obj=patient,
            patient_ref=patient.uuid,
            changed_fields=changed,
        )
        if erasure.notes:
            audit_log(
                actor=None,
                actor_label=SCHEDULED_TASK,
                action=AuditAction.UPDATE,
                obj=erasure,
                patient_ref=patient.uuid,
                changed_fields=["notes"],
            )
        return "anonymised"

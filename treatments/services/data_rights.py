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
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial

from dateutil.relativedelta import relativedelta
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from clinic.audit import audit_log
from clinic.background import enqueue
from clinic.documents import (
    DocumentStatus,
    document_queue,
    document_render,
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
    for a record merged into another (export the record that stayed)."""
    if patient.merged_into_id is not None:
        raise DataRightsRefusedError(
            "This record was merged into another: export the record that stayed."
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
    Raises `SubjectAccessExport.DoesNotExist` for a row that is gone."""
    row = document_render(
        model=SubjectAccessExport,
        pk=export_id,
        renderer=subject_access_render_zip,
        related=("patient",),
    )
    if row.status == DocumentStatus.READY:
        size = row.file.size if row.file else 0
        SubjectAccessExport.objects.filter(pk=row.pk).update(
            progress=100,
            size_bytes=size,
            expires_at=(row.generated_at or timezone.now()) + SUBJECT_ACCESS_KEEP,
        )
        row.refresh_from_db(fields=["progress", "size_bytes", "expires_at"])
    return row


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
    """The local (clinic) date of the patient's last treatment: the later of
    their last completed session and last consultation. None if neither."""
    from treatments.models import Booking, BookingStatus

    session = (
        Booking.objects.filter(patient=patient, status=BookingStatus.COMPLETED)
        .order_by("-starts_at")
        .values_list("starts_at", flat=True)
        .first()
    )
    consultation = (
        patient.consultations.order_by("-recorded_at").values_list("recorded_at", flat=True).first()
    )
    days = [timezone.localtime(moment).date() for moment in (session, consultation) if moment]
    return max(days, default=None)


def _age_on(born: date, day: date) -> int:
    return relativedelta(day, born).years


def retention_for(patient: Patient, *, today: date) -> Retention:
    """The retention of `patient`'s clinical record, from the clinic's
    settings (clinic.clinic_settings.current()):

    - treated as an adult (18 or over at the last treatment): until
      `adult_record_retention_years` (default 8) after the last treatment;
    - treated as a child: until the `child_record_retention_until_age`
      birthday (default 25), a year later (26) if they were 17 at the last
      treatment, or the adult period if that ends later.

    Source: NHS Records Management Code of Practice (2021), retention
    schedule for adult and children's health records; UK GDPR Art. 17(3)(c)
    and (h) let the clinic keep a health record it must keep despite a
    request to erase. A patient never treated (no completed session or
    consultation) has no clinical record to keep beyond `today`.
    `today`: the clinic's local date. Raises nothing."""
    from clinic.clinic_settings import current

    rules = current()
    last = last_treatment_on(patient)
    if last is None:
        return Retention(
            None,
            today,
            _(
                "This patient was never treated (no completed session or consultation), so "
                "there is no clinical record the clinic must keep: the record is anonymised "
                "at the next daily run."
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
    child_until = patient.date_of_birth + relativedelta(years=until_age)
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
    answer), and act on it at once: the email address, mobile number,
    reminder channel and agreement to messages are erased, messages still
    owed are cancelled, live download links revoked, previous addresses kept
    for notices forgotten and a portal account closed. The clinical record
    is kept until `retention_for` says (stored with its reason, which the
    page shows the manager), then anonymised by `retention_anonymise_due`.

    Audited: the request's creation and the patient's erased fields, naming
    the patient. Raises `ErasureRefusedError` when a request is already
    recorded and not yet done, or the record was merged into another;
    `AlreadySubmittedError` for the same form sent twice."""
    from clinic.concurrency import submission_check
    from patients.models import ReminderChannel as PatientChannel

    submission_check(ErasureRequest, submission_token, by=recorded_by)
    if patient.merged_into_id is not None:
        raise ErasureRefusedError(
            _("This record was merged into another: record the request on the record that stayed.")
        )
    locked = Patient.objects.select_for_update().get(pk=patient.pk)
    if ErasureRequest.objects.filter(patient=locked, status=ErasureStatus.RETAINED).exists():
        raise ErasureRefusedError(
            _("A request to erase is already recorded for this patient."), code="erasure_recorded"
        )
    erased = [
        name
        for name, empty in (
            ("email", ""),
            ("phone", ""),
            ("reminder_channel", PatientChannel.NONE),
            ("consents_to_messages", False),
        )
        if getattr(locked, name) != empty
    ]
    locked.email = ""
    locked.phone = ""
    locked.reminder_channel = PatientChannel.NONE
    locked.consents_to_messages = False
    locked.search_text = _search_text(locked)
    locked.version += 1
    locked.full_clean()
    locked.save(update_fields=[*ERASED_AT_ONCE, "search_text", "version", "updated_at"])
    _stop_messages(locked, reason=str(_("The patient asked for their data to be erased.")))
    _close_portal(locked)
    retention = retention_for(locked, today=timezone.localdate())
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
    audit_log(
        actor=recorded_by,
        action=AuditAction.UPDATE,
        obj=locked,
        patient_ref=locked.uuid,
        changed_fields=erased,
    )
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
    """Remove from `patient` (and the records merged into it) everything
    that names them: names, date of birth, contact details, address,
    emergency contact, GP; their clinical photographs (rows and files), the
    files of their subject-access exports, and their portal sign-in. The
    clinical record stays, anonymous, for the clinic's statistics and batch
    recalls; audit events keep their references (patient_ref). Call inside
    a transaction. Idempotent: a second run changes nothing. Returns the
    names of the fields it changed."""
    from patients.models import ReminderChannel as PatientChannel
    from treatments.models import PortalAccount

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
    for record in [patient, *Patient.objects.filter(merged_into=patient)]:
        differs = [name for name, value in blank.items() if getattr(record, name) != value]
        if not differs:
            continue
        for name in differs:
            setattr(record, name, blank[name])
        record.search_text = _search_text(record)
        record.version += 1
        record.save(update_fields=[*differs, "search_text", "version", "updated_at"])
        changed.update(differs)
    photos = list(patient.photos.all())
    for photo in photos:
        name = photo.image.name
        photo.delete()
        transaction.on_commit(partial(_unlink, name))
    if photos:
        changed.add("photos")
    for export in SubjectAccessExport.objects.filter(patient=patient, purged_at__isnull=True):
        SubjectAccessExport.objects.filter(pk=export.pk).update(purged_at=timezone.now())
        if export.file:
            transaction.on_commit(partial(_unlink, export.file.name))
        changed.add("subject_access_exports")
    account = PortalAccount.objects.filter(patient=patient).select_related("user").first()
    if account is not None:
        user = account.user
        anonymous_name = f"anonymised-{patient.uuid}"
        if user.username != anonymous_name or user.is_active or user.email:
            User.objects.filter(pk=user.pk).update(
                username=anonymous_name, email="", first_name="", last_name="", is_active=False
            )
            changed.add("portal_account")
    _stop_messages(patient, reason="The record was anonymised.")
    return sorted(changed)


def _unlink(name: str) -> None:
    from django.core.files.storage import default_storage

    with contextlib.suppress(FileNotFoundError):
        default_storage.delete(name)


def retention_anonymise_due(*, today: date | None = None) -> dict[str, int]:
    """The daily run: anonymise each record whose erasure was asked for and
    whose retention ended before `today` (the clinic's local date; default
    today). A record whose patient is still in care (an upcoming booking, a
    side effect not resolved) is left: they came back, so the clinic is
    treating them again and the period starts again from that treatment,
    which is recomputed and stored. Each anonymisation is audited as a change
    of the patient by the scheduled task, naming the patient by reference.
    Idempotent. Returns counts: {"anonymised": n, "postponed": m}."""
    today = today or timezone.localdate()
    now = timezone.now()
    counts = {"anonymised": 0, "postponed": 0}
    due = list(
        ErasureRequest.objects.filter(status=ErasureStatus.RETAINED, retain_until__lt=today)
        .values_list("pk", flat=True)
        .order_by("retain_until", "pk")[:500]
    )
    for pk in due:
        with transaction.atomic():
            erasure = (
                ErasureRequest.objects.select_for_update()
                .select_related("patient")
                .filter(pk=pk, status=ErasureStatus.RETAINED)
                .first()
            )
            if erasure is None:
                continue
            patient = Patient.objects.select_for_update().get(pk=erasure.patient_id)
            retention = retention_for(patient, today=today)
            if _treatment_open(patient, now) or retention.retain_until >= today:
                if retention.retain_until != erasure.retain_until:
                    ErasureRequest.objects.filter(pk=pk).update(
                        retain_until=max(retention.retain_until, today),
                        last_treated_on=retention.last_treated_on,
                        retention_reason=str(retention.reason),
                    )
                counts["postponed"] += 1
                continue
            changed = patient_anonymise(patient=patient)
            ErasureRequest.objects.filter(pk=pk).update(
                status=ErasureStatus.ANONYMISED, anonymised_at=now
            )
            audit_log(
                actor=None,
                actor_label=SCHEDULED_TASK,
                action=AuditAction.UPDATE,
                obj=patient,
                patient_ref=patient.uuid,
                changed_fields=changed,
            )
            counts["anonymised"] += 1
    return counts

"""Reminders: planning them with what they are about, and sending the due ones.

PostgreSQL is the schedule. Each planning function is one call made inside
the caller's transaction (booking, allergy test, course), safe to call twice:
the unique constraints on Reminder and the checks here mean a second call
plans nothing new. The dispatcher claims due rows with SELECT ... FOR UPDATE
SKIP LOCKED, sends them and marks them sent in the same transaction: a crash
before the commit leaves the rows planned (the locks die with the
connection), a crash after it cannot send them again. The reminder's uuid is
the idempotency key (SMS) and the Message-ID (email), so the rare resend
after a crash between the provider's acceptance and the commit is recognised
downstream as the same message.
"""

from __future__ import annotations

import logging
import random
import smtplib
import time as monotonic_time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import connection, transaction
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext as _

from patients.models import Patient
from patients.models import ReminderChannel as PatientChannel
from treatments.localtime import clinic_zone, to_local
from treatments.models import (
    AllergyTest,
    Booking,
    BookingStatus,
    CourseStatus,
    Reminder,
    ReminderChannel,
    ReminderKind,
    ReminderStatus,
    TreatmentCourse,
)
from treatments.sms import PermanentSMSError, SMSBackend, TransientSMSError, get_backend

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
BACKOFF_BASE = timedelta(minutes=1)
# Maintenance recalls go out at this local time on the day they are due.
MAINTENANCE_LOCAL_TIME = time(10, 0)
# The last moment before quiet hours begin, for a reminder that cannot wait
# until they end (see patient_due_at).
BEFORE_QUIET = timedelta(minutes=1)


# --- Quiet hours (clinic wall-clock) ------------------------------------------------------


def _clock(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def quiet_hours() -> tuple[time, time] | None:
    """(start, end) of the nightly quiet hours, or None when they are switched
    off (start equal to end)."""
    start, end = _clock(settings.QUIET_HOURS_START), _clock(settings.QUIET_HOURS_END)
    if start == end:
        return None
    return start, end


def _quiet_start_day(local: datetime, window: tuple[time, time]) -> date | None:
    """The local date on which the quiet period containing `local` began, or
    None when `local` is not in quiet hours."""
    start, end = window
    at = local.time()
    if start > end:  # across midnight, the usual case (21:00-08:00)
        if at >= start:
            return local.date()
        if at < end:
            return local.date() - timedelta(days=1)
        return None
    return local.date() if start <= at < end else None


def _local_instant(day: date, at: time) -> datetime:
    # Quiet-hour edges are wall-clock times: 08:00 local is 08:00 whatever the
    # offset that day. fold=0 picks the first of a repeated time, and a skipped
    # one (never at 08:00 or 21:00 in practice) lands just after the jump.
    return datetime.combine(day, at, tzinfo=clinic_zone()).astimezone(UTC)


def in_quiet_hours(moment: datetime) -> bool:
    window = quiet_hours()
    return window is not None and _quiet_start_day(to_local(moment), window) is not None


def quiet_hours_end_after(moment: datetime) -> datetime:
    """The end of the quiet period `moment` falls in (the moment itself if none)."""
    window = quiet_hours()
    if window is None:
        return moment
    began = _quiet_start_day(to_local(moment), window)
    if began is None:
        return moment
    start, end = window
    return _local_instant(began + timedelta(days=1) if start > end else began, end)


def quiet_hours_start_before(moment: datetime) -> datetime:
    """When the quiet period `moment` falls in began (the moment itself if none)."""
    window = quiet_hours()
    if window is None:
        return moment
    began = _quiet_start_day(to_local(moment), window)
    return moment if began is None else _local_instant(began, window[0])


def patient_due_at(
    intended: datetime, *, now: datetime, slot_starts_at: datetime | None = None
) -> datetime | None:
    """When a message to a patient meant for `intended` may go, or None if it
    should not be planned.

    Not planned when the moment has passed. Inside quiet hours it is held to
    their end; if that end is not before the session, it goes at the last
    minute before quiet hours began instead (20:59 the evening before), and
    if that too has passed it is not planned: a reminder after the session
    starts is useless and one in the night is not acceptable.
    """
    if intended <= now:
        return None
    if not in_quiet_hours(intended):
        return intended
    held = quiet_hours_end_after(intended)
    if slot_starts_at is None or held < slot_starts_at:
        return held
    early = quiet_hours_start_before(intended) - BEFORE_QUIET
    return early if early > now else None


# --- Who gets what -------------------------------------------------------------------------


def patient_channel(patient: Patient) -> str | None:
    """The channel a patient's reminders go by, or None (with no row planned)."""
    if not patient.consents_to_messages:
        return None
    if patient.reminder_channel == PatientChannel.EMAIL and patient.email:
        return ReminderChannel.EMAIL
    if patient.reminder_channel == PatientChannel.SMS and patient.phone:
        return ReminderChannel.SMS
    return None


def patient_no_reminder_reason(patient: Patient) -> str:
    """Why a patient gets no reminders, for reception; empty when they do."""
    if patient_channel(patient) is not None:
        return ""
    if patient.reminder_channel == PatientChannel.NONE:
        return _("This patient asked for no reminders, so none are planned.")
    if not patient.consents_to_messages:
        return _("This patient has not agreed to receive messages, so no reminders are planned.")
    return _("This patient has no address for their chosen channel, so no reminders are planned.")


def _cancel(*, reason: str, **filters: object) -> int:
    return Reminder.objects.filter(status=ReminderStatus.PLANNED, **filters).update(
        status=ReminderStatus.CANCELLED, error=reason[:300], updated_at=timezone.now()
    )


# --- Planning: bookings -------------------------------------------------------------------


@transaction.atomic
def reminders_plan_for_booking(*, booking: Booking) -> list[Reminder]:
    """Plan the session reminders of a booking, after it is created or moved.

    Planned rows for any other start time (the slot it was moved from) are
    cancelled; one row per lead time is planned for the current start, by the
    patient's channel. Safe to call twice. Returns the rows now planned.
    """
    Reminder.objects.filter(
        booking=booking, kind=ReminderKind.SESSION, status=ReminderStatus.PLANNED
    ).exclude(slot_starts_at=booking.starts_at).update(
        status=ReminderStatus.CANCELLED,
        error=_("The booking moved to another time."),
        updated_at=timezone.now(),
    )
    if booking.status != BookingStatus.BOOKED:
        reminders_cancel_for_booking(booking=booking)
        return []
    if booking.course_id is not None:
        # The next session of the course is booked: reception's follow-up is done.
        _cancel(
            course_id=booking.course_id,
            kind=ReminderKind.COURSE_NEXT,
            reason=_("The next session was booked."),
        )
    patient = booking.patient
    channel = patient_channel(patient)
    existing = {
        row.lead_minutes: row
        for row in Reminder.objects.select_for_update().filter(
            booking=booking, kind=ReminderKind.SESSION, slot_starts_at=booking.starts_at
        )
    }
    now = timezone.now()
    planned: list[Reminder] = []
    for hours in sorted(set(settings.REMINDER_LEAD_HOURS), reverse=True):
        lead = timedelta(hours=hours)
        # Arithmetic on UTC instants: a 48-hour lead across a clock change is
        # 48 real hours, not "the same wall-clock time two days before".
        intended = booking.starts_at - lead
        row = existing.get(int(lead.total_seconds() // 60))
        if row is not None and row.status != ReminderStatus.CANCELLED:
            if row.status == ReminderStatus.PLANNED:
                planned.append(row)
            continue
        if channel is None:
            continue
        due = patient_due_at(intended, now=now, slot_starts_at=booking.starts_at)
        if due is None:
            continue
        if row is None:
            row = Reminder(
                kind=ReminderKind.SESSION,
                patient=patient,
                booking=booking,
                course_id=booking.course_id,
                lead_minutes=int(lead.total_seconds() // 60),
                slot_starts_at=booking.starts_at,
            )
        # A row cancelled earlier for this very slot (moved away, then back) is reopened.
        row.channel = channel
        row.intended_at = intended
        row.due_at = due
        row.status = ReminderStatus.PLANNED
        row.attempts = 0
        row.error = ""
        row.full_clean(validate_unique=False, validate_constraints=False)
        row.save()
        planned.append(row)
    return planned


def _booking_cancel_reason(booking: Booking) -> str:
    if booking.status == BookingStatus.CANCELLED:
        return _("The booking was cancelled.")
    if booking.status == BookingStatus.NO_SHOW:
        return _("The patient did not come.")
    return _("The booking is no longer booked.")


@transaction.atomic
def reminders_cancel_for_booking(*, booking: Booking) -> int:
    """Cancel the planned reminders of a cancelled or missed booking."""
    return _cancel(booking=booking, reason=_booking_cancel_reason(booking))


# --- Planning: allergy readings and courses ----------------------------------------------


@transaction.atomic
def reminder_plan_allergy_reading(*, test: AllergyTest) -> Reminder | None:
    """A task for the practitioner who gave the test, due when it can be read
    (plus an email to them if they have an address). Safe to call twice."""
    if test.read_at is not None:
        return None
    existing = Reminder.objects.filter(allergy_test=test, kind=ReminderKind.ALLERGY_READING).first()
    if existing is not None:
        return existing
    row = Reminder(
        kind=ReminderKind.ALLERGY_READING,
        channel=ReminderChannel.TASK,
        patient_id=test.patient_id,
        allergy_test=test,
        recipient_id=test.given_by_id,
        intended_at=test.read_due_at,
        # Staff reminders are not held by quiet hours: a reading is due when it is due.
        due_at=test.read_due_at,
    )
    row.full_clean(validate_unique=False, validate_constraints=False)
    row.save()
    return row


@transaction.atomic
def reminder_cancel_allergy_reading(*, test: AllergyTest) -> int:
    """The test was read: its reminder is no longer needed."""
    return _cancel(
        allergy_test=test, kind=ReminderKind.ALLERGY_READING, reason=_("The test was read.")
    )


@transaction.atomic
def reminders_plan_course(*, course: TreatmentCourse) -> Reminder | None:
    """After a session of a course is completed (and after the course closes).

    Course still running and no later session booked: a task on reception's
    follow-up list. Course completed: a maintenance recall to the patient at
    10:00 local on the maintenance date, by their channel. Stopped: cancel
    what is planned. Safe to call twice (one row per course, kind and moment).
    """
    if course.status == CourseStatus.STOPPED:
        _cancel(course=course, booking__isnull=True, reason=_("The course was stopped."))
        return None
    if course.status == CourseStatus.COMPLETED:
        _cancel(
            course=course,
            kind=ReminderKind.COURSE_NEXT,
            reason=_("The course is complete."),
        )
        return _plan_maintenance(course)
    last_done = (
        course.bookings.filter(status=BookingStatus.COMPLETED).order_by("-starts_at").first()
    )
    if last_done is None:
        return None
    if course.bookings.filter(
        status__in=(BookingStatus.BOOKED, BookingStatus.ARRIVED),
        starts_at__gt=last_done.starts_at,
    ).exists():
        return None
    return _plan_once(
        Reminder(
            kind=ReminderKind.COURSE_NEXT,
            channel=ReminderChannel.TASK,
            patient_id=course.patient_id,
            course=course,
            intended_at=last_done.ends_at,
            due_at=last_done.ends_at,
        )
    )


def _plan_maintenance(course: TreatmentCourse) -> Reminder | None:
    if course.maintenance_due_on is None:
        return None
    patient = course.patient
    intended = _local_instant(course.maintenance_due_on, MAINTENANCE_LOCAL_TIME)
    existing = Reminder.objects.filter(
        course=course, kind=ReminderKind.MAINTENANCE, intended_at=intended
    ).first()
    if existing is not None:
        return existing
    channel = patient_channel(patient)
    due = patient_due_at(intended, now=timezone.now())
    if channel is None or due is None:
        return None
    return _plan_once(
        Reminder(
            kind=ReminderKind.MAINTENANCE,
            channel=channel,
            patient=patient,
            course=course,
            intended_at=intended,
            due_at=due,
        )
    )


def _plan_once(row: Reminder) -> Reminder:
    existing = Reminder.objects.filter(
        course_id=row.course_id,
        booking__isnull=True,
        kind=row.kind,
        intended_at=row.intended_at,
    ).first()
    if existing is not None:
        return existing
    row.full_clean(validate_unique=False, validate_constraints=False)
    row.save()
    return row


# --- Dispatch -----------------------------------------------------------------------------


@dataclass
class DispatchResult:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    cancelled: int = 0
    batches: int = 0
    queries_per_batch: list[int] = field(default_factory=list)

    def add(self, other: DispatchResult) -> None:
        for name in ("claimed", "sent", "retried", "failed", "cancelled", "batches"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.queries_per_batch.extend(other.queries_per_batch)


class _TransientError(Exception):
    pass


class _PermanentError(Exception):
    pass


def backoff(attempts: int, *, rng: Callable[[], float] = random.random) -> timedelta:
    """Wait before the next try: 1, 2, 4, 8 minutes..., plus up to a quarter
    more at random so that retries of many rows do not arrive together."""
    delay = BACKOFF_BASE * (2 ** max(attempts - 1, 0))
    return delay + delay * (0.25 * rng())


def _message_domain() -> str:
    return urlsplit(settings.SITE_URL).hostname or "clinic.localhost"


def message_id_for(reminder: Reminder) -> str:
    return f"<reminder-{reminder.uuid}@{_message_domain()}>"


def _context(reminder: Reminder) -> dict[str, object]:
    booking = reminder.booking
    starts = to_local(booking.starts_at) if booking is not None else None
    return {
        "reminder": reminder,
        "kind": reminder.kind,
        "patient": reminder.patient,
        "starts": starts,
        "practitioner": booking.practitioner if booking is not None else None,
        "maintenance_on": reminder.course.maintenance_due_on if reminder.course else None,
        "clinic_name": settings.CLINIC_NAME,
        "site_url": settings.SITE_URL,
        "recipient": reminder.recipient,
    }


def _send_email(reminder: Reminder, mail_connection: Any, to: str) -> str:
    context = _context(reminder)
    subject = render_to_string("emails/reminder_subject.txt", context).strip()
    text = render_to_string("emails/reminder_message.txt", context)
    html = render_to_string("emails/reminder_message.html", context)
    message_id = message_id_for(reminder)
    message = EmailMultiAlternatives(
        subject=" ".join(subject.split()),
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
        headers={"Message-ID": message_id},
        connection=mail_connection,
    )
    message.attach_alternative(html, "text/html")
    try:
        sent = message.send()
    except smtplib.SMTPRecipientsRefused as error:
        raise _PermanentError(_("The email address was refused.")) from error
    except smtplib.SMTPResponseException as error:
        if 500 <= error.smtp_code < 600:
            raise _PermanentError(_("The mail server refused the message.")) from error
        raise _TransientError(f"mail server answered {error.smtp_code}") from error
    except (smtplib.SMTPException, OSError) as error:
        raise _TransientError(f"mail server unreachable ({type(error).__name__})") from error
    if not sent:
        raise _TransientError("mail backend sent nothing")
    return message_id


def _send_sms(reminder: Reminder, backend: SMSBackend) -> str:
    body = render_to_string("emails/reminder_sms.txt", _context(reminder)).strip()
    try:
        return backend.send(
            to=str(reminder.patient.phone), body=body, idempotency_key=str(reminder.uuid)
        )
    except TransientSMSError as error:
        raise _TransientError(str(error)) from error
    except PermanentSMSError as error:
        raise _PermanentError(str(error) or _("The text message was refused.")) from error


def _why_not_now(
    reminder: Reminder, *, now: datetime, booked_courses: set[int]
) -> tuple[str, str] | None:
    """("cancel", reason) or ("hold", "") when the row must not go now; None to send."""
    kind = reminder.kind
    if kind == ReminderKind.SESSION:
        booking = reminder.booking
        if booking is None or booking.status != BookingStatus.BOOKED:
            reason = _booking_cancel_reason(booking) if booking else _("No booking.")
            return "cancel", reason
        if booking.starts_at != reminder.slot_starts_at:
            return "cancel", _("The booking moved to another time.")
        if booking.starts_at <= now:
            return "cancel", _("The session had started before the reminder could go.")
    elif kind == ReminderKind.ALLERGY_READING:
        if reminder.allergy_test is None or reminder.allergy_test.read_at is not None:
            return "cancel", _("The test was read.")
    elif kind == ReminderKind.COURSE_NEXT:
        course = reminder.course
        if course is None or course.status != CourseStatus.ACTIVE:
            return "cancel", _("The course is no longer running.")
        if course.pk in booked_courses:
            return "cancel", _("The next session was booked.")
    if reminder.channel in (ReminderChannel.EMAIL, ReminderChannel.SMS):
        if patient_channel(reminder.patient) != reminder.channel:
            return "cancel", _("The patient's message preferences changed.")
        if in_quiet_hours(now):
            return "hold", ""
    return None


def _deliver(reminder: Reminder, *, backend: SMSBackend, mail: Any) -> str:
    if reminder.channel == ReminderChannel.EMAIL:
        return _send_email(reminder, mail, reminder.patient.email)
    if reminder.channel == ReminderChannel.SMS:
        return _send_sms(reminder, backend)
    # A task: it shows on the staff member's list; the practitioner also gets
    # an email about an allergy reading when they have an address.
    recipient = reminder.recipient
    if reminder.kind == ReminderKind.ALLERGY_READING and recipient and recipient.email:
        return _send_email(reminder, mail, recipient.email)
    return ""


# Column and PostgreSQL type of what dispatch writes back.
UPDATE_FIELDS = [
    ("status", "text"),
    ("attempts", "smallint"),
    ("last_attempt_at", "timestamptz"),
    ("sent_at", "timestamptz"),
    ("provider_message_id", "text"),
    ("error", "text"),
    ("due_at", "timestamptz"),
    ("updated_at", "timestamptz"),
]


def _write_back(rows: list[Reminder]) -> None:
    """One UPDATE ... FROM (VALUES ...) for the whole batch: Django's
    bulk_update builds a CASE per column and row, several times slower to
    compile and to run for a hundred rows."""
    table = connection.ops.quote_name(Reminder._meta.db_table)
    columns = ", ".join(
        f"{connection.ops.quote_name(name)} = v.{name}::{kind}" for name, kind in UPDATE_FIELDS
    )
    names = ", ".join(["id", *(name for name, _kind in UPDATE_FIELDS)])
    row_sql = "(" + ", ".join(["%s"] * (len(UPDATE_FIELDS) + 1)) + ")"
    values = ", ".join([row_sql] * len(rows))
    params: list[Any] = []
    for row in rows:
        params.append(row.pk)
        params.extend(getattr(row, name) for name, _kind in UPDATE_FIELDS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS r SET {columns} FROM (VALUES {values}) AS v({names}) "  # noqa: S608
            "WHERE r.id = v.id::bigint",
            params,
        )


def _claim(now: datetime, limit: int) -> list[Reminder]:
    # The rows alone, then read with what they point at: a join locked and
    # re-checked drops a row that changed meanwhile (moved to another record
    # by a merge) instead of sending it.
    claimed = list(
        Reminder.objects.select_for_update(skip_locked=True)
        .filter(status=ReminderStatus.PLANNED, due_at__lte=now)
        .order_by("due_at", "id")
        .values_list("pk", flat=True)[:limit]
    )
    if not claimed:
        return []
    return list(
        Reminder.objects.filter(pk__in=claimed)
        .select_related(
            "patient",
            "booking",
            "booking__practitioner",
            "allergy_test",
            "course",
            "recipient",
        )
        .order_by("due_at", "id")[:limit]
    )


def reminders_dispatch_batch(
    *,
    limit: int = 100,
    now: datetime | None = None,
    backend: SMSBackend | None = None,
    mail_connection: Any = None,
) -> DispatchResult:
    """Claim up to `limit` due reminders, send them and record the outcome, in
    one transaction. A fixed number of queries whatever the batch holds: the
    claim (the rows, then everything the messages need, joined in), one
    look-up of the courses in the batch, one UPDATE of all the rows."""
    result = DispatchResult()
    backend = backend or get_backend()
    with transaction.atomic():
        now = now or timezone.now()
        rows = _claim(now, limit)
        if not rows:
            return result
        result.batches = 1
        result.claimed = len(rows)
        course_ids = {r.course_id for r in rows if r.kind == ReminderKind.COURSE_NEXT}
        booked_courses: set[int] = set()
        if course_ids:
            booked_courses = set(
                Booking.objects.filter(
                    course_id__in=course_ids,
                    status__in=(BookingStatus.BOOKED, BookingStatus.ARRIVED),
                    starts_at__gt=now,
                ).values_list("course_id", flat=True)
            )
        mail = mail_connection or get_connection(fail_silently=False)
        for reminder in rows:
            reminder.updated_at = now
            verdict = _why_not_now(reminder, now=now, booked_courses=booked_courses)
            if verdict is not None:
                action, reason = verdict
                if action == "hold":
                    held = quiet_hours_end_after(now)
                    slot = reminder.slot_starts_at
                    if reminder.kind == ReminderKind.SESSION and slot and held >= slot:
                        reminder.status = ReminderStatus.CANCELLED
                        reminder.error = _("Quiet hours last until the session.")
                        result.cancelled += 1
                    else:
                        reminder.due_at = held
                    continue
                reminder.status = ReminderStatus.CANCELLED
                reminder.error = reason[:300]
                result.cancelled += 1
                continue
            reminder.attempts += 1
            reminder.last_attempt_at = now
            try:
                message_id = _deliver(reminder, backend=backend, mail=mail)
            except _PermanentError as error:
                reminder.status = ReminderStatus.FAILED
                reminder.error = str(error)[:300]
                result.failed += 1
                continue
            except _TransientError as error:
                reminder.error = str(error)[:300]
                if reminder.attempts >= MAX_ATTEMPTS:
                    reminder.status = ReminderStatus.FAILED
                    reminder.error = (
                        _("Gave up after %(n)s attempts: %(why)s")
                        % {"n": reminder.attempts, "why": error}
                    )[:300]
                    result.failed += 1
                    continue
                retry_at = now + backoff(reminder.attempts)
                slot = reminder.slot_starts_at
                if reminder.kind == ReminderKind.SESSION and slot and retry_at >= slot:
                    reminder.status = ReminderStatus.FAILED
                    reminder.error = (_("Not sent before the session: %(why)s") % {"why": error})[
                        :300
                    ]
                    result.failed += 1
                    continue
                reminder.due_at = retry_at
                result.retried += 1
                continue
            reminder.status = ReminderStatus.SENT
            reminder.sent_at = now
            reminder.provider_message_id = message_id[:200]
            reminder.error = ""
            result.sent += 1
        _write_back(rows)
    return result


def reminders_dispatch_due(
    *,
    limit: int | None = None,
    budget_seconds: float = 50.0,
    backend: SMSBackend | None = None,
) -> DispatchResult:
    """Send what is due, batch after batch, for at most `budget_seconds` (the
    next beat tick carries on; SKIP LOCKED keeps two runs apart)."""
    size = limit if limit is not None else settings.REMINDER_BATCH_SIZE
    backend = backend or get_backend()
    total = DispatchResult()
    started = monotonic_time.monotonic()
    while monotonic_time.monotonic() - started < budget_seconds:
        result = reminders_dispatch_batch(limit=size, backend=backend)
        total.add(result)
        if result.claimed < size:
            break
    return total

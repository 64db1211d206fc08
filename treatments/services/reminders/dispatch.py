"""Sending the reminders that are due: claim, send, record.

No transaction is open while a mail server or the SMS provider is called,
and no row is locked then. Each batch is three steps:

1. Claim, in one short transaction: up to `limit` rows that are due
   (planned, due_at passed) or whose lease ran out (sending, claimed_until
   passed: the worker that claimed them died), taken with SELECT ... FOR
   UPDATE SKIP LOCKED. Each is re-checked against what it is about; those
   that must not go now are cancelled or held at once, the others become
   "sending" with a lease (claimed_until = now + MESSAGE_CLAIM_LEASE) and
   one more attempt counted. Commit: the locks are gone, and no other tick
   takes these rows before the lease ends.
2. Send, outside any transaction, each network call bounded (EMAIL_TIMEOUT,
   SMS_TIMEOUT_SECONDS). Whatever one row raises is that row's failure:
   recorded by kind (the exception's class name, never its text, which may
   hold an address), backed off and retried, while the rest of the batch
   goes on. Just before each message, one small read (outside any
   transaction) checks that the row is still "sending" under this lease and
   that what it is about still stands (the booking still booked at the same
   time, the patient's preferences the same): a booking cancelled, moved or
   marked meanwhile cancels its "sending" rows too, and sends nothing. Rows
   not reached before the tick's deadline, or when the worker is stopped,
   are given back.
3. Record, in a second short transaction: one UPDATE of the batch, applied
   only to rows still held under the lease this tick set.

The lease outlasts the dispatch task's hard time limit, so a live worker
always records before its lease ends and two ticks never send one row. A
worker killed between the provider's acceptance and the record leaves the
row "sending"; once the lease ends it is claimed and sent again, under the
same key: the reminder's uuid is the SMS idempotency key and the email's
Message-ID, so the repeat is recognisable downstream (at-least-once for that
rare case).
"""

from __future__ import annotations

import logging
import random
import smtplib
import time as monotonic_time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import connection, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext as _

from clinic import clinic_settings
from clinic.localtime import to_local
from treatments.models import (
    Booking,
    BookingStatus,
    CourseStatus,
    Reminder,
    ReminderChannel,
    ReminderKind,
    ReminderStatus,
)
from treatments.services.reminders.planning import booking_cancel_reason, patient_channel
from treatments.services.reminders.quiet_hours import in_quiet_hours, quiet_hours_end_after
from treatments.sms import (
    PermanentSMSError,
    SMSBackend,
    SMSError,
    TransientSMSError,
    get_backend,
)

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
BACKOFF_BASE = timedelta(minutes=1)


@dataclass
class DispatchResult:
    """What one or more dispatch batches did, in rows."""

    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    cancelled: int = 0
    # Claimed but not tried before the tick's deadline: planned again at once.
    released: int = 0
    batches: int = 0
    queries_per_batch: list[int] = field(default_factory=list)

    def add(self, other: DispatchResult) -> None:
        """Add the counts of `other` (another batch of the same tick) to these."""
        for name in ("claimed", "sent", "retried", "failed", "cancelled", "released", "batches"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.queries_per_batch.extend(other.queries_per_batch)


class DeliveryError(Exception):
    """A message was not sent; `transient` says whether trying again may work.
    The text is ours (a status code, a kind of failure), never an address."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


def backoff(attempts: int, *, rng: Callable[[], float] = random.random) -> timedelta:
    """The wait before the next try after `attempts` tries (1 or more): 1, 2,
    4, 8 minutes... (BACKOFF_BASE doubled each time), plus up to a quarter
    more at random (`rng` returns 0 to 1) so that retries of many rows do
    not arrive together. Raises nothing."""
    delay = BACKOFF_BASE * (2 ** max(attempts - 1, 0))
    return delay + delay * (0.25 * rng())


def failure_text(error: BaseException) -> str:
    """What the log keeps of an unexpected exception: its class name only
    (its text may hold an address or a name). Raises nothing."""
    return type(error).__name__


def _message_domain() -> str:
    return urlsplit(settings.SITE_URL).hostname or "clinic.localhost"


def message_id_for(reminder: Reminder) -> str:
    """The email Message-ID of `reminder`, from its uuid and SITE_URL's host:
    the same on every attempt, so a repeat is recognisable. Raises nothing."""
    return f"<reminder-{reminder.uuid}@{_message_domain()}>"


def send_email(message: EmailMultiAlternatives) -> None:
    """Send `message` through its connection (Django's mail backend; SMTP
    waits at most EMAIL_TIMEOUT seconds for each answer).

    Raises DeliveryError: permanent for an address or message the server
    refused (5xx), transient for a 4xx answer, a timeout, a dropped or
    refused connection, or a backend that sent nothing.
    """
    try:
        sent = message.send()
    except smtplib.SMTPRecipientsRefused as error:
        raise DeliveryError(_("The email address was refused."), transient=False) from error
    except smtplib.SMTPResponseException as error:
        if 500 <= error.smtp_code < 600:
            raise DeliveryError(
                _("The mail server refused the message."), transient=False
            ) from error
        raise DeliveryError(f"mail server answered {error.smtp_code}", transient=True) from error
    except (smtplib.SMTPException, OSError) as error:
        raise DeliveryError(
            f"mail server unreachable ({type(error).__name__})", transient=True
        ) from error
    if not sent:
        raise DeliveryError("mail backend sent nothing", transient=True)


def send_sms(backend: SMSBackend, *, to: str, body: str, idempotency_key: str) -> str:
    """Send a text message through `backend` (the HTTP provider waits at
    most SMS_TIMEOUT_SECONDS). Returns the provider's message id.

    Raises DeliveryError: transient for TransientSMSError, permanent for
    PermanentSMSError. Its text is ours alone: the HTTP status code the
    provider answered, or the kind of failure; never the error's own text,
    which may carry what the provider echoed (the message, a name, the
    number).
    """
    try:
        return backend.send(to=to, body=body, idempotency_key=idempotency_key)
    except TransientSMSError as error:
        raise DeliveryError(
            _("SMS provider unavailable (%(why)s)") % {"why": _sms_failure_kind(error)},
            transient=True,
        ) from error
    except PermanentSMSError as error:
        raise DeliveryError(
            _("Refused by the SMS provider (%(why)s)") % {"why": _sms_failure_kind(error)},
            transient=False,
        ) from error


def _sms_failure_kind(error: SMSError) -> str:
    """The HTTP status code of an SMS failure, or else the class name of
    what caused it (a timeout, a refused connection). Raises nothing."""
    status = getattr(error, "status", None)
    if isinstance(status, int):
        return str(status)
    return type(error.__cause__ or error).__name__


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
        **clinic_settings.printed(),
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
    send_email(message)
    return message_id


def _send_sms(reminder: Reminder, backend: SMSBackend) -> str:
    body = render_to_string("emails/reminder_sms.txt", _context(reminder)).strip()
    return send_sms(
        backend, to=str(reminder.patient.phone), body=body, idempotency_key=str(reminder.uuid)
    )


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


def _why_not_now(
    reminder: Reminder, *, now: datetime, booked_courses: set[int]
) -> tuple[str, str] | None:
    """("cancel", reason) or ("hold", "") when the row must not go now; None to send."""
    kind = reminder.kind
    if kind == ReminderKind.SESSION:
        booking = reminder.booking
        if booking is None or booking.status != BookingStatus.BOOKED:
            reason = booking_cancel_reason(booking) if booking else _("No booking.")
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


# --- Writing rows back ----------------------------------------------------------------------

# Column and PostgreSQL type of what dispatch writes back.
UPDATE_FIELDS = [
    ("status", "text"),
    ("attempts", "smallint"),
    ("last_attempt_at", "timestamptz"),
    ("sent_at", "timestamptz"),
    ("provider_message_id", "text"),
    ("error", "text"),
    ("due_at", "timestamptz"),
    ("claimed_until", "timestamptz"),
    ("updated_at", "timestamptz"),
]


def _write_back(rows: list[Reminder], *, leases: dict[int, datetime] | None = None) -> int:
    """One UPDATE ... FROM (VALUES ...) for the whole batch (Django's
    bulk_update builds a CASE per column and row, several times slower for a
    hundred rows). With `leases` (row id to the claimed_until this tick
    set), a row is written only while it is still "sending" under that
    lease: a result never lands on a row another tick has taken since.
    Returns the number of rows written."""
    if not rows:
        return 0
    quote = connection.ops.quote_name
    table = quote(Reminder._meta.db_table)
    columns = ", ".join(f"{quote(name)} = v.{name}::{kind}" for name, kind in UPDATE_FIELDS)
    names = ", ".join(["id", "lease", *(name for name, _kind in UPDATE_FIELDS)])
    row_sql = "(" + ", ".join(["%s"] * (len(UPDATE_FIELDS) + 2)) + ")"
    values = ", ".join([row_sql] * len(rows))
    params: list[Any] = []
    for row in rows:
        params.append(row.pk)
        params.append(leases[row.pk] if leases is not None else None)
        params.extend(getattr(row, name) for name, _kind in UPDATE_FIELDS)
    guard = ""
    if leases is not None:
        guard = (
            f" AND r.{quote('status')} = 'sending'"
            f" AND r.{quote('claimed_until')} = v.lease::timestamptz"
        )
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS r SET {columns} FROM (VALUES {values}) AS v({names}) "  # noqa: S608
            f"WHERE r.id = v.id::bigint{guard}",
            params,
        )
        return cursor.rowcount


# --- The three steps ------------------------------------------------------------------------


def _due(now: datetime) -> Q:
    return Q(status=ReminderStatus.PLANNED, due_at__lte=now) | Q(
        status=ReminderStatus.SENDING, claimed_until__lte=now
    )


def _lock_due(now: datetime, limit: int) -> list[Reminder]:
    # The rows alone, then read with what they point at: a join locked and
    # re-checked drops a row that changed meanwhile (moved to another record
    # by a merge) instead of sending it.
    claimed = list(
        Reminder.objects.select_for_update(skip_locked=True)
        .filter(_due(now))
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


def _retry_or_fail(reminder: Reminder, why: str, *, now: datetime, result: DispatchResult) -> None:
    """A failed try that may work later: planned again after a back-off, or
    failed for good after MAX_ATTEMPTS or when the retry would come after
    the session."""
    reminder.claimed_until = None
    if reminder.attempts >= MAX_ATTEMPTS:
        reminder.status = ReminderStatus.FAILED
        reminder.error = (
            _("Gave up after %(n)s attempts: %(why)s") % {"n": reminder.attempts, "why": why}
        )[:300]
        result.failed += 1
        return
    retry_at = now + backoff(reminder.attempts)
    slot = reminder.slot_starts_at
    if reminder.kind == ReminderKind.SESSION and slot and retry_at >= slot:
        reminder.status = ReminderStatus.FAILED
        reminder.error = (_("Not sent before the session: %(why)s") % {"why": why})[:300]
        result.failed += 1
        return
    reminder.status = ReminderStatus.PLANNED
    reminder.error = why[:300]
    reminder.due_at = retry_at
    result.retried += 1


def _claim(
    now: datetime, limit: int, result: DispatchResult
) -> tuple[list[Reminder], dict[int, datetime]]:
    """Step 1: take the due rows, settle those that must not go now, and
    lease the others. Returns the rows to send and their leases."""
    lease_until = now + settings.MESSAGE_CLAIM_LEASE
    to_send: list[Reminder] = []
    with transaction.atomic():
        rows = _lock_due(now, limit)
        if not rows:
            return [], {}
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
        for reminder in rows:
            reminder.updated_at = now
            lost = reminder.status == ReminderStatus.SENDING
            if lost:
                # Its worker stopped mid-send: that try's outcome is unknown.
                logger.warning("Reminder %s: lease ran out, claimed again", reminder.uuid)
            try:
                verdict = _why_not_now(reminder, now=now, booked_courses=booked_courses)
            except SoftTimeLimitExceeded:
                raise  # the claim rolls back: every row stays as it was
            except Exception as error:  # one row's fault stays that row's
                logger.warning("Reminder %s not checked: %s", reminder.uuid, failure_text(error))
                reminder.attempts += 1
                reminder.last_attempt_at = now
                _retry_or_fail(
                    reminder, _("Not sent (%(error)s).") % {"error": failure_text(error)},
                    now=now, result=result,
                )  # fmt: skip
                continue
            if verdict is not None:
                action, reason = verdict
                reminder.claimed_until = None
                if action == "cancel":
                    reminder.status = ReminderStatus.CANCELLED
                    reminder.error = reason[:300]
                    result.cancelled += 1
                    continue
                held = quiet_hours_end_after(now)
                slot = reminder.slot_starts_at
                if reminder.kind == ReminderKind.SESSION and slot and held >= slot:
                    reminder.status = ReminderStatus.CANCELLED
                    reminder.error = _("Quiet hours last until the session.")
                    result.cancelled += 1
                else:
                    reminder.status = ReminderStatus.PLANNED
                    reminder.due_at = held
                continue
            if lost and reminder.attempts >= MAX_ATTEMPTS:
                _retry_or_fail(
                    reminder, _("No outcome recorded: the sending worker stopped."),
                    now=now, result=result,
                )  # fmt: skip
                continue
            reminder.status = ReminderStatus.SENDING
            reminder.claimed_until = lease_until
            reminder.attempts += 1
            reminder.last_attempt_at = now
            to_send.append(reminder)
        _write_back(rows)
    return to_send, {reminder.pk: lease_until for reminder in to_send}


def _recheck(reminder: Reminder, *, lease: datetime, now: datetime) -> tuple[str, str] | None:
    """Just before `reminder` goes: one small read, no transaction held.
    ("gone", "") when the row is no longer "sending" under this tick's lease
    (cancelled with its booking, taken by another tick): it is neither sent
    nor recorded. ("cancel", reason) when what it is about changed since the
    claim (the booking cancelled, moved or marked, the patient's message
    preferences changed). None to send, to the patient's current address."""
    fresh = (
        Reminder.objects.filter(pk=reminder.pk, status=ReminderStatus.SENDING, claimed_until=lease)
        .values(
            "booking__status",
            "booking__starts_at",
            "allergy_test__read_at",
            "course__status",
            "patient__consents_to_messages",
            "patient__reminder_channel",
            "patient__email",
            "patient__phone",
        )
        .first()
    )
    if fresh is None:
        return "gone", ""
    if reminder.booking is not None:
        reminder.booking.status = fresh["booking__status"]
        reminder.booking.starts_at = fresh["booking__starts_at"]
    if reminder.allergy_test is not None:
        reminder.allergy_test.read_at = fresh["allergy_test__read_at"]
    if reminder.course is not None:
        reminder.course.status = fresh["course__status"]
    patient = reminder.patient
    patient.consents_to_messages = fresh["patient__consents_to_messages"]
    patient.reminder_channel = fresh["patient__reminder_channel"]
    patient.email = fresh["patient__email"]
    patient.phone = fresh["patient__phone"]
    verdict = _why_not_now(reminder, now=now, booked_courses=set())
    if verdict is not None and verdict[0] == "cancel":
        return verdict
    return None


def _send_all(
    rows: list[Reminder],
    *,
    leases: dict[int, datetime],
    now: datetime,
    backend: SMSBackend,
    mail_connection: Any,
    deadline: float | None,
    result: DispatchResult,
    gone: set[int],
) -> None:
    """Step 2: send each leased row, no transaction open; set each row's
    outcome on the object. Each row is read again just before it goes
    (_recheck): one cancelled since the claim is not sent, and one no longer
    ours is added to `gone` (not recorded). A soft time limit, or anything
    else that stops the worker (KeyboardInterrupt, SystemExit), stops the
    batch: the row being sent counts as a failed try, the rows not reached
    are given back, and the exception goes on once step 3 has recorded all
    of it."""
    mail = mail_connection or get_connection(fail_silently=False)
    for index, reminder in enumerate(rows):
        if deadline is not None and monotonic_time.monotonic() >= deadline:
            _release(rows[index:], result)
            return
        try:
            verdict = _recheck(reminder, lease=leases[reminder.pk], now=now)
            if verdict is not None:
                action, reason = verdict
                if action == "gone":
                    gone.add(reminder.pk)
                else:
                    reminder.status = ReminderStatus.CANCELLED
                    reminder.claimed_until = None
                    reminder.error = reason[:300]
                    result.cancelled += 1
                continue
            message_id = _deliver(reminder, backend=backend, mail=mail)
        except SoftTimeLimitExceeded:
            _retry_or_fail(
                reminder, _("The send did not finish in time."), now=timezone.now(), result=result
            )
            _release(rows[index + 1 :], result)
            raise
        except DeliveryError as error:
            if error.transient:
                _retry_or_fail(reminder, str(error), now=timezone.now(), result=result)
            else:
                reminder.status = ReminderStatus.FAILED
                reminder.claimed_until = None
                reminder.error = str(error)[:300]
                result.failed += 1
        except Exception as error:  # one row's fault stays that row's
            # A template error, a backend raising what it should not: this
            # row is retried later, the rest of the batch goes on.
            logger.warning("Reminder %s not sent: %s", reminder.uuid, failure_text(error))
            _retry_or_fail(
                reminder, _("Not sent (%(error)s).") % {"error": failure_text(error)},
                now=timezone.now(), result=result,
            )  # fmt: skip
        except BaseException as error:
            # The worker is stopping (KeyboardInterrupt, SystemExit): this
            # row's outcome is unknown, so it is tried again later under the
            # same key; the rows not reached are given back at once.
            _retry_or_fail(
                reminder, _("Not sent (%(error)s).") % {"error": failure_text(error)},
                now=timezone.now(), result=result,
            )  # fmt: skip
            _release(rows[index + 1 :], result)
            raise
        else:
            reminder.status = ReminderStatus.SENT
            reminder.claimed_until = None
            reminder.sent_at = timezone.now()
            reminder.provider_message_id = message_id[:200]
            reminder.error = ""
            result.sent += 1


def _release(rows: list[Reminder], result: DispatchResult) -> None:
    """Claimed rows not tried: planned again, as due as before, the claim's
    attempt not counted."""
    for reminder in rows:
        reminder.status = ReminderStatus.PLANNED
        reminder.claimed_until = None
        reminder.attempts = max(reminder.attempts - 1, 0)
        result.released += 1


def _record(rows: list[Reminder], leases: dict[int, datetime]) -> None:
    """Step 3: write the outcomes, on rows still held under this tick's lease."""
    with transaction.atomic():
        written = _write_back(rows, leases=leases)
    if written < len(rows):
        logger.warning("Reminders: %d outcomes dropped, their lease ran out", len(rows) - written)


def reminders_dispatch_batch(
    *,
    limit: int = 100,
    now: datetime | None = None,
    backend: SMSBackend | None = None,
    mail_connection: Any = None,
    deadline: float | None = None,
) -> DispatchResult:
    """Claim up to `limit` due reminders, send them and record each outcome.

    `now`: aware, the current time by default (due times, quiet hours and
    leases are reckoned from it). `backend`: the SMS backend (SMS_BACKEND by
    default); `mail_connection`: a Django mail connection (EMAIL_BACKEND by
    default). `deadline`: a time.monotonic() value after which rows not yet
    tried are given back (planned, still due) for the next tick.

    The claim and the record are two short transactions; nothing is locked
    and no transaction is open while a message is sent. A fixed number of
    queries whatever the batch holds: the claim (the rows, then what the
    messages need, joined in, and one look-up of the courses in the batch),
    one UPDATE to lease, one UPDATE to record; plus one small read per row
    just before it goes, so that a reminder whose booking was cancelled,
    moved or marked since the claim (or whose patient changed their message
    preferences) is not sent. Rules read: MAX_ATTEMPTS tries
    with backoff() between them; quiet hours (the clinic's settings, read
    once a batch as it runs: one more query) hold messages to patients; the lease is
    MESSAGE_CLAIM_LEASE (longer than the dispatch task's hard time limit).

    Never raises for one reminder's failure, whatever it is (recorded on
    that row, retried with back-off, failed after MAX_ATTEMPTS). Raises a
    database error when the database is unreachable (the rows stay planned,
    or sending until their lease ends), and SoftTimeLimitExceeded when the
    Celery task's soft time limit strikes, after recording the batch.
    """
    # The clinic's settings (quiet hours, its name) read once for the batch, as it runs.
    with clinic_settings.scope():
        return _dispatch_batch(
            limit=limit,
            now=now,
            backend=backend,
            mail_connection=mail_connection,
            deadline=deadline,
        )


def _dispatch_batch(
    *,
    limit: int,
    now: datetime | None,
    backend: SMSBackend | None,
    mail_connection: Any,
    deadline: float | None,
) -> DispatchResult:
    result = DispatchResult()
    backend = backend or get_backend()
    now = now or timezone.now()
    rows, leases = _claim(now, limit, result)
    if not rows:
        return result
    gone: set[int] = set()
    try:
        _send_all(
            rows,
            leases=leases,
            now=now,
            backend=backend,
            mail_connection=mail_connection,
            deadline=deadline,
            result=result,
            gone=gone,
        )
    finally:
        outcomes = [reminder for reminder in rows if reminder.pk not in gone]
        for reminder in outcomes:
            reminder.updated_at = timezone.now()
        _record(outcomes, leases)
    return result


def reminders_dispatch_due(
    *,
    limit: int | None = None,
    budget_seconds: float = 50.0,
    backend: SMSBackend | None = None,
) -> DispatchResult:
    """Send what is due, batch after batch of `limit` (REMINDER_BATCH_SIZE by
    default), for at most `budget_seconds` of monotonic time: rows not tried
    by then are given back for the next beat tick. A tick lasts at most the
    budget plus one message's network wait (EMAIL_TIMEOUT,
    SMS_TIMEOUT_SECONDS), within the task's soft time limit. Two ticks at
    once never take the same row (SKIP LOCKED, then the lease). Raises as
    reminders_dispatch_batch does."""
    size = limit if limit is not None else settings.REMINDER_BATCH_SIZE
    backend = backend or get_backend()
    total = DispatchResult()
    deadline = monotonic_time.monotonic() + budget_seconds
    while monotonic_time.monotonic() < deadline:
        result = reminders_dispatch_batch(limit=size, backend=backend, deadline=deadline)
        total.add(result)
        if result.claimed < size or result.released:
            break
    return total

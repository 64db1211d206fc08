"""Telling a patient's previous address that their contact details changed.

A change of a patient's email or mobile number, by anyone, leaves a
`ContactChange` row owing a notice to the address before the change
(patients.contact_changes). A beat tick every minute
(`treatments.contact_notices_dispatch`) sends each once: an email at any
hour, a text message outside quiet hours (held until they end, like
reminders).

As with reminders, no transaction is open and no row locked while a mail
server or the SMS provider is called: rows are claimed in a short
transaction (SELECT ... FOR UPDATE SKIP LOCKED, then "sending" with a lease
in `notice_due_at`), sent, and each outcome recorded in a second short
transaction, only on a row still held under that lease. A row whose worker
died mid-send is claimed again once the lease (MESSAGE_CLAIM_LEASE) ends.
The row's uuid is the email's Message-ID and the text message's idempotency
key, so such a repeat goes under the same key. Whatever one notice raises is
that notice's failure: recorded by kind, retried after a back-off, failed
after NOTICE_MAX_ATTEMPTS tries, while the others go.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone

from clinic import clinic_settings
from clinic.localtime import to_local
from patients.models import ContactChange, ContactField, ContactNoticeStatus
from treatments.services.reminders import (
    DeliveryError,
    backoff,
    failure_text,
    in_quiet_hours,
    quiet_hours_end_after,
    send_email,
    send_sms,
)
from treatments.sms import SMSBackend, get_backend

logger = logging.getLogger(__name__)

NOTICE_BATCH_SIZE = 50
NOTICE_MAX_ATTEMPTS = 5


@dataclass
class NoticeResult:
    """What one dispatch did, in notices."""

    claimed: int = 0
    sent: int = 0
    held: int = 0
    retried: int = 0
    failed: int = 0


def _context(row: ContactChange) -> dict[str, Any]:
    return {
        **clinic_settings.printed(),
        "what": row.get_field_display(),
        "changed_at": to_local(row.changed_at),
    }


def _send_email(row: ContactChange, mail: Any) -> None:
    context = _context(row)
    domain = urlsplit(settings.SITE_URL).hostname or "clinic.localhost"
    message = EmailMultiAlternatives(
        subject=" ".join(render_to_string("emails/contact_changed_subject.txt", context).split()),
        body=render_to_string("emails/contact_changed_message.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[row.previous],
        headers={"Message-ID": f"<contact-change-{row.uuid}@{domain}>"},
        connection=mail,
    )
    message.attach_alternative(
        render_to_string("emails/contact_changed_message.html", context), "text/html"
    )
    send_email(message)


def _send_sms(row: ContactChange, backend: SMSBackend) -> None:
    body = render_to_string("emails/contact_changed_sms.txt", _context(row)).strip()
    send_sms(backend, to=row.previous, body=body, idempotency_key=str(row.uuid))


def _retry_or_fail(row: ContactChange, why: str, *, now: datetime, result: NoticeResult) -> None:
    row.notice_error = why[:200]
    if row.notice_attempts >= NOTICE_MAX_ATTEMPTS:
        row.notice_status = ContactNoticeStatus.FAILED
        row.notice_due_at = None
        result.failed += 1
    else:
        row.notice_status = ContactNoticeStatus.PENDING
        row.notice_due_at = now + backoff(row.notice_attempts)
        result.retried += 1


CLAIM_FIELDS = ["notice_status", "notice_attempts", "notice_due_at", "notice_error"]


def _claim(now: datetime, limit: int, result: NoticeResult) -> list[ContactChange]:
    """Take the notices owed (or whose lease ran out), hold text messages in
    quiet hours, and lease the rest. Returns the rows to send."""
    owed = Q(notice_status=ContactNoticeStatus.PENDING) & (
        Q(notice_due_at__isnull=True) | Q(notice_due_at__lte=now)
    )
    lost = Q(notice_status=ContactNoticeStatus.SENDING, notice_due_at__lte=now)
    lease_until = now + settings.MESSAGE_CLAIM_LEASE
    with transaction.atomic():
        rows = list(
            ContactChange.objects.select_for_update(skip_locked=True)
            .filter(owed | lost)
            .order_by("changed_at", "id")[:limit]
        )
        result.claimed = len(rows)
        to_send = []
        for row in rows:
            if row.field == ContactField.PHONE and in_quiet_hours(now):
                row.notice_status = ContactNoticeStatus.PENDING
                row.notice_due_at = quiet_hours_end_after(now)
                result.held += 1
                continue
            if row.notice_status == ContactNoticeStatus.SENDING:
                logger.warning("Contact change notice %s: lease ran out, claimed again", row.uuid)
                if row.notice_attempts >= NOTICE_MAX_ATTEMPTS:
                    _retry_or_fail(row, "worker stopped", now=now, result=result)
                    continue
            row.notice_status = ContactNoticeStatus.SENDING
            row.notice_due_at = lease_until
            row.notice_attempts += 1
            to_send.append(row)
        if rows:
            ContactChange.objects.bulk_update(rows, CLAIM_FIELDS)
    return to_send


def _send(row: ContactChange, *, mail: Any, backend: SMSBackend | None) -> None:
    if row.field == ContactField.EMAIL:
        _send_email(row, mail)
    else:
        _send_sms(row, backend or get_backend())


def contact_notices_dispatch(
    *,
    now: datetime | None = None,
    limit: int = NOTICE_BATCH_SIZE,
    backend: SMSBackend | None = None,
    mail_connection: Any = None,
) -> NoticeResult:
    """Send up to `limit` notices owed, oldest change first, and record each
    outcome on its row.

    `now`: aware, the current time by default (quiet hours are read in the
    clinic's zone, QUIET_HOURS_START / QUIET_HOURS_END). `backend`: the SMS
    backend (SMS_BACKEND by default); `mail_connection`: a Django mail
    connection (EMAIL_BACKEND, each answer awaited at most EMAIL_TIMEOUT
    seconds). Safe to run twice at once: rows are claimed with SKIP LOCKED
    under a lease (MESSAGE_CLAIM_LEASE). Never raises for a failed send,
    whatever the failure: a transient one (or any unexpected exception,
    recorded by its class name) is tried again after backoff(), up to
    NOTICE_MAX_ATTEMPTS tries; a permanent one (an address refused) marks
    the row failed at once. Raises a database error when the database is
    unreachable, and SoftTimeLimitExceeded when the task's soft time limit
    strikes or the worker is stopped (KeyboardInterrupt, SystemExit), after
    recording every notice of the batch (those not tried owed again at
    once). Each notice is read again just before it goes and sent only
    while still "sending" under this dispatch's lease. Errors recorded are
    our own words (a status code, a kind of failure), never what a provider
    answered. Logs ids and counts, never an address.
    """
    result = NoticeResult()
    now = now or timezone.now()
    rows = _claim(now, limit, result)
    leases = {row.pk: row.notice_due_at for row in rows}
    if not rows:
        return result
    mail = mail_connection or get_connection(fail_silently=False)
    done: list[ContactChange] = []
    try:
        for index, row in enumerate(rows):
            try:
                if not _still_ours(row, leases[row.pk]):
                    continue  # taken by another dispatch since the claim: not sent, not recorded
                _send(row, mail=mail, backend=backend)
            except SoftTimeLimitExceeded:
                _retry_or_fail(row, "time limit", now=timezone.now(), result=result)
                done.append(row)
                done.extend(_give_back(rows[index + 1 :]))
                raise
            except DeliveryError as error:
                if error.transient:
                    _retry_or_fail(row, str(error), now=timezone.now(), result=result)
                else:
                    row.notice_status = ContactNoticeStatus.FAILED
                    row.notice_due_at = None
                    row.notice_error = str(error)[:200]
                    result.failed += 1
            except Exception as error:  # one notice's fault stays its own
                logger.warning(
                    "Contact change notice %s not sent: %s", row.uuid, failure_text(error)
                )
                _retry_or_fail(row, failure_text(error), now=timezone.now(), result=result)
            except BaseException as error:
                # The worker is stopping (KeyboardInterrupt, SystemExit): this
                # notice is tried again later, the untried ones given back now.
                _retry_or_fail(row, failure_text(error), now=timezone.now(), result=result)
                done.append(row)
                done.extend(_give_back(rows[index + 1 :]))
                raise
            else:
                row.notice_status = ContactNoticeStatus.SENT
                row.notice_due_at = None
                row.notice_sent_at = timezone.now()
                row.notice_error = ""
                result.sent += 1
            done.append(row)
    finally:
        _record(done, leases)
    if result.failed:
        logger.warning("Contact change notices failed: %s", result.failed)
    return result


def _still_ours(row: ContactChange, lease: datetime | None) -> bool:
    """Just before a notice goes: one small read, no transaction held, that
    the row is still "sending" under this dispatch's lease."""
    return ContactChange.objects.filter(
        pk=row.pk, notice_status=ContactNoticeStatus.SENDING, notice_due_at=lease
    ).exists()


def _give_back(rows: list[ContactChange]) -> list[ContactChange]:
    """Claimed notices not tried: owed again at once, the claim's attempt not counted."""
    for untried in rows:
        untried.notice_status = ContactNoticeStatus.PENDING
        untried.notice_attempts = max(untried.notice_attempts - 1, 0)
        untried.notice_due_at = None
    return rows


def _record(rows: list[ContactChange], leases: dict[int, datetime | None]) -> None:
    """Each outcome, on a row still "sending" under this dispatch's lease."""
    with transaction.atomic():
        for row in rows:
            ContactChange.objects.filter(
                pk=row.pk,
                notice_status=ContactNoticeStatus.SENDING,
                notice_due_at=leases[row.pk],
            ).update(
                notice_status=row.notice_status,
                notice_attempts=row.notice_attempts,
                notice_due_at=row.notice_due_at,
                notice_sent_at=row.notice_sent_at,
                notice_error=row.notice_error,
            )

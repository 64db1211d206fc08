"""Telling a patient's previous address that their contact details changed.

A change of a patient's email or mobile number, by anyone, leaves a
`ContactChange` row owing a notice to the address before the change
(patients.contact_changes). A beat tick every minute
(`treatments.contact_notices_dispatch`) claims the rows owed with
`SELECT ... FOR UPDATE SKIP LOCKED` and sends each once: an email at any
hour, a text message outside quiet hours (held until they end, like
reminders). The row's uuid is the email's Message-ID and the text
message's idempotency key, so a worker killed mid-batch sends again under
the same key. A notice that keeps failing is marked failed after
NOTICE_MAX_ATTEMPTS ticks.
"""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from patients.models import ContactChange, ContactField, ContactNoticeStatus
from treatments.localtime import to_local
from treatments.services.reminders import in_quiet_hours
from treatments.sms import PermanentSMSError, SMSBackend, TransientSMSError, get_backend

logger = logging.getLogger(__name__)

NOTICE_BATCH_SIZE = 50
NOTICE_MAX_ATTEMPTS = 5


@dataclass
class NoticeResult:
    claimed: int = 0
    sent: int = 0
    held: int = 0
    retried: int = 0
    failed: int = 0


class _TransientError(Exception):
    pass


class _PermanentError(Exception):
    pass


def _context(row: ContactChange) -> dict[str, Any]:
    return {
        "clinic_name": settings.CLINIC_NAME,
        "clinic_phone": settings.CLINIC_PHONE,
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
    try:
        sent = message.send()
    except smtplib.SMTPRecipientsRefused as error:
        raise _PermanentError("address refused") from error
    except smtplib.SMTPResponseException as error:
        if 500 <= error.smtp_code < 600:
            raise _PermanentError(f"mail server answered {error.smtp_code}") from error
        raise _TransientError(f"mail server answered {error.smtp_code}") from error
    except (smtplib.SMTPException, OSError) as error:
        raise _TransientError(type(error).__name__) from error
    if not sent:
        raise _TransientError("mail backend sent nothing")


def _send_sms(row: ContactChange, backend: SMSBackend) -> None:
    body = render_to_string("emails/contact_changed_sms.txt", _context(row)).strip()
    try:
        backend.send(to=row.previous, body=body, idempotency_key=str(row.uuid))
    except TransientSMSError as error:
        raise _TransientError(type(error).__name__) from error
    except PermanentSMSError as error:
        raise _PermanentError(type(error).__name__) from error


def contact_notices_dispatch(
    *,
    now: datetime | None = None,
    limit: int = NOTICE_BATCH_SIZE,
    backend: SMSBackend | None = None,
    mail_connection: Any = None,
) -> NoticeResult:
    """Send up to `limit` notices owed, oldest change first, in one
    transaction, and record each outcome on its row. `now`: aware, the
    current time by default (quiet hours are read in the clinic's zone).
    Safe to run twice at once: each run claims its rows with SKIP LOCKED.
    Never raises for a failed send: a transient failure is tried again at
    the next tick, up to NOTICE_MAX_ATTEMPTS; a permanent one (an address
    refused) marks the row failed at once. Logs ids and counts, never an
    address."""
    result = NoticeResult()
    with transaction.atomic():
        now = now or timezone.now()
        rows = list(
            ContactChange.objects.select_for_update(skip_locked=True)
            .filter(notice_status=ContactNoticeStatus.PENDING)
            .order_by("changed_at", "id")[:limit]
        )
        if not rows:
            return result
        result.claimed = len(rows)
        mail = mail_connection or get_connection(fail_silently=False)
        sms = backend
        for row in rows:
            if row.field == ContactField.PHONE and in_quiet_hours(now):
                result.held += 1
                continue
            row.notice_attempts += 1
            try:
                if row.field == ContactField.EMAIL:
                    _send_email(row, mail)
                else:
                    sms = sms or get_backend()
                    _send_sms(row, sms)
            except _PermanentError as error:
                row.notice_status = ContactNoticeStatus.FAILED
                row.notice_error = str(error)[:200]
                result.failed += 1
            except _TransientError as error:
                row.notice_error = str(error)[:200]
                if row.notice_attempts >= NOTICE_MAX_ATTEMPTS:
                    row.notice_status = ContactNoticeStatus.FAILED
                    result.failed += 1
                else:
                    result.retried += 1
            else:
                row.notice_status = ContactNoticeStatus.SENT
                row.notice_sent_at = now
                row.notice_error = ""
                result.sent += 1
            row.save(
                update_fields=[
                    "notice_status",
                    "notice_attempts",
                    "notice_sent_at",
                    "notice_error",
                ]
            )
    if result.failed:
        logger.warning("Contact change notices failed: %s", result.failed)
    return result

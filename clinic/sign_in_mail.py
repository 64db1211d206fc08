"""Sign-in emails asked for on public pages: a password reset, a portal sign-in link.

The request page never looks the address up. It counts the request
(per address typed and per client address, SIGN_IN_MAIL_LIMIT_PER_EMAIL and
SIGN_IN_MAIL_LIMIT_PER_ADDRESS an hour), writes one `SignInMailRequest` row
and queues its task after commit: the same queries, the same task, the same
answer and the same time whether the address is known or not, throttled or
not (a throttled request writes no row; its answer is the same page).

A worker then looks the address up and sends the email, if there is an
account, through the sender registered for the row's kind; the row is
deleted either way. A row whose task was lost (broker down) is queued again
by the beat sweep `sign_in_mail_requeue_stale`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.forms import PasswordResetForm
from django.db import transaction
from django.utils import timezone

from clinic.background import enqueue
from clinic.models import SignInMailKind, SignInMailRequest
from clinic.proxies import address_key
from clinic.throttle import throttle_hit

logger = logging.getLogger(__name__)

THROTTLE_WINDOW = timedelta(hours=1)
# A row still here this long after its task was queued lost it: queue again.
REQUEUE_AFTER = timedelta(minutes=2)
# Past this age, or after this many failed sends, a row is dropped unsent:
# whoever asked has asked again or called the clinic.
GIVE_UP_AFTER = timedelta(hours=1)
MAX_ATTEMPTS = 5

Sender = Callable[[str], None]
_senders: dict[str, Sender] = {}


def sign_in_mail_sender_register(kind: SignInMailKind, sender: Sender) -> None:
    """Name the function that sends emails of `kind`. It takes the address as
    typed, sends nothing when no account has it, and never says which."""
    _senders[str(kind)] = sender


def sign_in_mail_request(*, kind: SignInMailKind, email: str, ip: str | None) -> bool:
    """Owe an email of `kind` to `email` (as typed on the form), asked for from
    client address `ip`. Returns whether it was accepted; the caller answers
    the same either way. Past SIGN_IN_MAIL_LIMIT_PER_EMAIL requests for this
    address or SIGN_IN_MAIL_LIMIT_PER_ADDRESS from this client within the
    hour, nothing is written or sent. Raises nothing for an unknown address."""
    email = email.strip()
    per_email = throttle_hit(
        scope=f"sign-in-mail:{kind}:email",
        key=email,
        limit=settings.SIGN_IN_MAIL_LIMIT_PER_EMAIL,
        window=THROTTLE_WINDOW,
    )
    per_address = throttle_hit(
        scope="sign-in-mail:address",
        # An IPv6 client by its /64: one host holds them all.
        key=address_key(ip) or "unknown",
        limit=settings.SIGN_IN_MAIL_LIMIT_PER_ADDRESS,
        window=THROTTLE_WINDOW,
    )
    if not (per_email and per_address):
        logger.info("A %s email request was over its limit; nothing sent", kind)
        return False
    with transaction.atomic():
        row = SignInMailRequest(kind=kind, email=email)
        row.full_clean()
        row.save()
        row_id = row.pk
        transaction.on_commit(lambda: sign_in_mail_enqueue(request_id=row_id))
    return True


def sign_in_mail_enqueue(*, request_id: int) -> bool:
    """Send the task for one row to the broker; False (logged) if it cannot be reached."""
    from clinic.tasks import sign_in_mail_send as send_task

    return enqueue(send_task, request_id, label=f"sign-in email request {request_id}")


def sign_in_mail_send(*, request_id: int) -> bool:
    """Handle one owed email: send it if an account has the address, then
    forget the row. Returns whether the row was handled here (False: already
    handled, or being handled by another worker). Safe to run twice. A sender
    that fails leaves the row for the sweep, up to MAX_ATTEMPTS tries."""
    with transaction.atomic():
        row = (
            SignInMailRequest.objects.select_for_update(skip_locked=True)
            .filter(pk=request_id)
            .first()
        )
        if row is None:
            return False
        sender = _senders.get(row.kind)
        if sender is None:
            logger.error("No sender for %s emails; request %s dropped", row.kind, row.pk)
            row.delete()
            return True
        try:
            # A savepoint: a sender's database error leaves this transaction usable.
            with transaction.atomic():
                sender(row.email)
        except Exception as exc:
            logger.warning("Sign-in email request %s failed (%s)", row.pk, type(exc).__name__)
            SignInMailRequest.objects.filter(pk=row.pk).update(attempts=row.attempts + 1)
            return True
        row.delete()
    return True


def sign_in_mail_requeue_stale() -> int:
    """Queue again the rows whose task was lost; drop rows past GIVE_UP_AFTER
    or MAX_ATTEMPTS. Run every minute. Returns how many were queued."""
    now = timezone.now()
    dropped, _kinds = SignInMailRequest.objects.filter(
        requested_at__lt=now - GIVE_UP_AFTER
    ).delete()
    dropped += SignInMailRequest.objects.filter(attempts__gte=MAX_ATTEMPTS).delete()[0]
    if dropped:
        logger.warning("Sign-in email requests dropped unsent: %s", dropped)
    stale = SignInMailRequest.objects.filter(queued_at__lt=now - REQUEUE_AFTER)
    ids = list(stale.values_list("pk", flat=True)[:200])
    queued = 0
    for pk in ids:
        # Restart the clock first, so the next sweep does not queue it twice.
        SignInMailRequest.objects.filter(pk=pk).update(queued_at=timezone.now())
        queued += sign_in_mail_enqueue(request_id=pk)
    return queued


def password_reset_send(email: str) -> None:
    """Email a password-reset link to each active account with a usable password
    and this address (Django's PasswordResetForm); nothing for an unknown one.
    The link points at SITE_URL."""
    form = PasswordResetForm({"email": email})
    if not form.is_valid():
        return
    site = urlsplit(settings.SITE_URL)
    form.save(
        domain_override=site.netloc,
        use_https=site.scheme == "https",
        subject_template_name="registration/password_reset_subject.txt",
        email_template_name="registration/password_reset_email.html",
    )


sign_in_mail_sender_register(SignInMailKind.PASSWORD_RESET, password_reset_send)

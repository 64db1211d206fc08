"""The patient portal: invitations, one-time sign-in links, and the count of
failed attempts at public link pages (for rate limiting)."""

from __future__ import annotations

import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from clinic import clinic_settings
from clinic.addresses import email_key
from clinic.audit import audit_log
from clinic.concurrency import submission_check, submission_marks
from clinic.models import AuditAction, User
from clinic.proxies import address_key
from clinic.refusals import RefusalKind, RefusedError
from clinic.roles import CLINICAL_DOCUMENT_ROLES
from patients.contact_changes import email_hold
from patients.locking import patient_hold
from patients.models import Patient
from treatments.models import DownloadLink, LinkAttempt, PortalAccount, PortalLoginToken
from treatments.services.aftercare import LinkExpiredError, LinkGoneError, sha256_hex

logger = logging.getLogger(__name__)

# Failed attempts (wrong token, wrong date of birth) from one address within
# the window, after which public link pages answer 429.
LINK_ATTEMPT_LIMIT = 10
LINK_ATTEMPT_WINDOW = timedelta(minutes=10)
# Wrong dates of birth at one download link, from any addresses, after which
# the link is revoked: a date of birth is a small space to search.
LINK_WRONG_BIRTH_DATE_LIMIT = 10
UNKNOWN_ADDRESS = "0.0.0.0"  # noqa: S104 (a stored value, not a socket)


# --- Rate limiting of public link pages -------------------------------------------------


def _address(ip: str | None) -> str:
    # An IPv6 client by its /64: one host holds them all.
    return address_key(ip) or UNKNOWN_ADDRESS


def link_attempts_exceeded(*, ip: str | None) -> bool:
    """Whether the address `ip` (None: unknown; an IPv6 one counted by its
    /64) made LINK_ATTEMPT_LIMIT or more failed attempts at download and
    sign-in links within LINK_ATTEMPT_WINDOW: its next attempt is refused
    without being checked."""
    since = timezone.now() - LINK_ATTEMPT_WINDOW
    recent = LinkAttempt.objects.filter(ip=_address(ip), at__gte=since)
    return recent.count() >= LINK_ATTEMPT_LIMIT


def link_attempt_record(*, ip: str | None) -> None:
    """Count one failure from this address (nothing about the patient is kept)."""
    LinkAttempt.objects.create(ip=_address(ip))


@transaction.atomic
def link_wrong_birth_date(*, link: DownloadLink, ip: str | None) -> bool:
    """Count a wrong date of birth given at `link`, from `ip`. At the
    LINK_WRONG_BIRTH_DATE_LIMITth, whatever the addresses, the link is
    revoked (audited; staff see it revoked and send a new one). Whether it
    was revoked now."""
    # The link's row locked: two wrong answers at once are counted one after the other.
    held = DownloadLink.objects.select_for_update().filter(pk=link.pk).first()
    LinkAttempt.objects.create(ip=_address(ip), link=held)
    if held is None or held.revoked_at is not None:
        return False
    wrong = LinkAttempt.objects.filter(link=link).count()
    if wrong < LINK_WRONG_BIRTH_DATE_LIMIT:
        return False
    DownloadLink.objects.filter(pk=link.pk).update(revoked_at=timezone.now())
    audit_log(
        actor=None,
        actor_label="system",
        action=AuditAction.UPDATE,
        obj=held,
        patient_ref=link.patient.uuid,
        changed_fields=["revoked_at", f"wrong_dates_of_birth={wrong}"],
    )
    return True


def link_attempts_prune(*, older_than: timedelta = timedelta(days=1)) -> int:
    """Delete failed link attempts older than `older_than` (default a day, well
    past the throttle's window); the number deleted. Wrong dates of birth at a
    link that still opens are kept: a link has LINK_WRONG_BIRTH_DATE_LIMIT in
    its life. Run daily by beat."""
    now = timezone.now()
    live = Q(link__revoked_at__isnull=True, link__expires_at__gt=now)
    deleted, _rows = (
        LinkAttempt.objects.filter(at__lt=now - older_than)
        .filter(Q(link__isnull=True) | ~live)
        .delete()
    )
    return deleted


# --- Accounts and sign-in links -------------------------------------------------------


@dataclass(frozen=True)
class IssuedLogin:
    token: PortalLoginToken
    raw: str

    @property
    def url(self) -> str:
        path = reverse("treatments:portal_login", kwargs={"token": self.raw})
        return settings.SITE_URL.rstrip("/") + path


def _portal_username(patient: Patient) -> str:
    return f"patient-{patient.uuid}"


@transaction.atomic
def portal_login_issue(
    *, account: PortalAccount, issued_by: User | None, marks: list[str] | None = None
) -> IssuedLogin:
    """A new one-time sign-in link for `account` (only its hash is kept),
    audited by `issued_by` (None: the system) with `marks` among the changed
    fields (a form's submission marker)."""
    raw = secrets.token_urlsafe(32)
    now = timezone.now()
    token = PortalLoginToken(
        account=account,
        token_hash=sha256_hex(raw),
        expires_at=now + timedelta(minutes=settings.PORTAL_LOGIN_LINK_MINUTES),
    )
    token.full_clean()
    token.save()
    audit_log(
        actor=issued_by,
        actor_label="" if issued_by else "system",
        action=AuditAction.CREATE,
        obj=token,
        object_id=str(token.pk),
        patient_ref=account.patient.uuid,
        changed_fields=marks or [],
    )
    return IssuedLogin(token=token, raw=raw)


def _send_login_email(*, account: PortalAccount, issued: IssuedLogin, invitation: bool) -> None:
    patient = account.patient
    context = {
        **clinic_settings.printed(),
        "patient": patient,
        "url": issued.url,
        "minutes": settings.PORTAL_LOGIN_LINK_MINUTES,
        "invitation": invitation,
    }
    subject = " ".join(render_to_string("emails/portal_subject.txt", context).split())
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("emails/portal_message.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[patient.email],
    )
    message.attach_alternative(render_to_string("emails/portal_message.html", context), "text/html")
    message.send()


def _sessions_end(user: User) -> int:
    """Delete every live session signed in as `user` (database sessions);
    how many. The password hash is rotated too, so that a session kept
    anywhere else no longer matches (Django checks it on every request)."""
    user.set_unusable_password()
    User.objects.filter(pk=user.pk).update(password=user.password)
    ended = [
        session.pk
        for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator()
        if str(session.get_decoded().get("_auth_user_id")) == str(user.pk)
    ]
    Session.objects.filter(pk__in=ended).delete()
    return len(ended)


@transaction.atomic
def portal_account_close(
    *, account: PortalAccount, closed_by: User | None, marks: list[str] | None = None
) -> None:
    """Close `account`: its user is made inactive, its sessions end and its
    unused sign-in links stop working; audited by `closed_by` with `marks`.
    Only a practitioner's invitation opens it again (`portal_invite`), to
    the address the record holds then."""
    user = account.user
    User.objects.filter(pk=user.pk).update(is_active=False)
    user.is_active = False
    ended = _sessions_end(user)
    now = timezone.now()
    revoked = PortalLoginToken.objects.filter(
        account=account, used_at__isnull=True, expires_at__gt=now
    ).update(expires_at=now)
    audit_log(
        actor=closed_by,
        actor_label="" if closed_by else "system",
        action=AuditAction.UPDATE,
        obj=account,
        object_id=str(account.pk),
        patient_ref=account.patient.uuid,
        changed_fields=[
            "closed",
            f"sessions_ended={ended}",
            f"sign_in_links_revoked={revoked}",
            *(marks or []),
        ],
    )


class PortalInviteRefusedError(RefusedError):
    """An invitation refused because of the record's state: a plain `message`,
    the form field it concerns (`field`, None: none) and a `code`."""

    kind = RefusalKind.CONFLICT


def portal_invite(
    *, patient: Patient, invited_by: User, submission_token: uuid.UUID | None = None
) -> PortalAccount:
    """Give the patient a portal account (a user with no password and no
    role) and email a one-time sign-in link. Inviting again sends a new link.

    A record being merged into another at this moment is invited once the
    merge is done, as the record that stays (patients.locking). Raises
    `ValidationError` when the patient has no email address, and
    `PortalInviteRefusedError`, nothing sent: code "not_allowed" when
    `invited_by` cannot open the patient's clinical documents
    (clinic.roles.CLINICAL_DOCUMENT_ROLES: the portal shows them, so no other
    role may route them to an address); "email_hold" when the email was
    changed less than 24 hours ago by such a role
    (patients.contact_changes.email_hold); "account_added" when a merge gave
    the record a portal account while this one was being made (a record has
    one). `submission_token` is the invitation form's one-time token: raises
    `AlreadySubmittedError` (clinic.concurrency, with `.obj`, the patient),
    nothing sent again, when this very form was already sent."""
    if not invited_by.has_any_role(CLINICAL_DOCUMENT_ROLES):
        raise PortalInviteRefusedError(
            _(
                "Only staff who can see the patient's clinical documents can invite them "
                "to the portal. Ask a practitioner."
            ),
            code="not_allowed",
        )
    if not patient.email:
        raise ValidationError(
            _("This patient has no email address. Add one before inviting them to the portal.")
        )
    with transaction.atomic():
        # The form sent twice (a double click): one invitation, one email.
        submission_check(PortalLoginToken, submission_token, by=invited_by, find=lambda _e: patient)
        # FOR NO KEY UPDATE: a change of the email saved at this moment
        # commits first, and is read here with the record of who made it.
        patient = patient_hold(patient, exclusive=True)
        patient.refresh_from_db()
        if not patient.email:
            raise ValidationError(
                _("This patient has no email address. Add one before inviting them to the portal.")
            )
        hold = email_hold(patient=patient)
        if hold is not None:
            raise PortalInviteRefusedError(hold.sentence, code="email_hold")
        account = (
            PortalAccount.objects.select_related("user", "patient").filter(patient=patient).first()
        )
        if account is None:
            user = User(
                username=_portal_username(patient),
                email=patient.email,
                first_name=patient.first_name[:150],
                last_name=patient.last_name[:150],
            )
            user.set_unusable_password()
            user.full_clean()
            user.save()
            account = PortalAccount(patient=patient, user=user)
            # One account per record: the database says so below, at the insert.
            account.full_clean(validate_unique=False)
            try:
                with transaction.atomic():
                    account.save()
            except IntegrityError as error:
                # A merge moved the other record's account here meanwhile.
                raise PortalInviteRefusedError(
                    _(
                        "%(name)s's record was given a portal account a moment ago, when "
                        "another record of the same person was merged into it. Nothing was "
                        "sent: invite again to email that account a new sign-in link."
                    )
                    % {"name": patient.full_name},
                    code="account_added",
                ) from error
            audit_log(
                actor=invited_by, action=AuditAction.CREATE, obj=account, patient_ref=patient.uuid
            )
        elif not account.user.is_active:
            # Closed (by a merge that brought it here): opened again, for the
            # address this record holds now.
            User.objects.filter(pk=account.user_id).update(is_active=True, email=patient.email)
            audit_log(
                actor=invited_by,
                action=AuditAction.UPDATE,
                obj=account,
                patient_ref=patient.uuid,
                changed_fields=["reopened", "email"],
            )
        elif account.user.email != patient.email:
            User.objects.filter(pk=account.user_id).update(email=patient.email)
        issued = portal_login_issue(
            account=account, issued_by=invited_by, marks=submission_marks(submission_token)
        )
    _send_login_email(account=account, issued=issued, invitation=True)
    return account


def portal_login_request(*, email: str) -> None:
    """Email a sign-in link if an active portal account has this address (as
    typed, compared as `clinic.addresses.email_key`: any case, NFKC; the
    per-address limit counts it the same way); nothing otherwise. Runs in a
    worker, for a request made on the public page (clinic/sign_in_mail.py),
    so the page answers the same way, in the same time, whether or not an
    account has it."""
    email = (email or "").strip()
    if not email:
        return
    # __iexact narrows; email_key decides, as the request was counted under it.
    wanted = email_key(email)
    account = next(
        (
            found
            for found in PortalAccount.objects.select_related("patient", "user")
            .filter(patient__email__iexact=email, user__is_active=True)
            .order_by("pk")
            if email_key(found.patient.email) == wanted
        ),
        None,
    )
    if account is None:
        return
    if email_hold(patient=account.patient) is not None:
        # Changed by someone who cannot open clinical documents, too recently.
        logger.info("A portal sign-in link waits: the address was changed within 24 hours")
        return
    issued = portal_login_issue(account=account, issued_by=None)
    try:
        _send_login_email(account=account, issued=issued, invitation=False)
    except Exception as exc:
        logger.warning("A portal sign-in email could not be sent (%s)", type(exc).__name__)


@transaction.atomic
def portal_login_consume(*, token: str) -> PortalAccount:
    """Use a one-time sign-in link: the account it signs in, or LinkGoneError
    (unknown, used, account closed) / LinkExpiredError."""
    if not token or len(token) > 200:
        raise LinkGoneError
    # The token's row alone: locking the account and the patient with it would
    # drop the token from the answer when a merge moved the account meanwhile.
    found = (
        PortalLoginToken.objects.select_for_update(of=("self",))
        .filter(token_hash=sha256_hex(token))
        .select_related("account__user", "account__patient")
        .first()
    )
    if found is None or found.used_at is not None or not found.account.user.is_active:
        raise LinkGoneError
    now = timezone.now()
    if found.expires_at <= now:
        raise LinkExpiredError
    PortalLoginToken.objects.filter(pk=found.pk).update(used_at=now)
    account = found.account
    audit_log(
        actor=account.user,
        action=AuditAction.LOGIN,
        obj=account,
        object_id=str(account.pk),
        patient_ref=account.patient.uuid,
    )
    return account

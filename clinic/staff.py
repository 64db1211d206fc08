"""Staff accounts as a manager keeps them: invitations, roles, deactivation,
sign-in locks, authenticators, and everyone's backup codes.

Invitations. A manager invites a person by email with the roles they will
hold; nobody has an account until they join. The email carries a link signed
with Django's signing (a `TimestampSigner`, salt `INVITATION_SALT`) over the
invitation's uuid and link number: it stops working after INVITATION_VALID,
once used to join, when a newer link is sent for the same invitation, or when
the invitation is cancelled; the row, locked, decides (the signature only
proves the clinic made the link). Joining makes the account with the roles
chosen, and the person then sets up two-factor authentication.

Managers. Whatever removes a manager (taking the role, deactivating) locks
the rows of every active manager first, in id order, then counts them again
in a statement of its own: two managers removing each other at the same
moment are done one after the other, and the second is refused, as is
removing the last one. Under the same lock the manager acting is checked to
still be one. Nobody deactivates their own account or takes their own manager
role: another manager does.

Deactivating ends the person's sessions at once (deleted from the session
store), withdraws the invitations they sent that are still waiting (taking
the manager role withdraws them too: only a manager invites), and
keeps the account, its roles and its name on every record; reactivating
gives the account back (not the invitations: a manager sends new ones).
Resetting a lost authenticator removes the person's authenticator and backup
codes and ends their sessions: they set up a new one at their next sign-in
when the clinic requires two-factor (REQUIRE_STAFF_2FA), else from their
account page when they choose.

Every change is written to the audit trail, naming the account
("auth.account", its username) or the invitation ("auth.invitation", the
address it went to).
"""

from __future__ import annotations

import logging
import re
import smtplib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import SESSION_KEY, password_validation
from django.contrib.auth.models import BaseUserManager, Group
from django.contrib.sessions.models import Session
from django.core import signing
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from clinic import clinic_settings, dates
from clinic.audit import audit_log
from clinic.concurrency import submission_check
from clinic.models import (
    USERNAME_SKELETON_CONSTRAINT,
    AuditAction,
    AuditEvent,
    StaffInvitation,
    User,
)
from clinic.refusals import RefusalKind, RefusedError
from clinic.roles import Role
from clinic.services import sign_in_lock_lift
from clinic.signin import sign_in_locks
from clinic.usernames import username_allowed, username_skeleton

logger = logging.getLogger(__name__)

# How long an invitation's link works: long enough for a weekend.
INVITATION_VALID = timedelta(days=3)
INVITATION_SALT = "clinic.staff.invitation"
BACKUP_CODE_COUNT = 10
BACKUP_DEVICE_NAME = "backup codes"
# A backup code as django-otp makes them (StaticToken.random_token): eight
# letters and digits of base 32, typed with or without spaces and dashes.
BACKUP_CODE_PATTERN = re.compile(r"[a-z2-7]{8}")
# The person's page lists this many changes of their account, newest first.
HISTORY_LENGTH = 30

STAFF_ACTIONS = (
    AuditAction.INVITATION_SENT,
    AuditAction.INVITATION_RESENT,
    AuditAction.INVITATION_CANCELLED,
    AuditAction.INVITATION_ACCEPTED,
    AuditAction.ROLE_GIVEN,
    AuditAction.ROLE_TAKEN,
    AuditAction.DEACTIVATED,
    AuditAction.REACTIVATED,
    AuditAction.TWO_FACTOR_RESET,
    AuditAction.TWO_FACTOR_ENROLLED,
    AuditAction.BACKUP_CODES_MADE,
    AuditAction.SIGN_IN_UNLOCKED,
    AuditAction.CREATE,
)


class StaffRefusedError(RefusedError):
    """A change of a staff account or invitation refused: a plain `message`,
    the form field it concerns (`field`) and a `code`."""

    code = "staff_refused"
    kind = RefusalKind.CONFLICT
    # The account the refusal is about, when the page can lead to it
    # ("email_deactivated": the deactivated account to reactivate).
    account: User | None = None


NOT_A_MANAGER = gettext_lazy(
    "Only an active manager changes staff accounts, and your account no longer is one."
)
LAST_MANAGER = gettext_lazy(
    "%(name)s is the clinic's last active manager. Give the manager role to someone else "
    "first: the clinic always needs one."
)


# --- Reading ----------------------------------------------------------------------------


def staff_accounts() -> QuerySet[User]:
    """Every account of the staff, whatever its state: all but the patients'
    portal accounts (found by the name of their relation, so that this base
    app imports no feature app)."""
    users = User.objects.all()
    try:
        User._meta.get_field("portal_account")
    except FieldDoesNotExist:
        return users
    return users.filter(portal_account__isnull=True)


def staff_member_get(member: uuid.UUID) -> User | None:
    """The staff account whose public id is `member`, or None (unknown, or a
    patient's portal account)."""
    return staff_accounts().filter(uuid=member).first()


def roles_held(user: User) -> list[Role]:
    """The roles `user`'s account holds, in the usual order, even while it is
    deactivated (`User.roles` is empty then: a deactivated account acts as none).
    Reads the prefetched groups when there are."""
    names = {group.name for group in user.groups.all()}
    return [role for role in Role if role.value in names]


@dataclass(frozen=True)
class StaffRow:
    """One member of staff as the staff page lists them."""

    user: User
    roles: list[Role]
    last_sign_in: datetime | None
    two_factor: bool
    backup_codes_left: int
    locked_until: datetime | None


def _sign_in_facts(users: QuerySet[User]) -> QuerySet[User]:
    last_sign_in = (
        AuditEvent.objects.filter(actor=OuterRef("pk"), action=AuditAction.LOGIN)
        .order_by("-at")
        .values("at")[:1]
    )
    codes_left = (
        StaticToken.objects.filter(device__user=OuterRef("pk"), device__confirmed=True)
        .order_by()
        .values("device__user")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return users.annotate(
        last_sign_in=Subquery(last_sign_in),
        two_factor=Exists(TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True)),
        backup_codes_left=Subquery(codes_left),
    ).prefetch_related("groups")


def _locks_by_username(now: datetime | None = None) -> dict[str, datetime]:
    """When each account's sign-in lock ends, by username in lower case (a
    lock holds the name as typed at the sign-in page)."""
    ends: dict[str, datetime] = {}
    for lock in sign_in_locks(now=now).accounts:
        key = lock.username.lower()
        ends[key] = max(ends.get(key, lock.ends_at), lock.ends_at)
    return ends


def _row(user: User, locks: dict[str, datetime]) -> StaffRow:
    return StaffRow(
        user=user,
        roles=roles_held(user),
        last_sign_in=getattr(user, "last_sign_in", None),
        two_factor=bool(getattr(user, "two_factor", False)),
        backup_codes_left=getattr(user, "backup_codes_left", None) or 0,
        locked_until=locks.get(user.username.lower()),
    )


def staff_members(*, now: datetime | None = None) -> list[StaffRow]:
    """Every member of staff, active ones first, by name: their roles, last
    sign-in (the trail's newest "signed in"), whether they set up two-factor
    authentication and how many backup codes they have left, and when their
    sign-in lock ends if one holds at `now`. A fixed number of queries."""
    users = _sign_in_facts(staff_accounts()).order_by(
        "-is_active", "first_name", "last_name", "username"
    )
    locks = _locks_by_username(now)
    return [_row(user, locks) for user in users]


def staff_member_row(user: User, *, now: datetime | None = None) -> StaffRow:
    """What the staff page lists of one member (see `staff_members`)."""
    found = _sign_in_facts(User.objects.filter(pk=user.pk)).get()
    return _row(found, _locks_by_username(now))


def staff_member_history(user: User) -> list[AuditEvent]:
    """The last HISTORY_LENGTH changes of `user`'s account and of the
    invitation they joined with, newest first (who, what, when): those
    naming the account (its username, or the user by its public id: setting
    up two-factor authentication) and the invitation (its address)."""
    about = Q(object_type="auth.account", object_id=user.username[:64]) | Q(
        object_type=User._meta.label_lower, object_id=str(user.uuid)
    )
    if user.email:
        about |= Q(object_type="auth.invitation", object_id=user.email[:64])
    return list(
        AuditEvent.objects.filter(about, action__in=STAFF_ACTIONS).order_by("-at", "-id")[
            :HISTORY_LENGTH
        ]
    )


def invitations_waiting() -> list[StaffInvitation]:
    """The invitations neither accepted nor cancelled, newest first, expired
    ones included (they can be sent again)."""
    return list(
        StaffInvitation.objects.filter(accepted_at__isnull=True, cancelled_at__isnull=True)
        .select_related("invited_by")
        .order_by("-sent_at", "-id")
    )


def two_factor_enrolled(user: User) -> bool:
    """Whether `user` has set up an authenticator app (a confirmed TOTP device)."""
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def backup_codes_left(user: User) -> int:
    """How many of `user`'s backup codes are still unused."""
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


# --- Sessions ---------------------------------------------------------------------------


def staff_sessions_end(user: User) -> int:
    """Delete every live session signed in as `user` from the session store
    (the database: SESSION_ENGINE is Django's default); how many. Their next
    request finds no session and leads to the sign-in page."""
    ended = [
        session.pk
        for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator()
        if str(session.get_decoded().get(SESSION_KEY)) == str(user.pk)
    ]
    Session.objects.filter(pk__in=ended).delete()
    return len(ended)


# --- Managers: the lock and the checks ------------------------------------------------------


def _active_managers() -> QuerySet[User]:
    return User.objects.filter(is_active=True, groups__name=Role.MANAGER.value)


def _managers_locked() -> set[int]:
    """Lock the rows of every active manager, in id order, and return who
    the active managers are once the lock is held: read in a statement of
    its own, so that a change committed while this one waited is seen."""
    list(
        _active_managers()
        .select_for_update(of=("self",))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    return set(_active_managers().values_list("pk", flat=True))


def _manager_check(actor: User | None, managers: set[int] | None = None) -> None:
    """Refuse unless `actor` is an active manager (among `managers`, read
    under the lock, when given)."""
    if actor is None:
        return
    is_manager = actor.pk in managers if managers is not None else Role.MANAGER in actor.roles
    if not is_manager:
        raise StaffRefusedError(NOT_A_MANAGER, code="not_manager", kind=RefusalKind.FORBIDDEN)


def _member_locked(member: User) -> User:
    return User.objects.select_for_update(of=("self",)).get(pk=member.pk)


def _audit_account(
    actor: User | None, action: AuditAction, member: User, marks: list[str] | None = None
) -> None:
    audit_log(
        actor=actor,
        actor_label="" if actor else "system",
        action=action,
        object_type="auth.account",
        object_id=member.username[:64],
        changed_fields=marks or [],
    )


def _last_manager_check(member: User, managers: set[int]) -> None:
    if member.is_active and member.pk in managers and not managers - {member.pk}:
        raise StaffRefusedError(
            LAST_MANAGER % {"name": member.get_full_name() or member.username},
            code="last_manager",
        )


# --- Roles --------------------------------------------------------------------------------


def staff_role_give(*, actor: User, member: User, role: Role) -> bool:
    """Give `member` the role `role`; False when they already hold it
    (nothing written). Audited as "gave a role to" with the role."""
    with transaction.atomic():
        managers = _managers_locked()
        _manager_check(actor, managers)
        member = _member_locked(member)
        group = Group.objects.get(name=Role(role).value)
        if member.groups.filter(pk=group.pk).exists():
            return False
        member.groups.add(group)
        _audit_account(actor, AuditAction.ROLE_GIVEN, member, [f"role={Role(role).value}"])
    return True


@dataclass(frozen=True)
class RoleTaken:
    """What taking a role ended: for the manager role, the invitations the
    person had sent that nobody had used yet (their addresses)."""

    invitations_withdrawn: list[str]


def staff_role_take(*, actor: User, member: User, role: Role) -> RoleTaken | None:
    """Take the role `role` from `member`; None when they do not hold it.
    Taking the manager role also withdraws the invitations they sent that
    are still waiting, as deactivating does: only a manager invites, and a
    link from someone who may no longer invite brings nobody in.
    Refused (StaffRefusedError) for the manager role of the last active
    manager ("last_manager") or of the manager acting ("own_manager_role").
    Audited as "took a role from" with the role, and each invitation
    withdrawn as "cancelled", marked "withdrawn"."""
    role = Role(role)
    with transaction.atomic():
        managers = _managers_locked()
        member = _member_locked(member)
        if role is Role.MANAGER:
            _last_manager_check(member, managers)
        _manager_check(actor, managers)
        if role is Role.MANAGER and member.pk == actor.pk:
            raise StaffRefusedError(
                _("You cannot take away your own manager role: another manager can."),
                code="own_manager_role",
                kind=RefusalKind.FORBIDDEN,
            )
        group = Group.objects.get(name=role.value)
        if not member.groups.filter(pk=group.pk).exists():
            return None
        member.groups.remove(group)
        _audit_account(actor, AuditAction.ROLE_TAKEN, member, [f"role={role.value}"])
        withdrawn = _invitations_withdraw(actor, member) if role is Role.MANAGER else []
    return RoleTaken(invitations_withdrawn=withdrawn)


# --- Deactivating, reactivating ------------------------------------------------------------


@dataclass(frozen=True)
class Deactivated:
    """What deactivating an account ended: its live sessions, and the
    invitations it had sent that nobody had used yet (their addresses)."""

    sessions_ended: int
    invitations_withdrawn: list[str]


def staff_deactivate(*, actor: User, member: User) -> Deactivated | None:
    """Deactivate `member`'s account: they can no longer sign in, their
    sessions end at once, the invitations they sent that are still waiting
    are withdrawn (their links stop working: a person who left, or whose
    account was misused, brings nobody in), and their name stays on
    everything they did. Returns what ended, or None when the account was
    already deactivated (nothing written). Refused for the manager's own
    account ("own_account") and for the last active manager
    ("last_manager"). Audited as "deactivated" with the sessions ended, and
    each invitation withdrawn as "cancelled", marked "withdrawn"."""
    if member.pk == actor.pk:
        raise StaffRefusedError(
            _("You cannot deactivate your own account: another manager can."),
            code="own_account",
            kind=RefusalKind.FORBIDDEN,
        )
    with transaction.atomic():
        managers = _managers_locked()
        member = _member_locked(member)
        _last_manager_check(member, managers)
        _manager_check(actor, managers)
        if not member.is_active:
            return None
        member.is_active = False
        member.save(update_fields=["is_active"])
        ended = staff_sessions_end(member)
        _audit_account(
            actor, AuditAction.DEACTIVATED, member, ["is_active", f"sessions_ended={ended}"]
        )
        withdrawn = _invitations_withdraw(actor, member)
    return Deactivated(sessions_ended=ended, invitations_withdrawn=withdrawn)


def _invitations_withdraw(actor: User, inviter: User) -> list[str]:
    """Cancel the invitations `inviter` sent that are still waiting, rows
    locked (one being accepted at this moment is either done first, and
    stays accepted, or finds itself cancelled); their addresses."""
    waiting = list(
        StaffInvitation.objects.select_for_update()
        .filter(invited_by=inviter, accepted_at__isnull=True, cancelled_at__isnull=True)
        .order_by("pk")
    )
    now = timezone.now()
    for invitation in waiting:
        invitation.cancelled_at = now
        invitation.save(update_fields=["cancelled_at"])
        audit_log(
            actor=actor,
            action=AuditAction.INVITATION_CANCELLED,
            object_type="auth.invitation",
            object_id=invitation.email[:64],
            changed_fields=[
                f"invitation={invitation.uuid}",
                "withdrawn",
                f"inviter={inviter.username}",
            ],
        )
    return [invitation.email for invitation in waiting]


def staff_reactivate(*, actor: User, member: User) -> bool:
    """Let a deactivated account sign in again, with the roles it held;
    False when it is active already (nothing written)."""
    with transaction.atomic():
        managers = _managers_locked()
        _manager_check(actor, managers)
        member = _member_locked(member)
        if member.is_active:
            return False
        member.is_active = True
        member.save(update_fields=["is_active"])
        _audit_account(actor, AuditAction.REACTIVATED, member, ["is_active"])
    return True


# --- Sign-in locks and authenticators -------------------------------------------------------


def staff_unlock(*, actor: User, member: User) -> int:
    """Lift every sign-in lock of `member`'s account now (from every
    address), as `clinic.services.sign_in_lock_lift` does, which audits it;
    the attempt rows forgotten (0: there was no lock)."""
    _manager_check(actor)
    return sign_in_lock_lift(actor=actor, username=member.username)


def staff_authenticator_reset(*, actor: User, member: User) -> int:
    """Remove `member`'s authenticator and backup codes (a lost phone) and
    end their sessions: they set up a new authenticator at their next
    sign-in when the clinic requires two-factor (REQUIRE_STAFF_2FA), else
    from their account page when they choose. Returns the devices removed
    (0: none was set up; nothing written)."""
    with transaction.atomic():
        managers = _managers_locked()
        _manager_check(actor, managers)
        member = _member_locked(member)
        authenticators = (
            TOTPDevice.objects.filter(user=member).delete()[1].get(TOTPDevice._meta.label, 0)
        )
        backups = (
            StaticDevice.objects.filter(user=member).delete()[1].get(StaticDevice._meta.label, 0)
        )
        if not authenticators + backups:
            return 0
        ended = staff_sessions_end(member)
        _audit_account(
            actor,
            AuditAction.TWO_FACTOR_RESET,
            member,
            ["authenticator", "backup_codes", f"sessions_ended={ended}"],
        )
    return authenticators + backups


def authenticator_enrol(*, user: User, key: str, last_t: int) -> tuple[TOTPDevice, list[str]]:
    """Save `user`'s authenticator app once a code has confirmed it: `key`
    is its secret (hex), `last_t` the time step (30-second periods since
    1970, UTC) of the code that confirmed it, which never works again. It
    takes the place of any authenticator they had: a new phone is set up
    while the old one still works, and the old one stops only now (the
    person signed in with it, or with a backup code, in this sign-in: the
    two-factor setup page checks that). New backup codes come with it, in
    place of any they had (`backup_codes_issue`). Returns the device and
    the codes, shown once. Audited as "set up two-factor" and, when an
    authenticator was replaced, "reset the authenticator of" their own
    account; raises nothing of its own."""
    with transaction.atomic():
        member = _member_locked(user)
        replaced = TOTPDevice.objects.filter(user=member).delete()[1].get(TOTPDevice._meta.label, 0)
        if replaced:
            _audit_account(member, AuditAction.TWO_FACTOR_RESET, member, ["authenticator", "own"])
        device = TOTPDevice.objects.create(
            user=member, name="authenticator", key=key, confirmed=True, last_t=last_t
        )
        audit_log(actor=member, action=AuditAction.TWO_FACTOR_ENROLLED, obj=member)
        # Backup codes come with the authenticator: a lost phone needs no manager.
        codes = backup_codes_issue(user=member)
    return device, codes


# --- Backup codes ---------------------------------------------------------------------------


def backup_code_normalise(text: str) -> str:
    """A backup code as stored: lower case, without the spaces and dashes a
    person may type or copy (the code shown as "abcd efgh")."""
    return re.sub(r"[\s-]", "", text).lower()


def backup_codes_issue(*, user: User, actor: User | None = None) -> list[str]:
    """Give `user` BACKUP_CODE_COUNT new backup codes in place of any they had
    (django-otp's static device: each code works once at the two-factor
    step). Returns them: they are shown once and cannot be read again.
    Audited as "made new backup codes for" by `actor` (default: `user`)."""
    with transaction.atomic():
        device = StaticDevice.objects.select_for_update().filter(user=user).order_by("pk").first()
        if device is None:
            device = StaticDevice.objects.create(user=user, name=BACKUP_DEVICE_NAME, confirmed=True)
        StaticDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
        device.token_set.all().delete()
        codes: list[str] = []
        while len(codes) < BACKUP_CODE_COUNT:
            code = StaticToken.random_token()
            if code not in codes:
                codes.append(code)
        StaticToken.objects.bulk_create(StaticToken(device=device, token=c) for c in codes)
        device.confirmed = True
        device.throttle_reset(commit=False)
        device.save()
        _audit_account(actor or user, AuditAction.BACKUP_CODES_MADE, user, ["backup_codes"])
    return codes


class SecondFactorThrottledError(RefusedError):
    """Too many wrong codes in a row: verifying waits a while."""

    code = "throttled"
    kind = RefusalKind.CONFLICT
    default_message = gettext_lazy("Too many wrong codes. Wait a minute, then try again.")


def backup_code_use(*, user: User, code: str) -> StaticDevice | None:
    """Use one of `user`'s backup codes at the two-factor step: the device
    it belongs to once the code is spent (it never works again, even sent
    twice at the same instant: the device's row is locked), or None for a
    code that is not one of theirs. Wrong codes slow the next tries down
    (django-otp's throttling); raises SecondFactorThrottledError meanwhile."""
    code = backup_code_normalise(code)
    with transaction.atomic():
        device = (
            StaticDevice.objects.select_for_update()
            .filter(user=user, confirmed=True)
            .order_by("pk")
            .first()
        )
        if device is None:
            return None
        allowed, _info = device.verify_is_allowed()
        if not allowed:
            raise SecondFactorThrottledError
        spent, _kinds = device.token_set.filter(token=code).delete()
        if not spent:
            device.throttle_increment()
            return None
        device.throttle_reset(commit=False)
        device.set_last_used_timestamp(commit=False)
        device.save()
    return device


# --- Invitations ----------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedInvitation:
    """An invitation and the link its email carries (shown to nobody else)."""

    invitation: StaffInvitation
    url: str


def _invitation_url(invitation: StaffInvitation) -> str:
    token = signing.dumps([str(invitation.uuid), invitation.link_number], salt=INVITATION_SALT)
    return settings.SITE_URL.rstrip("/") + reverse("staff_join", kwargs={"token": token})


def _email_taken(email: str, *, invitation: StaffInvitation | None = None) -> None:
    account = User.objects.filter(email__iexact=email).order_by("pk").first()
    if account is None:
        return
    if not account.is_active and not hasattr(account, "portal_account"):
        # Someone who left and comes back: their account is still there.
        refusal = StaffRefusedError(
            _(
                "%(email)s is the email of %(name)s's account (username %(username)s), which "
                "is deactivated. To bring them back, reactivate that account on their page "
                "(Staff, then their name): they sign in with their old username and password, "
                "and you can change their roles there."
            )
            % {
                "email": email,
                "name": account.get_full_name() or account.username,
                "username": account.username,
            },
            field=None if invitation else "email",
            code="email_deactivated",
        )
        refusal.account = account
        raise refusal
    if account.is_clinic_staff or not hasattr(account, "portal_account"):
        message = _(
            "%(email)s is already the email of %(name)s's account (username %(username)s). "
            "Each person has one account: give that account the roles it needs instead."
        ) % {
            "email": email,
            "name": account.get_full_name() or account.username,
            "username": account.username,
        }
    else:
        message = _(
            "%(email)s is already used by a patient's portal account: a member of staff "
            "needs an address of their own."
        ) % {"email": email}
    raise StaffRefusedError(message, field=None if invitation else "email", code="email_used")


def _roles_chosen(roles: list[Role] | list[str]) -> list[str]:
    chosen = [role.value for role in Role if role.value in {str(r) for r in roles}]
    if not chosen:
        raise StaffRefusedError(
            _("Choose at least one role."), field="roles", code="no_role", kind=RefusalKind.INVALID
        )
    return chosen


def staff_invite(
    *,
    invited_by: User | None,
    email: str,
    first_name: str,
    last_name: str = "",
    roles: list[Role] | list[str],
    submission_token: uuid.UUID | None = None,
) -> IssuedInvitation:
    """Invite a person to join the staff with `roles`: an invitation whose
    link works once, for INVITATION_VALID (send the email with
    `staff_invitation_email`). `invited_by` is the manager (None: the
    server's command line). Refused (StaffRefusedError, on the field
    concerned) for an address that already has an account ("email_used";
    "email_deactivated", with the `account` to reactivate, when it is
    deactivated) or a waiting invitation ("invitation_waiting"), and without
    a role ("no_role"). `submission_token` is the form's one-time token: raises
    `AlreadySubmittedError` (with the invitation) when this very form was
    already sent. Audited as "sent" with the roles."""
    with transaction.atomic():
        submission_check(StaffInvitation, submission_token, by=invited_by)
        _manager_check(invited_by)
        email = BaseUserManager.normalize_email(email.strip())
        chosen = _roles_chosen(roles)
        _email_taken(email)
        waiting = StaffInvitation.objects.filter(
            email__iexact=email, accepted_at__isnull=True, cancelled_at__isnull=True
        ).first()
        if waiting is not None:
            raise _already_waiting(waiting)
        now = timezone.now()
        invitation = StaffInvitation(
            email=email,
            first_name=first_name.strip(),
            last_name=last_name.strip(),
            roles=chosen,
            invited_by=invited_by,
            created_at=now,
            sent_at=now,
            expires_at=now + INVITATION_VALID,
            submission_token=submission_token,
        )
        try:
            invitation.full_clean(validate_constraints=False)
        except ValidationError as error:
            field, messages = next(iter(error.message_dict.items()))
            raise StaffRefusedError(
                " ".join(messages), field=field, code="invalid", kind=RefusalKind.INVALID
            ) from error
        try:
            with transaction.atomic():
                invitation.save()
        except IntegrityError:
            # Another manager invited the same address at this very moment.
            raise _already_waiting(None) from None
        audit_log(
            actor=invited_by,
            actor_label="" if invited_by else "system",
            action=AuditAction.INVITATION_SENT,
            object_type="auth.invitation",
            object_id=email[:64],
            changed_fields=[*(f"role={r}" for r in chosen), f"invitation={invitation.uuid}"],
        )
    return IssuedInvitation(invitation, _invitation_url(invitation))


def _already_waiting(waiting: StaffInvitation | None) -> StaffRefusedError:
    if waiting is None:
        message = _("An invitation to this address was sent a moment ago.")
    else:
        message = _(
            "An invitation to %(email)s is already waiting (sent %(when)s). Send it again "
            "from the staff page, or cancel it there first."
        ) % {
            "email": waiting.email,
            "when": dates.day_time(waiting.sent_at),
        }
    return StaffRefusedError(message, field="email", code="invitation_waiting")


def _invitation_locked(invitation: StaffInvitation) -> StaffInvitation:
    # The inviter is read after the lock, in a statement of its own: a row
    # joined here would be the one from before a deactivation it waited for.
    return StaffInvitation.objects.select_for_update().get(pk=invitation.pk)


def staff_invitation_resend(*, actor: User, invitation: StaffInvitation) -> IssuedInvitation:
    """A new link for a waiting invitation, working INVITATION_VALID from now;
    the links sent before stop working. Refused when it was accepted or
    cancelled meanwhile ("not_waiting") or the address now has an account
    ("email_used"). Audited as "sent again"."""
    with transaction.atomic():
        _manager_check(actor)
        invitation = _invitation_locked(invitation)
        if not invitation.waiting:
            raise StaffRefusedError(
                _("This invitation was accepted or cancelled meanwhile: there is nothing to send."),
                code="not_waiting",
            )
        _email_taken(invitation.email, invitation=invitation)
        now = timezone.now()
        invitation.link_number += 1
        invitation.sent_at = now
        invitation.expires_at = now + INVITATION_VALID
        invitation.save(update_fields=["link_number", "sent_at", "expires_at"])
        audit_log(
            actor=actor,
            action=AuditAction.INVITATION_RESENT,
            object_type="auth.invitation",
            object_id=invitation.email[:64],
            changed_fields=[f"invitation={invitation.uuid}", f"link={invitation.link_number}"],
        )
    return IssuedInvitation(invitation, _invitation_url(invitation))


def staff_invitation_cancel(*, actor: User, invitation: StaffInvitation) -> bool:
    """Cancel a waiting invitation: its links stop working. False when it was
    cancelled already; refused when the person has joined ("accepted").
    Audited as "cancelled"."""
    with transaction.atomic():
        _manager_check(actor)
        invitation = _invitation_locked(invitation)
        if invitation.accepted_at is not None:
            raise StaffRefusedError(
                _("%(email)s has already joined: deactivate the account instead.")
                % {"email": invitation.email},
                code="accepted",
            )
        if invitation.cancelled_at is not None:
            return False
        invitation.cancelled_at = timezone.now()
        invitation.save(update_fields=["cancelled_at"])
        audit_log(
            actor=actor,
            action=AuditAction.INVITATION_CANCELLED,
            object_type="auth.invitation",
            object_id=invitation.email[:64],
            changed_fields=[f"invitation={invitation.uuid}"],
        )
    return True


def staff_invitation_email(issued: IssuedInvitation) -> bool:
    """Email the invitation's link to the person now. False (logged, nothing
    raised) when the mail server could not take it: the invitation waits,
    and can be sent again from the staff page."""
    invitation = issued.invitation
    inviter = invitation.invited_by
    context = {
        **clinic_settings.printed(),
        "invitation": invitation,
        "inviter": inviter.get_full_name() if inviter else "",
        "roles": ", ".join(invitation.role_labels),
        "url": issued.url,
        "days": INVITATION_VALID.days,
        "two_factor_required": settings.REQUIRE_STAFF_2FA,
    }
    subject = " ".join(render_to_string("emails/staff_invitation_subject.txt", context).split())
    message = EmailMessage(
        subject=subject,
        body=render_to_string("emails/staff_invitation_message.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[invitation.email],
    )
    try:
        message.send()
    except (OSError, smtplib.SMTPException) as error:
        logger.warning("Staff invitation %s not sent (%s)", invitation.uuid, type(error).__name__)
        return False
    return True


GONE_MESSAGES = {
    "accepted": gettext_lazy(
        "This invitation was already used to join. Sign in with the username and password "
        "chosen then."
    ),
    "cancelled": gettext_lazy(
        "This invitation was cancelled. Ask your clinic manager if you should still join."
    ),
    "withdrawn": gettext_lazy(
        "This invitation was withdrawn: the account of the manager who sent it has been "
        "deactivated. Ask your clinic manager to send you a new invitation if you should "
        "still join."
    ),
    "replaced": gettext_lazy(
        "A newer invitation was sent to you since this one: use the link in the latest email."
    ),
    "expired": gettext_lazy(
        "This invitation has expired. Ask your clinic manager to send it again."
    ),
}
NOT_A_LINK = gettext_lazy(
    "This is not a complete invitation link. Copy the whole link from the email, or ask your "
    "clinic manager to send the invitation again."
)


def _token_read(token: str) -> tuple[StaffInvitation, int]:
    try:
        text, number = signing.loads(token, salt=INVITATION_SALT, max_age=INVITATION_VALID)
        invitation_id = uuid.UUID(str(text))
        number = int(number)
    except signing.SignatureExpired:
        raise StaffRefusedError(
            GONE_MESSAGES["expired"], code="expired", kind=RefusalKind.GONE
        ) from None
    except (signing.BadSignature, ValueError, TypeError):
        raise StaffRefusedError(NOT_A_LINK, code="not_a_link", kind=RefusalKind.INVALID) from None
    invitation = (
        StaffInvitation.objects.filter(uuid=invitation_id).select_related("invited_by").first()
    )
    if invitation is None:
        raise StaffRefusedError(NOT_A_LINK, code="not_a_link", kind=RefusalKind.INVALID)
    return invitation, number


def _usable_check(invitation: StaffInvitation, number: int) -> None:
    inviter = invitation.invited_by
    if invitation.accepted_at is not None:
        reason = "accepted"
    elif inviter is not None and not inviter.is_active:
        # Deactivating withdraws the invitations sent (`staff_deactivate`);
        # this also covers those sent by someone deactivated before it did.
        reason = "withdrawn"
    elif invitation.cancelled_at is not None:
        reason = "cancelled"
    elif number != invitation.link_number:
        reason = "replaced"
    elif invitation.expired_at(timezone.now()):
        reason = "expired"
    else:
        return
    raise StaffRefusedError(GONE_MESSAGES[reason], code=reason, kind=RefusalKind.GONE)


def staff_invitation_open(token: str) -> StaffInvitation:
    """The invitation a link's `token` names, while it can be used to join.
    Refused (StaffRefusedError) for a token the clinic did not sign or that
    was cut short ("not_a_link", invalid), and for one already used
    ("accepted"), cancelled, withdrawn (the manager who sent it was
    deactivated), replaced by a newer link or expired (gone)."""
    invitation, number = _token_read(token)
    _usable_check(invitation, number)
    return invitation


def staff_invitation_accept(*, token: str, username: str, password: str) -> User:
    """Join with an invitation's link: make the account (`username`,
    `password`, the invitation's name, address and roles) and mark the
    invitation used, under its row's lock, so a link works once even sent
    twice at the same instant. Refused as `staff_invitation_open`, and for a
    username taken (any letter case), reading like one in use
    ("username_look_alike", clinic/usernames.py) or holding other than
    ASCII letters, digits and . _ @ + - ("username_characters"), a password the
    clinic's rules refuse, or an address that got an account meanwhile.
    Audited, by the new account, as "accepted"."""
    found, number = _token_read(token)
    with transaction.atomic():
        invitation = _invitation_locked(found)
        _usable_check(invitation, number)
        _email_taken(invitation.email, invitation=invitation)
        username = username.strip()
        if not username_allowed(username):
            raise StaffRefusedError(
                _(
                    "A username may hold only the letters a to z (small or capital), the "
                    "digits 0 to 9 and . _ @ + -, without spaces or accents."
                ),
                field="username",
                code="username_characters",
                kind=RefusalKind.INVALID,
            )
        if User.objects.filter(username__iexact=username).exists():
            raise StaffRefusedError(
                _("That username is taken: choose another."),
                field="username",
                code="username_taken",
                kind=RefusalKind.INVALID,
            )
        # Every account's name, patients' portal accounts too: one a
        # colleague could mistake for another's is refused. Found by its
        # skeleton, which the database keeps unique: a look-alike taken at
        # this same instant is refused at the insert below.
        if User.objects.filter(username_skeleton=username_skeleton(username)).exists():
            raise _look_alike_refusal()
        user = User(
            username=username,
            first_name=invitation.first_name,
            last_name=invitation.last_name,
            email=invitation.email,
        )
        try:
            password_validation.validate_password(password, user)
        except ValidationError as error:
            raise StaffRefusedError(
                " ".join(error.messages),
                field="password1",
                code="password",
                kind=RefusalKind.INVALID,
            ) from error
        user.set_password(password)
        try:
            user.full_clean()
            with transaction.atomic():
                user.save()
        except ValidationError as error:
            raise StaffRefusedError(
                " ".join(error.messages),
                field="username",
                code="username",
                kind=RefusalKind.INVALID,
            ) from error
        except IntegrityError as error:
            if _constraint_of(error) == USERNAME_SKELETON_CONSTRAINT:
                raise _look_alike_refusal() from None
            raise StaffRefusedError(
                _("That username is taken: choose another."),
                field="username",
                code="username_taken",
                kind=RefusalKind.INVALID,
            ) from None
        user.groups.set(Group.objects.filter(name__in=invitation.roles))
        invitation.accepted_at = timezone.now()
        invitation.user = user
        invitation.save(update_fields=["accepted_at", "user"])
        audit_log(
            actor=user,
            action=AuditAction.INVITATION_ACCEPTED,
            object_type="auth.invitation",
            object_id=invitation.email[:64],
            changed_fields=[
                f"account={user.username}",
                *(f"role={r}" for r in invitation.roles),
                f"invitation={invitation.uuid}",
            ],
        )
    return user


def _look_alike_refusal() -> StaffRefusedError:
    return StaffRefusedError(
        _(
            "That username reads like another account's (letters that look alike, "
            "such as 0 and O, I and l, rn and m): choose another, so that nobody "
            "mistakes one for the other."
        ),
        field="username",
        code="username_look_alike",
        kind=RefusalKind.INVALID,
    )


def _constraint_of(error: IntegrityError) -> str:
    """The name of the constraint `error` broke, as PostgreSQL reports it ("" if none)."""
    diag = getattr(error.__cause__, "diag", None)
    return str(getattr(diag, "constraint_name", "") or "")


def staff_username_suggest(invitation: StaffInvitation) -> str:
    """A username to offer a person joining: their address's part before
    the @, in lower case, with only the characters a username may hold
    (clinic/usernames.py)."""
    local = invitation.email.split("@", 1)[0].lower()
    return re.sub(r"[^\w.@+-]", "", local, flags=re.ASCII)[:150]

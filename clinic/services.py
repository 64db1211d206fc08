"""State changes of the clinic app (staff accounts and roles)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from axes.models import AccessAttempt
from axes.utils import reset as axes_reset
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models import F, Value

from clinic.audit import audit_log
from clinic.models import AuditAction, User
from clinic.roles import ROLE_PERMISSIONS, Role
from clinic.signin import InNetwork


def roles_sync_permissions(*, using: str = "default") -> None:
    """Make each role's group exist and hold exactly the permissions in ROLE_PERMISSIONS."""
    for role, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.using(using).get_or_create(name=role.value)
        wanted = []
        for perm in sorted(perms):
            app_label, codename = perm.split(".", 1)
            found = (
                Permission.objects.using(using)
                .filter(content_type__app_label=app_label, codename=codename)
                .first()
            )
            if found is not None:
                wanted.append(found)
        group.permissions.set(wanted)


@transaction.atomic
def staff_user_create(
    *,
    username: str,
    password: str,
    roles: Iterable[Role],
    first_name: str = "",
    last_name: str = "",
    email: str = "",
    created_by: User | None = None,
) -> User:
    """Create a staff account holding the given roles."""
    user = User(username=username, first_name=first_name, last_name=last_name, email=email)
    user.set_password(password)
    user.full_clean()
    user.save()
    user.groups.set(Group.objects.filter(name__in=[Role(r).value for r in roles]))
    audit_log(actor=created_by, action=AuditAction.CREATE, obj=user, actor_label="system")
    return user


def _printable(text: str) -> str:
    # As typed at the sign-in page: no control characters into the trail.
    return "".join(ch for ch in text if ch.isprintable())


@transaction.atomic
def sign_in_lock_lift(*, actor: User, username: str) -> int:
    """Lift every sign-in lock of the account `username` (as typed at sign-in,
    any letter case), from every address, before the cool-off ends: axes'
    reset, by username. `actor` is the manager who lifted it, or the account's
    own user after a completed password reset. Returns the attempt rows
    forgotten; the trail records the lifting when there were any."""
    if not username:
        return 0  # axes' reset without a name would forget every account's failures
    names = set(
        AccessAttempt.objects.filter(username__iexact=username).values_list("username", flat=True)
    )
    lifted = sum(axes_reset(username=name) for name in names if name)
    if lifted:
        audit_log(
            actor=actor,
            action=AuditAction.SIGN_IN_UNLOCKED,
            object_type="auth.account",
            object_id=_printable(username)[:64],
        )
    return lifted


@transaction.atomic
def sign_in_pause_lift(*, actor: User, network: str) -> int:
    """Lift the pause on signing in from a client address or network (an
    IPv6 /64, say) before the cool-off ends: axes' reset of every address in
    it, which also lifts the accounts locked from there. Returns the attempt
    rows forgotten; the trail records the lifting when there were any.

    Raises ValueError when `network` is neither an address nor a network."""
    parsed = ipaddress.ip_network(network.strip(), strict=False)
    addresses = set(
        AccessAttempt.objects.filter(
            InNetwork(F("ip_address"), Value(parsed.with_prefixlen))
        ).values_list("ip_address", flat=True)
    )
    lifted = sum(axes_reset(ip=address) for address in addresses if address)
    if lifted:
        label = (
            str(parsed.network_address) if parsed.prefixlen == parsed.max_prefixlen else str(parsed)
        )
        audit_log(
            actor=actor,
            action=AuditAction.SIGN_IN_UNLOCKED,
            object_type="auth.address",
            object_id=label,
        )
    return lifted

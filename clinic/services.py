"""State changes of the clinic app (staff accounts and roles)."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import Group, Permission
from django.db import transaction

from clinic.audit import audit_log
from clinic.models import AuditAction, User
from clinic.roles import ROLE_PERMISSIONS, Role


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

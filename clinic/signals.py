"""Signal receivers of the clinic app: audit of sign-ins, role permissions."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import post_migrate
from django.dispatch import receiver

from clinic.audit import audit_log
from clinic.middleware import has_two_factor_device
from clinic.models import AuditAction
from clinic.services import roles_sync_permissions


def second_factor_follows(user: Any) -> bool:
    """Whether a password sign-in is only the first step for `user`: staff
    confirm a code next when they have set up two-factor authentication, and
    all staff do under REQUIRE_STAFF_2FA; patients of the portal do not.
    Their "login" is written once the code is confirmed (clinic.views)."""
    if getattr(user, "is_portal_patient", False):
        return False
    return bool(settings.REQUIRE_STAFF_2FA) or has_two_factor_device(user)


@receiver(user_logged_in)
def _audit_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    # A password alone is half a sign-in for staff: no "login" in the trail yet.
    if second_factor_follows(user):
        return
    audit_log(actor=user, action=AuditAction.LOGIN, obj=user)


@receiver(user_logged_in)
def _step_up_at_sign_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    # The password was just typed: it counts as confirmed (clinic/stepup.py).
    if request is not None and hasattr(request, "session"):
        from clinic.stepup import step_up_record

        step_up_record(request)


@receiver(user_logged_out)
def _audit_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None:
        audit_log(actor=user, action=AuditAction.LOGOUT, obj=user)


@receiver(user_login_failed)
def _audit_login_failed(sender: Any, credentials: dict[str, Any], **kwargs: Any) -> None:
    # The username as typed, stripped of control characters (no forged log lines).
    typed = str(credentials.get("username", ""))
    label = "".join(ch for ch in typed if ch.isprintable())[:150]
    audit_log(actor=None, action=AuditAction.LOGIN_FAILED, actor_label=label, object_type="auth")


@receiver(post_migrate)
def _sync_roles(sender: Any, using: str = "default", **kwargs: Any) -> None:
    # Runs after every app's migrate, once all permissions exist.
    roles_sync_permissions(using=using)

"""The sign-in lockout: by account and address together, with a ceiling per address.

django-axes locks the pair (account, client address) after LOGIN_FAILURE_LIMIT
wrong passwords (AXES_LOCKOUT_PARAMETERS): a stranger guessing one account
locks only themselves out of it, never the colleagues who share the clinic's
address. This handler adds a much higher ceiling per address
(LOGIN_ADDRESS_FAILURE_LIMIT failures within the cool-off, any account), so
one address trying many accounts is stopped too. Axes has a single failure
limit, hence a handler (the library's documented extension point,
AXES_HANDLER) for the second one.
"""

from __future__ import annotations

from typing import Any

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest


def address_failures(request: HttpRequest) -> int:
    """Wrong passwords from this request's client address within the cool-off,
    whatever the account."""
    ip = getattr(request, "axes_ip_address", None)
    if not ip:
        return 0
    attempts = AccessAttempt.objects.filter(ip_address=ip)
    if settings.AXES_COOLOFF_TIME is not None:
        attempts = attempts.filter(attempt_time__gte=get_cool_off_threshold(request))
    return attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0


def address_over_ceiling(request: HttpRequest) -> bool:
    """Whether this client address has reached LOGIN_ADDRESS_FAILURE_LIMIT."""
    return address_failures(request) >= settings.LOGIN_ADDRESS_FAILURE_LIMIT


def _locks_at_failure() -> bool:
    # Set by axes when it loads (axes/conf.py); True unless switched off.
    return bool(getattr(settings, "AXES_LOCK_OUT_AT_FAILURE", True))


class SignInLockHandler(AxesDatabaseHandler):
    """Axes' database handler with the per-address ceiling added."""

    def is_locked(self, request: HttpRequest, credentials: dict[str, Any] | None = None) -> bool:
        if super().is_locked(request, credentials):
            return True
        if _locks_at_failure() and address_over_ceiling(request):
            request.clinic_locked_by_address = True  # type: ignore[attr-defined]
            return True
        return False

    def user_login_failed(
        self,
        sender: Any,
        credentials: dict[str, Any],
        request: HttpRequest | None = None,
        **kwargs: Any,
    ) -> None:
        super().user_login_failed(sender, credentials, request, **kwargs)
        if request is None or getattr(request, "axes_locked_out", False):
            return
        if _locks_at_failure() and address_over_ceiling(request):
            # The failure just recorded reached the ceiling: answer with the lockout page.
            request.clinic_locked_by_address = True  # type: ignore[attr-defined]
            request.axes_locked_out = True  # type: ignore[attr-defined]
            request.axes_credentials = credentials  # type: ignore[attr-defined]

"""Request-wide policies: request context, session timeouts, staff two-factor,
route access, and no caching of anything but static files."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _

from clinic.access import Access, access_of
from clinic.audit import audit_log
from clinic.context import RequestContext, reset_request_context, set_request_context
from clinic.models import AuditAction
from clinic.proxies import client_ip

logger = logging.getLogger(__name__)

Handler = Callable[[HttpRequest], HttpResponse]

SESSION_LAST_SEEN = "_clinic_last_seen"
SESSION_STARTED = "_clinic_started"
# Refresh the idle timer at most this often, so a page view rarely writes the session.
_TOUCH_EVERY = 30


class RequestContextMiddleware:
    """Give each request an id (echoed in X-Request-ID) and remember its IP for the audit."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = secrets.token_hex(8)
        request.request_id = request_id  # type: ignore[attr-defined]
        token = set_request_context(RequestContext(ip=client_ip(request), request_id=request_id))
        try:
            response = self.get_response(request)
        finally:
            reset_request_context(token)
        response["X-Request-ID"] = request_id
        return response


class SessionTimeoutMiddleware:
    """Sign out after a period without activity, and after an absolute lifetime."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            now = time.time()
            started = request.session.get(SESSION_STARTED)
            last_seen = request.session.get(SESSION_LAST_SEEN)
            idle_limit = settings.SESSION_IDLE_TIMEOUT.total_seconds()
            if started is None or last_seen is None:
                request.session[SESSION_STARTED] = now
                request.session[SESSION_LAST_SEEN] = now
            elif now - last_seen > idle_limit or now - started > settings.SESSION_COOKIE_AGE:
                logout(request)
                messages.info(request, _("You were signed out after a period of inactivity."))
                login = reverse("login")
                return HttpResponseRedirect(f"{login}?{urlencode({'next': request.path})}")
            elif now - last_seen > _TOUCH_EVERY:
                request.session[SESSION_LAST_SEEN] = now
        return self.get_response(request)


class _ViewMiddleware:
    """A middleware that acts only in process_view, once the view is known."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)


class StaffTwoFactorMiddleware(_ViewMiddleware):
    """A signed-in staff member who has set up two-factor authentication
    confirms a code (or a backup code) before reaching anything but the
    two-factor step, sign-out and public routes (not the setup page: a
    password alone sets up nothing over a second factor held), whatever the
    clinic-wide setting. REQUIRE_STAFF_2FA decides only whether setting it up is
    compulsory: with it on, one who has not is sent to set it up first."""

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., Any], args: Any, kwargs: Any
    ) -> HttpResponse | None:
        if not request.user.is_authenticated:
            return None
        if request.user.is_verified():  # type: ignore[attr-defined]
            return None
        # Patients sign in to the portal through a one-time link sent to their
        # email: that is their second factor; TOTP is for staff.
        if getattr(request.user, "is_portal_patient", False):
            return None
        access = access_of(view_func)
        if access is not None and access.kind == "public":
            return None
        match = request.resolver_match
        if match is not None and match.url_name in {"two_factor", "logout"}:
            return None
        if has_two_factor_device(request.user):
            # Backup codes count: a password alone never reaches the setup
            # page of someone who holds a second factor.
            target = "two_factor"
        elif match is not None and match.url_name == "two_factor_setup":
            return None
        elif settings.REQUIRE_STAFF_2FA:
            target = "two_factor_setup"
        else:
            return None
        return HttpResponseRedirect(f"{reverse(target)}?{urlencode({'next': request.path})}")


def has_two_factor_device(user: Any) -> bool:
    """Whether `user` has set up a second factor (an authenticator, backup codes)."""
    from django_otp import devices_for_user

    return any(True for _ in devices_for_user(user, confirmed=True))


class AccessPolicyMiddleware(_ViewMiddleware):
    """Enforce each view's `Access` declaration; refuse undeclared views."""

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., Any], args: Any, kwargs: Any
    ) -> HttpResponse | None:
        access = access_of(view_func)
        match = request.resolver_match
        if access is None and match is not None and "admin" in match.namespaces:
            # Django's admin: superusers only (it also checks its own permissions).
            access = Access("admin")
        if access is None:
            logger.error("Route without an access declaration refused: %s", view_func)
            raise PermissionDenied
        if not access.allows(request.user):
            if request.user.is_authenticated:
                audit_log(
                    actor=request.user,
                    action=AuditAction.DENIED,
                    object_type="route",
                    object_id=match.view_name if match else request.path[:64],
                )
            raise PermissionDenied
        return None


class NoStoreMiddleware:
    """Nothing but static files may be kept by a browser or proxy cache:
    pages can show health data."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not request.path.startswith(settings.STATIC_URL):
            add_never_cache_headers(response)
            response["Cache-Control"] = "no-store, no-cache, must-revalidate, private, max-age=0"
        return response

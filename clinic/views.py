"""Views of the clinic app: dashboard, two-factor, audit log, health, errors."""

from __future__ import annotations

import base64
import io
import ipaddress
import time
from typing import Any
from urllib.parse import urlencode

import qrcode
import qrcode.image.svg
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods
from django_otp import devices_for_user
from django_otp import login as otp_login
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp.util import random_hex

from clinic import clinic_settings
from clinic.access import authenticated, public, refusal_words, signed_in_user, staff
from clinic.audit import audit_log
from clinic.context import current_request_id
from clinic.errorpages import error_page_context
from clinic.forms import AuditFilterForm, TokenForm
from clinic.health import run_checks
from clinic.middleware import has_two_factor_device
from clinic.models import AuditAction, SignInMailKind, User
from clinic.proxies import client_ip
from clinic.roles import Role
from clinic.selectors import (
    AUDIT_PAGE_SIZE,
    audit_events_filtered,
    audit_page,
    patient_labels_of,
    patient_records_of,
    previous_sign_in,
    recent_failed_sign_ins,
)
from clinic.services import sign_in_lock_lift, sign_in_pause_lift
from clinic.sign_in_mail import sign_in_mail_request
from clinic.signin import sign_in_locks
from clinic.staff import (
    SecondFactorThrottledError,
    authenticator_enrol,
    backup_code_use,
    backup_codes_left,
    two_factor_enrolled,
)
from clinic.staff_forms import SecondFactorForm
from clinic.stepup import step_up_needed


def _safe_next(request: HttpRequest, default: str = "home") -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse(default)


@authenticated
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """The dashboard: one panel per role the user holds."""
    user = request.user
    assert isinstance(user, User)  # the route is for signed-in users only
    if user.is_portal_patient:
        return HttpResponseRedirect(reverse("treatments:portal_home"))
    roles = user.roles
    context: dict[str, Any] = {
        "roles": sorted(roles, key=lambda r: list(Role).index(r)),
        "is_receptionist": Role.RECEPTIONIST in roles,
        "is_practitioner": Role.PRACTITIONER in roles,
        "is_manager": Role.MANAGER in roles,
        # On: an authenticator is set up, and every sign-in asks for its code
        # (clinic.middleware.StaffTwoFactorMiddleware), whatever REQUIRE_STAFF_2FA.
        "two_factor_on": two_factor_enrolled(user),
        "backup_codes_left": backup_codes_left(user),
        # The sign-in before this one: what someone checking for misuse wants to see.
        "previous_login": previous_sign_in(user),
    }
    if Role.MANAGER in roles:
        context["checks"] = run_checks()
        context["recent_failures"] = recent_failed_sign_ins()
        context["locks"] = sign_in_locks()
    return render(request, "clinic/home.html", context)


@authenticated
@require_http_methods(["GET", "POST"])
def two_factor(request: HttpRequest) -> HttpResponse:
    """Second step of signing in: a code from the staff member's authenticator,
    or one of their backup codes (each works once)."""
    user = signed_in_user(request)
    devices = list(devices_for_user(user, confirmed=True))
    if not devices:
        return HttpResponseRedirect(reverse("two_factor_setup"))
    form = SecondFactorForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            code = form.cleaned_data["otp_token"]
            if form.kind == "backup":
                try:
                    device = backup_code_use(user=user, code=code)
                except SecondFactorThrottledError as refusal:
                    form.add_error("otp_token", refusal.message)
                else:
                    if device is not None:
                        otp_login(request, device)
                        _audit_second_factor(request, confirmed=True, marks=["backup_code"])
                        _backup_code_used_message(request, user)
                        return HttpResponseRedirect(_safe_next(request))
                    form.add_error(
                        "otp_token",
                        _("That backup code is not one of yours, or it was used already."),
                    )
            else:
                for device in devices:
                    if not isinstance(device, TOTPDevice):
                        continue
                    allowed, _info = device.verify_is_allowed()
                    if not allowed:
                        form.add_error(
                            "otp_token", _("Too many wrong codes. Wait a minute, then try again.")
                        )
                        break
                    if device.verify_token(code):
                        otp_login(request, device)
                        _audit_second_factor(request, confirmed=True)
                        return HttpResponseRedirect(_safe_next(request))
                else:
                    form.add_error(
                        "otp_token", _("That code is not valid. Codes change every 30 seconds.")
                    )
        _audit_second_factor(request, confirmed=False)
    return render(
        request,
        "registration/two_factor.html",
        {
            "form": form,
            "next": _safe_next(request),
            "has_backup_codes": any(isinstance(d, StaticDevice) for d in devices),
        },
    )


def _backup_code_used_message(request: HttpRequest, user: User) -> None:
    left = backup_codes_left(user)
    if left:
        text = ngettext(
            "You signed in with a backup code; it no longer works. %(n)s backup code is left.",
            "You signed in with a backup code; it no longer works. %(n)s backup codes are left.",
            left,
        )
        messages.info(request, text % {"n": left})
    else:
        messages.warning(
            request,
            _(
                "That was your last backup code. Make new ones on your account page before you "
                "need them."
            ),
        )


def _audit_second_factor(
    request: HttpRequest, *, confirmed: bool, marks: list[str] | None = None
) -> None:
    """The second step of a staff sign-in in the trail: "login" once the code
    is confirmed (the password alone writes none; `marks` say a backup code
    was used), "login_failed" for each code refused, with the user and the
    address it came from."""
    user = request.user
    assert isinstance(user, User)  # the two-factor pages are for signed-in users only
    if confirmed:
        audit_log(actor=user, action=AuditAction.LOGIN, obj=user, changed_fields=marks or [])
    else:
        audit_log(
            actor=user,
            action=AuditAction.LOGIN_FAILED,
            object_type="auth",
            object_id="second_factor",
        )


def _qr_data_uri(text: str) -> str:
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    buffer = io.BytesIO()
    image.save(buffer)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode()


SETUP_KEY_SESSION = "_clinic_totp_setup_key"
# Set by "Set up a new phone" on the account page: the setup page then
# replaces the authenticator instead of sending an enrolled person away.
REPLACING_SESSION = "_clinic_totp_replacing"


@authenticated
@require_http_methods(["GET", "POST"])
def two_factor_setup(request: HttpRequest) -> HttpResponse:
    """Enrol an authenticator app: scan the code, confirm with one code; the
    page that confirms it shows the person's ten backup codes, once.

    Whoever holds a second factor (an authenticator, unused backup codes)
    passes it in this sign-in before setting one up: a password alone never
    replaces the owner's phone. A new phone replaces the old one only once
    a code from the new one confirms it, so the old one works until then.
    The key waits in the session until a code confirms it; only then is a
    device saved, so looking at this page writes nothing to the database.
    """
    user = signed_in_user(request)
    if not request.user.is_verified() and has_two_factor_device(user):  # type: ignore[union-attr]
        target = reverse("two_factor") + "?" + urlencode({"next": request.get_full_path()})
        return HttpResponseRedirect(target)
    replacing = two_factor_enrolled(user)
    if replacing and not request.session.get(REPLACING_SESSION):
        # Already set up: a new phone is asked for on the account page.
        return HttpResponseRedirect(reverse("account"))
    # Replacing a second factor held asks for the password (and code)
    # confirmed again lately; signing in counts. A first one does not: the
    # sign-in moments ago is all it rests on, and with two-factor required
    # this page is the only one the person may open (StaffTwoFactorMiddleware),
    # so the confirmation page would only send them back here.
    gate = (
        step_up_needed(request, next_url=request.get_full_path(), back_url=reverse("account"))
        if has_two_factor_device(user)
        else None
    )
    if gate is not None:
        return gate
    key = request.session.get(SETUP_KEY_SESSION) or random_hex(20)
    request.session[SETUP_KEY_SESSION] = key
    device = TOTPDevice(user=user, name="authenticator", key=key, confirmed=True)
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
        totp.time = time.time()
        if totp.verify(int(form.cleaned_data["otp_token"]), tolerance=device.tolerance):
            device, codes = authenticator_enrol(user=user, key=key, last_t=totp.t())
            del request.session[SETUP_KEY_SESSION]
            request.session.pop(REPLACING_SESSION, None)
            otp_login(request, device)
            _audit_second_factor(request, confirmed=True)
            messages.success(request, _("Two-factor authentication is on for your account."))
            return render(
                request,
                "registration/backup_codes.html",
                {"codes": codes, "next": _safe_next(request), "replaced": replacing},
            )
        form.add_error("otp_token", _("That code does not match. Check the time on your phone."))
    if request.method == "POST":
        _audit_second_factor(request, confirmed=False)
    secret = base64.b32encode(device.bin_key).decode()
    return render(
        request,
        "registration/two_factor_setup.html",
        {
            "form": form,
            "qr": _qr_data_uri(device.config_url),
            "secret": " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
            "next": _safe_next(request),
            "replacing": replacing,
            # Where the clinic does not require it, the page offers it and lets them go on.
            "two_factor_required": settings.REQUIRE_STAFF_2FA,
        },
    )


@staff(Role.MANAGER)
@require_GET
def audit_log_list(request: HttpRequest) -> HttpResponse:
    """Who did what, when: the manager's view of the audit trail, a page at a
    time from a cursor (Older, Newer), with about how many events match.
    A filter, page size or cursor refused answers 400 with the reason on the
    form and no list; a page number is not a parameter (there are none)."""
    form = AuditFilterForm(request.GET or None)
    if form.is_bound and not form.is_valid():
        return render(
            request,
            "clinic/audit_list.html",
            {"form": form, "page": None, "query": ""},
            status=400,
        )
    data = form.cleaned_data if form.is_bound else {}
    filters: dict[str, Any] = {
        name: data[name] for name in ("user", "action", "since", "until") if data.get(name)
    }
    # One person's trail: the record asked for and every record merged into it.
    records = patient_records_of(data["patient"]) if data.get("patient") else []
    if records:
        filters["patient_records"] = records
    page = audit_page(
        audit_events_filtered(**filters),
        size=data.get("per_page") or AUDIT_PAGE_SIZE,
        before=data.get("before"),
        after=data.get("after"),
    )
    query = request.GET.copy()
    for cursor in ("before", "after", "page"):
        query.pop(cursor, None)
    # Who each row concerns: the page's patients named in one look-up.
    labels = patient_labels_of(event.patient_ref for event in page.events)
    return render(
        request,
        "clinic/audit_list.html",
        {
            "form": form,
            "page": page,
            "rows": [
                (event, labels.get(event.patient_ref) if event.patient_ref else None)
                for event in page.events
            ],
            "query": query.urlencode(),
            "merged_records": len(records) - 1 if records else 0,
            "older": page.older.token() if page.older else "",
            "newer": page.newer.token() if page.newer else "",
        },
    )


@public
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Machine-readable health: no data, only whether each part is up."""
    checks = run_checks()
    ok = all(c.ok for c in checks)
    body = {
        "status": "ok" if ok else "degraded",
        "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in checks},
    }
    return JsonResponse(body, status=200 if ok else 503)


class SignInLockLiftForm(forms.Form):
    """Which lock a manager lifts: an account's (its name as typed at sign-in),
    or an address's (an address or network)."""

    username = forms.CharField(required=False, max_length=150)
    network = forms.CharField(required=False, max_length=64)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        username, network = data.get("username"), data.get("network")
        if bool(username) == bool(network):
            raise forms.ValidationError(_("Choose one lock to lift: an account or a connection."))
        if network:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                self.add_error("network", _("That is not an address or a network."))
        return data


@staff(Role.MANAGER)
@require_http_methods(["GET", "POST"])
def sign_in_locks_view(request: HttpRequest) -> HttpResponse:
    """The sign-in locks holding now, and a button to lift each before its time."""
    manager = signed_in_user(request)
    status = 200
    if request.method == "POST":
        form = SignInLockLiftForm(request.POST)
        if form.is_valid():
            username, network = form.cleaned_data["username"], form.cleaned_data["network"]
            if username:
                lifted = sign_in_lock_lift(actor=manager, username=username)
                done = _("%(name)s can sign in again.") % {"name": username}
            else:
                lifted = sign_in_pause_lift(actor=manager, network=network)
                done = _("Signing in from %(address)s works again.") % {"address": network}
            if lifted:
                messages.success(request, done)
            else:
                messages.info(request, _("That lock had already ended; nothing to lift."))
            return HttpResponseRedirect(reverse("sign_in_locks"))
        for error in form.errors.values():
            messages.error(request, " ".join(str(message) for message in error))
        status = 400
    locks = sign_in_locks()
    names = [name for name, _locks in locks.by_account]
    accounts = set(User.objects.filter(username__in=names).values_list("username", flat=True))
    return render(
        request,
        "clinic/sign_in_locks.html",
        {
            "locks": locks,
            "accounts": [(name, held, name in accounts) for name, held in locks.by_account],
        },
        status=status,
    )


class SignInView(auth_views.LoginView):
    """The sign-in page. After the wrong password before the last one allowed,
    it warns that one more locks the account (from this address)."""

    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        # Set by axes when it counted this wrong password (account and address).
        failures = getattr(self.request, "axes_failures_since_start", 0) or 0
        context["one_try_left"] = (
            self.request.method == "POST" and failures == settings.AXES_FAILURE_LIMIT - 1
        )
        return context


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """Set a new password from the emailed link; that also lifts the account's
    sign-in lock (the link proves the mailbox; the code is still asked)."""

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        sign_in_lock_lift(actor=form.user, username=form.user.get_username())
        return response


class PasswordResetRequestView(auth_views.PasswordResetView):
    """Ask for a password-reset link. Every address, known or not, over the
    hourly limit or not, gets the same answer in the same time: the email is
    looked up and sent by a worker (clinic/sign_in_mail.py)."""

    def form_valid(self, form: Any) -> HttpResponse:
        sign_in_mail_request(
            kind=SignInMailKind.PASSWORD_RESET,
            email=form.cleaned_data["email"],
            ip=client_ip(self.request),
        )
        return HttpResponseRedirect(self.get_success_url())


class LogoutView(auth_views.LogoutView):
    """Sign out, and ask the browser to drop everything it kept for this site."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().post(request, *args, **kwargs)
        # Not "cookies": that would also wipe the "signed out" message; the
        # session cookie is expired by Django in this same response.
        response["Clear-Site-Data"] = '"cache", "storage"'
        messages.info(request, _("You have signed out."))
        return response


# --- Error pages ------------------------------------------------------------------


def _error(request: HttpRequest, template: str, status: int, **extra: Any) -> HttpResponse:
    # On the patients' pages (portal, emailed links) the page speaks to a
    # patient and leads to the portal's sign-in, not to the staff dashboard.
    context = {
        "request_id": current_request_id(),
        "clinic_name": clinic_settings.current_or_defaults().clinic_name,
        **error_page_context(request),
        **extra,
    }
    return render(request, template, context, status=status)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    return _error(request, "400.html", 400)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    return _error(request, "403.html", 403, **refusal_words(request))


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    return _error(request, "404.html", 404)


def server_error(request: HttpRequest) -> HttpResponse:
    # Rendered without the context processors: a broken database must not break this page.
    from django.template import loader

    template = loader.get_template("500.html")
    body = template.render(
        {
            "request_id": current_request_id(),
            "clinic_name": clinic_settings.current_or_defaults().clinic_name,
            # From the address alone: the user would need the database.
            **error_page_context(request, user_known=False),
        }
    )
    return HttpResponse(body, status=500)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    return _error(request, "403_csrf.html", 403)

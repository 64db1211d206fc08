"""Confirming who you are again before a change that would let someone at a
screen left signed in keep the account or widen it (security checklist
SEC-02): setting up an authenticator or a new phone, making new backup
codes, and a manager's changes to a colleague's roles or authenticator.

The person types their password again and, when they have set up two-factor
authentication, a code from their app (or a backup code): a session taken
over at the desk cannot swap the owner's phone with the password alone, nor
with the phone alone. A wrong password goes through `authenticate`, so
django-axes counts it towards the sign-in lock exactly as one typed at the
sign-in page (and the sign-in receivers audit it); a wrong code is audited
as a failed second factor. A confirmation is audited as "confirmed their
password again for" the account, with what was typed ("password",
"authenticator" or "backup_code").

Signing in counts as a confirmation: the password (and code) were typed
moments ago.

Written here rather than taken from django-sudo, the package that does this:
its last release (3.1.0, 2020) supports Django up to 1.11, asks the password
alone and keeps a cookie of its own beside the session.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth import authenticate
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django_otp.plugins.otp_totp.models import TOTPDevice

from clinic.audit import audit_log
from clinic.models import AuditAction, User
from clinic.refusals import RefusalKind, RefusedError
from clinic.staff import SecondFactorThrottledError, backup_code_use

# How long a confirmation lasts: long enough to finish what it was asked for
# (scan the code of a new phone, change a few roles), and shorter than the
# 15 minutes after which an idle staff session ends, so that a screen left
# signed in never carries a confirmation for long.
STEP_UP_VALID = timedelta(minutes=10)
# When the password was last confirmed in this session (seconds since 1970, UTC).
STEP_UP_SESSION = "_clinic_step_up_at"
# Set when a change sent was stopped to ask for the confirmation: once
# confirmed, the page the person lands on tells them to choose it again.
STEP_UP_STOPPED = "_clinic_step_up_stopped"

WHY = gettext_lazy(
    "Nothing was changed yet. For this change, confirm it is you; then choose it again."
)


class StepUpRefusedError(RefusedError):
    """The password or the code typed to confirm it is you refused."""

    code = "step_up"
    kind = RefusalKind.INVALID


def step_up_record(request: HttpRequest) -> None:
    """Note in the session that its user confirmed their password now."""
    request.session[STEP_UP_SESSION] = timezone.now().timestamp()


def step_up_done_message(request: HttpRequest) -> None:
    """Tell the person, on the page they go back to, that the confirmation
    went through and for how long; and, when a change they sent was stopped
    to ask for it, that the change is not made until they choose it again."""
    minutes = int(STEP_UP_VALID.total_seconds() // 60)
    if request.session.pop(STEP_UP_STOPPED, False):
        text = _(
            "Thank you, that is confirmed. The change you chose was not made: choose it "
            "again now (within %(minutes)s minutes)."
        )
    else:
        text = _("Thank you, that is confirmed for the next %(minutes)s minutes.")
    messages.success(request, text % {"minutes": minutes})


def step_up_fresh(request: HttpRequest) -> bool:
    """Whether the session's user confirmed their password (and code) within
    STEP_UP_VALID, signing in included."""
    at = request.session.get(STEP_UP_SESSION)
    if not isinstance(at, int | float):
        return False
    age = timezone.now().timestamp() - at
    return 0 <= age <= STEP_UP_VALID.total_seconds()


def step_up_needed(
    request: HttpRequest, *, next_url: str, back_url: str = ""
) -> HttpResponse | None:
    """None while the confirmation is fresh; else the way to the page that
    asks for it, which leads back to `next_url` (a path of this site, its
    query kept) once confirmed, and whose Cancel leads to `back_url` (by
    default `next_url`: give another when opening `next_url` itself asks for
    the confirmation, or Cancel would only come back to it). A POST sent
    meanwhile did nothing, and the page says so."""
    if step_up_fresh(request):
        return None
    if request.method == "POST":
        messages.info(request, str(WHY))
        request.session[STEP_UP_STOPPED] = True
    query = {"next": next_url} | ({"back": back_url} if back_url else {})
    return HttpResponseRedirect(reverse("step_up") + "?" + urlencode(query))


def _second_factor_check(user: User, code: str, kind: str) -> str:
    """What confirmed the code: "authenticator" or "backup_code" (spent).
    Raises SecondFactorThrottledError after too many wrong codes, and
    StepUpRefusedError for a code that is not right."""
    if kind == "backup":
        if backup_code_use(user=user, code=code) is not None:
            return "backup_code"
    else:
        for device in TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk"):
            allowed, _info = device.verify_is_allowed()
            if not allowed:
                raise SecondFactorThrottledError
            # Each code works once: the device keeps the step it was used in.
            if device.verify_token(code):
                return "authenticator"
    raise StepUpRefusedError(
        _("That code is not right: codes change every 30 seconds, and a backup code works once."),
        field="otp_token",
        code="second_factor",
    )


def step_up_confirm(
    *, request: HttpRequest, user: User, password: str, code: str = "", kind: str = ""
) -> list[str]:
    """Confirm that `user`, signed in on `request`, is who is typing:
    `password`, then, when given, `code` of `kind` ("totp": the 6 digits of
    the app; "backup": a backup code, then spent). The password goes
    through `authenticate` (the request is axes' to count a wrong one
    towards the sign-in lock of this account and address). Returns what was
    confirmed, recorded in the session and audited. Raises
    StepUpRefusedError for a wrong password ("password") or code
    ("second_factor"), SecondFactorThrottledError after too many wrong
    codes; each refused code is audited as a failed second factor."""
    checked = authenticate(request, username=user.get_username(), password=password)
    if checked is None or checked.pk != user.pk:
        raise StepUpRefusedError(
            _(
                "That is not your password. Each wrong password counts towards the sign-in "
                "lock, as at sign-in."
            ),
            field="password",
            code="password",
        )
    marks = ["password"]
    if code:
        try:
            marks.append(_second_factor_check(user, code, kind))
        except RefusedError:
            audit_log(
                actor=user,
                action=AuditAction.LOGIN_FAILED,
                object_type="auth",
                object_id="step_up",
            )
            raise
    step_up_record(request)
    audit_log(
        actor=user,
        action=AuditAction.REAUTHENTICATED,
        object_type="auth.account",
        object_id=user.username[:64],
        changed_fields=marks,
    )
    return marks

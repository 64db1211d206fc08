"""The manager's staff pages, joining with an invitation, and each person's
own account page (clinic/staff.py does the work)."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_http_methods

from clinic.access import authenticated, public, refused_as, signed_in_user, staff
from clinic.concurrency import AlreadySubmittedError
from clinic.forms import submits
from clinic.middleware import has_two_factor_device
from clinic.models import AuditEvent, StaffInvitation, User
from clinic.refusals import refusal_status
from clinic.roles import Role
from clinic.selectors import previous_sign_in
from clinic.staff import (
    INVITATION_VALID,
    SecondFactorThrottledError,
    StaffRefusedError,
    backup_codes_issue,
    backup_codes_left,
    invitations_waiting,
    roles_held,
    staff_authenticator_reset,
    staff_deactivate,
    staff_invitation_accept,
    staff_invitation_cancel,
    staff_invitation_email,
    staff_invitation_open,
    staff_invitation_resend,
    staff_invite,
    staff_member_get,
    staff_member_history,
    staff_member_row,
    staff_members,
    staff_reactivate,
    staff_role_give,
    staff_role_take,
    staff_unlock,
    staff_username_suggest,
    two_factor_enrolled,
)
from clinic.staff_forms import (
    AccountActionForm,
    InvitationActionForm,
    StaffActionForm,
    StaffInviteForm,
    StaffJoinForm,
    StepUpForm,
)
from clinic.stepup import (
    STEP_UP_VALID,
    StepUpRefusedError,
    step_up_confirm,
    step_up_done_message,
    step_up_fresh,
    step_up_needed,
)
from clinic.views import REPLACING_SESSION, _safe_next  # the two-factor pages' own check

# A manager confirms their password (and code) again before these
# (clinic/stepup.py): they change what another person may do or how they sign
# in, or (reactivating) open a closed account to the patients' records again.
# Inviting is asked for on its own page (staff_invite_view). Left without:
# deactivating takes access away, and unlocking only lets the owner try their
# own password (and code) again, as the lock would after its time; neither
# gives anyone access they did not have.
STEP_UP_ACTIONS = frozenset({"give_role", "take_role", "reset_authenticator", "reactivate"})

STAFF_TASK = gettext_lazy(
    "Inviting staff, giving roles and unlocking accounts is done by a manager."
)


def _form_errors(form: Any) -> str:
    return " ".join(str(message) for errors in form.errors.values() for message in errors)


def _sent_message(request: HttpRequest, email: str, sent: bool, *, again: bool = False) -> None:
    if sent:
        text = (
            _("A new invitation was emailed to %(email)s; the earlier links no longer work.")
            if again
            else _("The invitation was emailed to %(email)s.")
        )
        messages.success(request, text % {"email": email})
    else:
        messages.warning(
            request,
            _(
                "The invitation to %(email)s is saved, but the email could not be sent (the "
                "mail server did not take it). Try “Send again” in a few minutes."
            )
            % {"email": email},
        )


@staff(Role.MANAGER)
@refused_as(STAFF_TASK)
@require_http_methods(["GET", "POST"])
def staff_list(request: HttpRequest) -> HttpResponse:
    """Everyone on the staff: roles, state, two-factor, last sign-in, locks;
    and the invitations waiting, each sent again or cancelled from here."""
    manager = signed_in_user(request)
    status = 200
    if request.method == "POST":
        form = InvitationActionForm(request.POST)
        if form.is_valid():
            invitation = StaffInvitation.objects.filter(
                uuid=form.cleaned_data["invitation"]
            ).first()
            if invitation is None:
                raise Http404
            try:
                if form.cleaned_data["action"] == "resend":
                    issued = staff_invitation_resend(actor=manager, invitation=invitation)
                    _sent_message(
                        request, invitation.email, staff_invitation_email(issued), again=True
                    )
                elif staff_invitation_cancel(actor=manager, invitation=invitation):
                    messages.success(
                        request,
                        _("The invitation to %(email)s is cancelled: its link no longer works.")
                        % {"email": invitation.email},
                    )
                else:
                    messages.info(request, _("That invitation was already cancelled."))
            except StaffRefusedError as refusal:
                messages.error(request, refusal.message)
                status = refusal_status(refusal)
            else:
                return HttpResponseRedirect(reverse("staff_list"))
        else:
            messages.error(request, _form_errors(form))
            status = 400
    return render(
        request,
        "clinic/staff_list.html",
        {"rows": staff_members(), "invitations": invitations_waiting(), "now": timezone.now()},
        status=status,
    )


def _step_up_on_the_form(request: HttpRequest, user: User) -> tuple[StepUpForm | None, int]:
    """The confirmation (clinic/stepup.py) asked within a form sent after it
    ran out, so that nothing typed is lost to a detour by the confirmation
    page: (None, 200) while it is fresh or once the password (and code) sent
    with the form confirm it; else the confirmation's form to show on the
    page, with what it said, and the status. It goes through the same
    `step_up_confirm` as the confirmation page: a wrong password counts
    towards the sign-in lock, and each try is audited."""
    if step_up_fresh(request):
        return None, 200
    second_factor = has_two_factor_device(user)
    if "password" not in request.POST:
        # Not asked yet: the form comes back with the confirmation to fill in.
        return StepUpForm(second_factor=second_factor), 403
    confirmation = StepUpForm(request.POST, second_factor=second_factor)
    if not confirmation.is_valid():
        return confirmation, 400
    data = confirmation.cleaned_data
    try:
        step_up_confirm(
            request=request,
            user=user,
            password=data["password"],
            code=data.get("otp_token", ""),
            kind=confirmation.kind if second_factor else "",
        )
    except StepUpRefusedError as refusal:
        confirmation.add_error(refusal.field, refusal.message)
        return confirmation, refusal_status(refusal)
    except SecondFactorThrottledError as refusal:
        confirmation.add_error("otp_token", refusal.message)
        return confirmation, 429
    return None, 200


@staff(Role.MANAGER)
@refused_as(STAFF_TASK)
@submits(StaffInviteForm)
@require_http_methods(["GET", "POST"])
def staff_invite_view(request: HttpRequest) -> HttpResponse:
    """Invite a member of staff by email, with their roles: access to the
    patients' records, so the manager's password (and code) are confirmed
    within STEP_UP_VALID (clinic/stepup.py). Opening the form asks first;
    a form sent later than that comes back with all that was typed, and
    the confirmation asked on it (nothing is sent until it is given)."""
    manager = signed_in_user(request)
    status = 200
    deactivated: User | None = None
    form = StaffInviteForm(request.POST or None)
    confirmation: StepUpForm | None = None
    if request.method == "GET":
        gate = step_up_needed(
            request, next_url=reverse("staff_invite"), back_url=reverse("staff_list")
        )
        if gate is not None:
            return gate
    if request.method == "POST":
        if form.saved_before(StaffInvitation) is not None:
            messages.info(request, str(AlreadySubmittedError.MESSAGE))
            return HttpResponseRedirect(reverse("staff_list"))
        confirmation, status = _step_up_on_the_form(request, manager)
        if confirmation is not None:
            form.is_valid()  # its mistakes said now too, not after the password
        elif form.is_valid():
            data = form.cleaned_data
            try:
                issued = staff_invite(
                    invited_by=manager,
                    email=data["email"],
                    first_name=data["first_name"],
                    last_name=data["last_name"],
                    roles=data["roles"],
                    submission_token=data.get("submission_token"),
                )
            except AlreadySubmittedError:
                messages.info(request, str(AlreadySubmittedError.MESSAGE))
                return HttpResponseRedirect(reverse("staff_list"))
            except StaffRefusedError as refusal:
                form.add_error(
                    refusal.field if refusal.field in form.fields else None, refusal.message
                )
                status = refusal_status(refusal)
                deactivated = refusal.account if refusal.code == "email_deactivated" else None
            else:
                _sent_message(request, issued.invitation.email, staff_invitation_email(issued))
                return HttpResponseRedirect(reverse("staff_list"))
    return render(
        request,
        "clinic/staff_invite.html",
        {
            "form": form,
            "confirmation": confirmation,
            "minutes": int(STEP_UP_VALID.total_seconds() // 60),
            "days": INVITATION_VALID.days,
            "deactivated": deactivated,
            # What the newcomer does after the link depends on the clinic's setting.
            "two_factor_required": settings.REQUIRE_STAFF_2FA,
        },
        status=status,
    )


def _withdrawn_words(emails: list[str]) -> str:
    """The sentence, after a space, naming the invitations a change withdrew ("" if none)."""
    if not emails:
        return ""
    return " " + ngettext(
        "The invitation they sent to %(emails)s is withdrawn: its link no longer works. "
        "Invite that person again if they should still join.",
        "The invitations they sent to %(emails)s are withdrawn: their links no longer "
        "work. Invite those people again if they should still join.",
        len(emails),
    ) % {"emails": ", ".join(emails)}


def _member_action(manager: User, member: User, form: StaffActionForm) -> tuple[str, str]:
    """Do what the form asks; (message level, sentence)."""
    action, role_value = form.cleaned_data["action"], form.cleaned_data.get("role")
    name = member.get_full_name() or member.username
    if action in {"give_role", "take_role"}:
        role = Role(str(role_value))
        words = {"name": name, "role": role.label}
        if action == "give_role":
            if staff_role_give(actor=manager, member=member, role=role):
                return "success", _("%(name)s is now also %(role)s.") % words
            return "info", _("%(name)s already holds the role %(role)s.") % words
        taken = staff_role_take(actor=manager, member=member, role=role)
        if taken is not None:
            return "success", _("%(name)s no longer holds the role %(role)s.") % words + (
                _withdrawn_words(taken.invitations_withdrawn)
            )
        return "info", _("%(name)s did not hold the role %(role)s.") % words
    if action == "deactivate":
        done = staff_deactivate(actor=manager, member=member)
        if done is None:
            return "info", _("%(name)s's account was already deactivated.") % {"name": name}
        text = _(
            "%(name)s's account is deactivated: they are signed out everywhere and cannot sign "
            "in. Their name stays on everything they did."
        ) % {"name": name}
        return "success", text + _withdrawn_words(done.invitations_withdrawn)
    if action == "reactivate":
        if staff_reactivate(actor=manager, member=member):
            return "success", _("%(name)s can sign in again, with the roles they held.") % {
                "name": name
            }
        return "info", _("%(name)s's account is already active.") % {"name": name}
    if action == "unlock":
        if staff_unlock(actor=manager, member=member):
            return "success", _("%(name)s can sign in again.") % {"name": name}
        return "info", _("%(name)s's account was not locked; nothing to unlock.") % {"name": name}
    if staff_authenticator_reset(actor=manager, member=member):
        if settings.REQUIRE_STAFF_2FA:
            return "success", _(
                "%(name)s's authenticator and backup codes are removed and they are signed out. "
                "They set up a new authenticator at their next sign-in."
            ) % {"name": name}
        # The clinic does not make two-factor compulsory: nothing will ask
        # them to set it up again, so the message must not promise it.
        return "success", _(
            "%(name)s's authenticator and backup codes are removed and they are signed out. "
            "They sign in with their password alone until they set up a new authenticator "
            "from “Your account”; once set up, it is asked for at every sign-in."
        ) % {"name": name}
    return "info", _("%(name)s had no authenticator set up; nothing to reset.") % {"name": name}


@staff(Role.MANAGER)
@refused_as(STAFF_TASK)
@require_http_methods(["GET", "POST"])
def staff_member(request: HttpRequest, member: uuid.UUID) -> HttpResponse:
    """One member of staff: their roles, state, sign-in, two-factor and the
    changes of their account; and the buttons that change them."""
    manager = signed_in_user(request)
    person = staff_member_get(member)
    if person is None:
        raise Http404
    status = 200
    if request.method == "POST":
        form = StaffActionForm(request.POST)
        if form.is_valid():
            if form.cleaned_data["action"] in STEP_UP_ACTIONS:
                back = reverse("staff_member", kwargs={"member": person.uuid})
                if (gate := step_up_needed(request, next_url=back)) is not None:
                    return gate
            try:
                level, text = _member_action(manager, person, form)
            except StaffRefusedError as refusal:
                messages.error(request, refusal.message)
                status = refusal_status(refusal)
            else:
                getattr(messages, level)(request, text)
                return HttpResponseRedirect(reverse("staff_member", kwargs={"member": person.uuid}))
        else:
            messages.error(request, _form_errors(form))
            status = 400
        person.refresh_from_db()
    row = staff_member_row(person)
    return render(
        request,
        "clinic/staff_member.html",
        {
            "row": row,
            "person": person,
            "is_self": person.pk == manager.pk,
            "two_factor_required": settings.REQUIRE_STAFF_2FA,
            "roles_not_held": [role for role in Role if role not in row.roles],
            "history": [(event, _history_line(event)) for event in staff_member_history(person)],
        },
        status=status,
    )


def _history_line(event: AuditEvent) -> str:
    """An entry of a person's history in words: what was done, to what
    (an account, an invitation; nothing more for the person's own user),
    and the roles it names ("role=manager")."""
    words = str(event.get_action_display())
    if event.object_type != User._meta.label_lower:
        words = f"{words} {event.object_label}"
    marks = [
        mark.removeprefix("role=") for mark in event.changed_fields if mark.startswith("role=")
    ]
    roles = [str(Role(value).label) for value in marks if value in Role.values]
    return f"{words}: {', '.join(roles)}" if roles else words


def _join_refused(request: HttpRequest, refusal: StaffRefusedError) -> HttpResponse:
    return render(
        request,
        "clinic/staff_join_refused.html",
        {"refusal": refusal},
        status=refusal_status(refusal),
    )


@public
@require_http_methods(["GET", "POST"])
def staff_join(request: HttpRequest, token: str) -> HttpResponse:
    """Join the staff with an invitation's link: choose a username and a
    password, then set up two-factor authentication (compulsory where the
    clinic requires it, REQUIRE_STAFF_2FA; offered otherwise). The link
    works once."""
    try:
        invitation = staff_invitation_open(token)
    except StaffRefusedError as refusal:
        return _join_refused(request, refusal)
    if request.user.is_authenticated:
        return _join_refused(
            request,
            StaffRefusedError(
                _(
                    "You are signed in as %(name)s. Sign out first, then open the invitation's "
                    "link again."
                )
                % {"name": request.user.get_username()},
                code="signed_in",
            ),
        )
    status = 200
    initial = {"username": staff_username_suggest(invitation)}
    form = StaffJoinForm(invitation, request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            user = staff_invitation_accept(
                token=token,
                username=form.cleaned_data["username"],
                password=form.cleaned_data["password1"],
            )
        except StaffRefusedError as refusal:
            if refusal.field not in form.fields:
                return _join_refused(request, refusal)
            form.add_error(refusal.field, refusal.message)
            status = refusal_status(refusal)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            name = user.first_name or user.username
            if settings.REQUIRE_STAFF_2FA:
                welcome = _(
                    "Welcome, %(name)s. One more step: set up two-factor authentication, so "
                    "that each sign-in also asks for a code from your phone."
                )
            else:
                # Offered, not required: nothing will ask for it, so the page says so.
                welcome = _(
                    "Welcome, %(name)s. This clinic does not require two-factor "
                    "authentication: set it up now, so that each sign-in also asks for a code "
                    "from your phone, or later from “Your account”."
                )
            messages.success(request, welcome % {"name": name})
            target = reverse("two_factor_setup") + "?" + urlencode({"next": reverse("home")})
            return HttpResponseRedirect(target)
    return render(
        request,
        "clinic/staff_join.html",
        {
            "form": form,
            "invitation": invitation,
            "roles": ", ".join(invitation.role_labels),
            "two_factor_required": settings.REQUIRE_STAFF_2FA,
        },
        status=status,
    )


@authenticated
@require_http_methods(["GET", "POST"])
def account(request: HttpRequest) -> HttpResponse:
    """Your own account: roles, two-factor and backup codes (new ones made
    here, shown once), the previous sign-in, and the password."""
    user = signed_in_user(request)
    if user.is_portal_patient:
        return HttpResponseRedirect(reverse("treatments:portal_home"))
    enrolled = two_factor_enrolled(user)
    status = 200
    if request.method == "POST":
        form = AccountActionForm(request.POST)
        if not form.is_valid():
            messages.error(request, _form_errors(form))
            status = 400
        elif not enrolled:
            messages.error(
                request,
                _("Set up two-factor authentication first: backup codes come with it."),
            )
            status = 409
        elif (gate := step_up_needed(request, next_url=reverse("account"))) is not None:
            return gate
        elif form.cleaned_data["action"] == "replace_authenticator":
            # Nothing changes yet: the old app works until the new one is
            # confirmed on the setup page (clinic.staff.authenticator_enrol).
            request.session[REPLACING_SESSION] = True
            target = reverse("two_factor_setup") + "?" + urlencode({"next": reverse("account")})
            return HttpResponseRedirect(target)
        else:
            codes = backup_codes_issue(user=user)
            return render(
                request,
                "registration/backup_codes.html",
                {"codes": codes, "next": reverse("account"), "replaced": True},
            )
    return render(
        request,
        "clinic/account.html",
        {
            "person": user,
            "roles": roles_held(user) if user.is_active else [],
            "enrolled": enrolled,
            "codes_left": backup_codes_left(user),
            "previous_login": previous_sign_in(user),
        },
        status=status,
    )


@authenticated
@require_http_methods(["GET", "POST"])
def step_up(request: HttpRequest) -> HttpResponse:
    """Confirm it is you: your password and, when you have set up two-factor
    authentication, a code (clinic/stepup.py); then on to the page you were
    going to (`next`, a path of this site), its query kept. A wrong
    password counts towards the sign-in lock as at sign-in; past the lock,
    axes answers with its lockout page."""
    user = signed_in_user(request)
    second_factor = has_two_factor_device(user)
    form = StepUpForm(request.POST or None, second_factor=second_factor)
    status = 200
    if request.method == "POST":
        if not form.is_valid():
            status = 400
        else:
            data = form.cleaned_data
            try:
                step_up_confirm(
                    request=request,
                    user=user,
                    password=data["password"],
                    code=data.get("otp_token", ""),
                    kind=form.kind if second_factor else "",
                )
            except StepUpRefusedError as refusal:
                form.add_error(refusal.field, refusal.message)
                status = refusal_status(refusal)
            except SecondFactorThrottledError as refusal:
                form.add_error("otp_token", refusal.message)
                status = 429
            else:
                step_up_done_message(request)
                return HttpResponseRedirect(_safe_next(request, default="account"))
    next_url = _safe_next(request, default="account")
    # Where Cancel goes: the page named `back`, of this site, else `next`.
    back = request.POST.get("back") or request.GET.get("back") or ""
    if not url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        back = ""
    return render(
        request,
        "registration/step_up.html",
        {
            "form": form,
            "next": next_url,
            "back": back or next_url,
            "second_factor": second_factor,
            "minutes": int(STEP_UP_VALID.total_seconds() // 60),
        },
        status=status,
    )

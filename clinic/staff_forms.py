"""Forms of the staff pages, of joining with an invitation, and of the
two-factor step that also takes a backup code."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib.auth import password_validation
from django.contrib.auth.forms import UsernameField
from django.utils.translation import gettext_lazy as _

from clinic.forms import SubmissionTokenMixin
from clinic.models import StaffInvitation, User
from clinic.roles import Role
from clinic.staff import BACKUP_CODE_PATTERN, backup_code_normalise


class StaffInviteForm(SubmissionTokenMixin, forms.Form):
    """Who to invite, at which address, with which roles."""

    first_name = forms.CharField(label=_("First name"), max_length=150)
    last_name = forms.CharField(label=_("Last name"), max_length=150, required=False)
    email = forms.EmailField(
        label=_("Email"),
        max_length=254,
        help_text=_("The invitation goes here. Use the person's own address, not a shared one."),
    )
    roles = forms.MultipleChoiceField(
        label=_("Roles"),
        choices=Role.choices,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": _("Choose at least one role.")},
        help_text=_("A person may hold several. You can change them later."),
    )


class InvitationActionForm(forms.Form):
    """Send a waiting invitation again, or cancel it."""

    invitation = forms.UUIDField(
        error_messages={"invalid": _("That is not an invitation of this clinic.")}
    )
    action = forms.ChoiceField(
        choices=[("resend", _("Send again")), ("cancel", _("Cancel"))],
        error_messages={"invalid_choice": _("Choose to send the invitation again or cancel it.")},
    )


STAFF_ACTIONS = {
    "give_role": _("Give a role"),
    "take_role": _("Take a role away"),
    "deactivate": _("Deactivate"),
    "reactivate": _("Reactivate"),
    "unlock": _("Unlock"),
    "reset_authenticator": _("Reset the authenticator"),
}


class StaffActionForm(forms.Form):
    """One change to a member of staff: the action, and the role for giving
    or taking one. Sent again, it finds nothing left to do."""

    action = forms.ChoiceField(
        choices=list(STAFF_ACTIONS.items()),
        error_messages={
            "required": _("Choose what to do."),
            "invalid_choice": _("That is not something the staff page does."),
        },
    )
    role = forms.ChoiceField(
        choices=Role.choices,
        required=False,
        error_messages={"invalid_choice": _("That is not one of the clinic's roles.")},
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("action") in {"give_role", "take_role"} and not data.get("role"):
            self.add_error("role", _("Choose the role to give or take away."))
        return data


class AccountActionForm(forms.Form):
    """What a person does on their own account page: new backup codes, or
    setting up their authenticator again on a new phone."""

    action = forms.ChoiceField(
        choices=[
            ("backup_codes", _("Make new backup codes")),
            ("replace_authenticator", _("Set up a new phone")),
        ],
        error_messages={
            "required": _("Choose what to do."),
            "invalid_choice": _("That is not something your account page does."),
        },
    )


class StaffJoinForm(forms.Form):
    """Joining with an invitation: the username to sign in with, and a password
    typed twice, checked by the clinic's password rules against the person's
    name and address."""

    username = UsernameField(
        label=_("Username"),
        max_length=150,
        help_text=_(
            "What you will type to sign in: letters a to z, digits and . _ @ + - only, "
            "without spaces or accents."
        ),
        widget=forms.TextInput(attrs={"autocomplete": "username", "autocapitalize": "none"}),
    )
    password1 = forms.CharField(
        label=_("Password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html(),
    )
    password2 = forms.CharField(
        label=_("The same password again"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def __init__(self, invitation: StaffInvitation, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.invitation = invitation

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        first, second = data.get("password1"), data.get("password2")
        if first and second and first != second:
            self.add_error("password2", _("The two passwords differ. Type the same one twice."))
        elif first:
            person = User(
                username=data.get("username") or "",
                first_name=self.invitation.first_name,
                last_name=self.invitation.last_name,
                email=self.invitation.email,
            )
            try:
                password_validation.validate_password(first, person)
            except forms.ValidationError as error:
                self.add_error("password1", error)
        return data


class SecondFactorForm(forms.Form):
    """The two-factor step: the 6 digits of the authenticator app, or one of
    the person's backup codes (`kind` says which, once valid)."""

    otp_token = forms.CharField(
        label=_("Code from your authenticator app, or a backup code"),
        max_length=24,
        error_messages={
            "required": _("Enter the 6 digits shown in your authenticator app."),
            "max_length": _("Enter the 6 digits shown in your authenticator app."),
        },
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "autocapitalize": "none",
                "spellcheck": "false",
                "autofocus": True,
            }
        ),
    )

    def clean_otp_token(self) -> str:
        value = backup_code_normalise(str(self.cleaned_data["otp_token"]))
        if re.fullmatch(r"\d{6}", value) or BACKUP_CODE_PATTERN.fullmatch(value):
            return value
        raise forms.ValidationError(
            _(
                "Enter the 6 digits shown in your authenticator app, or one of your backup "
                "codes (8 letters and digits)."
            )
        )

    @property
    def kind(self) -> str:
        """ "totp" for the app's 6 digits, "backup" for a backup code."""
        return "totp" if self.cleaned_data["otp_token"].isdigit() else "backup"


class StepUpForm(SecondFactorForm):
    """Confirming it is you before changing a second factor or a colleague's
    roles (clinic/stepup.py): your password and, when you have set up
    two-factor authentication (`second_factor`), a code from your app or a
    backup code."""

    password = forms.CharField(
        label=_("Your password"),
        strip=False,
        # Argon2 hashes whatever is sent: a page of text is no password.
        max_length=4096,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
        error_messages={"required": _("Type your password.")},
    )
    field_order = ["password", "otp_token"]

    def __init__(self, *args: Any, second_factor: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if second_factor:
            self.fields["otp_token"].widget.attrs.pop("autofocus", None)
        else:
            del self.fields["otp_token"]

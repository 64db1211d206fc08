"""Forms of the emailed links and the patient portal."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from clinic.forms import SubmissionTokenMixin
from clinic.widgets import BirthDateField


class DateOfBirthForm(forms.Form):
    """The check a download link asks for before it gives the document."""

    date_of_birth = BirthDateField(
        label=_("Your date of birth"),
        error_messages={
            "required": _("Please enter your date of birth."),
            # The example is the field's hint, under it (BIRTH_DATE_HINT).
            "invalid": _("Please enter your date of birth as dd/mm/yyyy (day, month, year)."),
        },
    )


class PortalRequestForm(forms.Form):
    """Ask for a sign-in link to the portal."""

    email = forms.EmailField(
        label=_("Your email address"),
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
        error_messages={"required": _("Please enter your email address.")},
    )


class PortalInviteForm(SubmissionTokenMixin, forms.Form):
    """Invite the patient to the portal (or email a new sign-in link): sent
    twice, one invitation and one email."""


class SendLinkForm(SubmissionTokenMixin, forms.Form):
    """Email the patient a new link to their aftercare sheet: sent twice, one
    link and one email."""


class RevokeLinkForm(forms.Form):
    """Revoke one link (by its id) or, with none named, every live link."""

    link = forms.UUIDField(required=False, widget=forms.HiddenInput)

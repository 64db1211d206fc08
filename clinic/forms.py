"""Forms of the clinic app: two-factor codes, the audit-log filter, and the
two hidden fields every editing and creating form of the application shares
(`clinic.concurrency`: the version a form edits, a create form's one-time token)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, time
from typing import Any, TypeVar

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Model
from django.utils import dateformat, timezone
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from clinic.concurrency import StaleChange, StaleEditError, differs, submission_find, text_block
from clinic.filtering import FilterDateField
from clinic.models import AuditAction

V = TypeVar("V", bound=Callable[..., Any])

VERSION_LOST = _(
    "This form has lost track of which version of the record it edits. Reload the page "
    "and make your change again."
)
TOKEN_MANGLED = _("This form could not be checked. Reload the page and fill it in again.")
STALE_FIELD = _("Changed by %(who)s at %(when)s since you opened this page; now: %(value)s.")
STALE_FIELD_LONG = _("Changed by %(who)s at %(when)s since you opened this page: see above.")


def _stale_field_message(change: StaleChange) -> str:
    """The note on a field someone else changed: who, when, and its value now
    (a long text is in the notice above the form only)."""
    when = dateformat.format(timezone.localtime(change.at), "H:i") if change.at else "—"
    if len(change.value) > 80 or "\n" in change.value:
        return str(STALE_FIELD_LONG % {"who": change.by, "when": when})
    value = change.value or _("(empty)")
    return str(STALE_FIELD % {"who": change.by, "when": when, "value": value})


class StaleNoticeMixin:
    """A form whose save the service may refuse as stale (`clinic.concurrency`):
    `show_stale(error)` keeps what the user typed and attaches the refusal for
    the notice (templates/includes/stale_edit.html) as `stale`."""

    fields: dict[str, forms.Field]
    stale: StaleEditError | None = None

    def show_stale(self, error: StaleEditError) -> int:
        """Show the refusal of this form's save and return the HTTP status to
        answer with: 409 when someone saved first (the notice lists what they
        changed), 400 when the form's version is not one the record had."""
        if error.is_stale:
            self.stale = error
            # Point at each field the other person changed, with its value now:
            # what this form still shows there is out of date.
            for change in error.changes:
                field = self.fields.get(change.field)
                if field is not None and not field.widget.is_hidden:
                    self.add_error(change.field, _stale_field_message(change))  # type: ignore[attr-defined]
            return 409
        self.add_error(None, error.message)  # type: ignore[attr-defined]
        return 400


class VersionedFormMixin(StaleNoticeMixin):
    """A form that edits an existing record: it carries, in the hidden field
    `version`, the version of the record it was opened with, and the service
    refuses the save if the record has moved on since (`clinic.concurrency`).

    A model form editing an instance takes the instance's version; a model
    form creating one has no version field. Other forms pass the version as
    `initial["version"]`, or override `opened_version()`. A missing or
    mangled version is a form error (the view answers 400). After a refusal,
    `show_stale(error)` keeps what the user typed and attaches the refusal for
    the notice (templates/includes/stale_edit.html)."""

    fields: dict[str, forms.Field]
    versioned_without_instance = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stale = None
        instance = getattr(self, "instance", None)
        creating = instance is not None and instance.pk is None
        if creating and not self.versioned_without_instance:
            return
        self.fields["version"] = forms.CharField(
            required=False, widget=forms.HiddenInput, max_length=200
        )
        opened = self.opened_version()
        if opened is not None:
            self.fields["version"].initial = opened

    def opened_version(self) -> Any:
        """The version the form is opened with (None: taken from `initial`)."""
        instance = getattr(self, "instance", None)
        if instance is not None and instance.pk is not None:
            return instance.version
        return None

    def clean_version(self) -> Any:
        value = str(self.cleaned_data.get("version") or "").strip()  # type: ignore[attr-defined]
        try:
            number = int(value)
        except ValueError:
            number = -1
        if number < 0:
            self.add_error(None, VERSION_LOST)  # type: ignore[attr-defined]
            return None
        return number


class SubmissionTokenMixin:
    """A create form: it carries a one-time UUID in the hidden field
    `submission_token`, issued with the empty form and sent back with every post
    of it, so the same form sent twice creates one row (`clinic.concurrency`).
    A missing token is None (only the guard is lost); a mangled one a form error."""

    fields: dict[str, forms.Field]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["submission_token"] = forms.CharField(
            required=False, widget=forms.HiddenInput, max_length=64
        )
        if not self.is_bound:  # type: ignore[attr-defined]
            self.fields["submission_token"].initial = str(uuid.uuid4())

    def clean_submission_token(self) -> uuid.UUID | None:
        value = str(self.cleaned_data.get("submission_token") or "").strip()  # type: ignore[attr-defined]
        if not value:
            return None
        try:
            return uuid.UUID(value)
        except ValueError:
            self.add_error(None, TOKEN_MANGLED)  # type: ignore[attr-defined]
            return None


class TokenForm(forms.Form):
    otp_token = forms.RegexField(
        label=_("6-digit code from your authenticator app"),
        regex=r"^\s*\d{6}\s*$",
        max_length=12,
        error_messages={"invalid": _("Enter the 6 digits shown in your authenticator app.")},
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        ),
    )

    def clean_otp_token(self) -> str:
        return str(self.cleaned_data["otp_token"]).strip()


class AuditFilterForm(forms.Form):
    user = forms.CharField(label=_("User"), required=False, max_length=150)
    action = forms.ChoiceField(
        label=_("Action"),
        required=False,
        choices=[("", _("Any action")), *AuditAction.choices],
    )
    since = FilterDateField(label=_("From"))
    until = FilterDateField(label=_("To"))

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and until < since:
            self.add_error("until", _("The end date is before the start date."))
        return data

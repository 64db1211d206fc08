"""Forms of the clinic app: two-factor codes, the audit-log filter, and what
every editing and creating form of the application shares (`clinic.concurrency`:
the version a form edits and the values it was opened with, a create form's
one-time token, multi-line texts kept as `text_block`s)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, time
from typing import Any, TypeVar

from django import forms
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db.models import Model
from django.utils.html import format_html
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from clinic import dates
from clinic.concurrency import (
    StaleChange,
    StaleEditError,
    differs,
    submission_find,
    text_block,
    value_text,
)
from clinic.filtering import FilterDateField
from clinic.models import AuditAction
from clinic.posted import UnreadablePostError, json_from_post
from clinic.selectors import (
    AUDIT_PAGE_SIZE_LEAST,
    AUDIT_PAGE_SIZE_MOST,
    AuditCursor,
    AuditCursorError,
)

V = TypeVar("V", bound=Callable[..., Any])

VERSION_LOST = _(
    "This form has lost track of which version of the record it edits. Reload the page "
    "and make your change again."
)
TOKEN_MANGLED = _("This form could not be checked. Reload the page and fill it in again.")
# The note beside a field someone else changed since the page was opened:
# information, not an error (the field is not wrong), so it is shown as the
# field's help text, never in red.
STALE_NOTE = _("Changed by %(who)s at %(when)s: now %(value)s.")
STALE_NOTE_LONG = _("Changed by %(who)s at %(when)s: their text is listed above.")
STALE_NOTE_THEIRS = _(
    "Changed by %(who)s at %(when)s. You had not changed it, so it now shows their value."
)
STALE_NOTE_BOTH = _(
    "Changed by %(who)s at %(when)s: theirs is %(value)s. You changed it too: saving again "
    "keeps yours."
)
STALE_NOTE_BOTH_LONG = _(
    "Changed by %(who)s at %(when)s: their text is listed above. You changed it too: saving "
    "again keeps yours."
)
# Hidden fields of the mechanism itself, never values of the record.
MACHINERY_FIELDS = frozenset({"version", "opened", "submission_token"})


def _is_long(value: str) -> bool:
    return len(value) > 80 or "\n" in value


def stale_note(change: StaleChange, *, yours: bool | None = None) -> str:
    """The note beside a field someone else changed: who, when, and its value
    now (a long text is in the notice above the form only). `yours` True: the
    person changed it too (saving again keeps what they typed); False: they
    had not, and the field now shows the other value; None: said plainly."""
    when = dates.clock(change.at) if change.at else "—"
    words = {"who": change.by, "when": when, "value": change.value or _("(empty)")}
    if yours is False:
        return str(STALE_NOTE_THEIRS % words)
    if yours:
        return str((STALE_NOTE_BOTH_LONG if _is_long(change.value) else STALE_NOTE_BOTH) % words)
    return str((STALE_NOTE_LONG if _is_long(change.value) else STALE_NOTE) % words)


def _as_text(value: Any) -> str | list[str] | None:
    """A field's value as the browser sends it back: a string, a list of
    strings (several choices), or None (empty)."""
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return [str(item) for item in value]
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


def _is_text_block(field: forms.Field) -> bool:
    return isinstance(field.widget, forms.Textarea)


class TextBlocksMixin:
    """Every multi-line text field (a `Textarea`) of the form takes what is
    typed as a `text_block` (`clinic.concurrency`): "\r\n" from the browser
    becomes "\n" and trailing spaces go, before anything is validated, shown
    again or compared, so an untouched text is never a change."""

    fields: dict[str, forms.Field]
    data: Any
    is_bound: bool

    def full_clean(self) -> None:
        if self.is_bound:
            self.data = self._with_text_blocks(self.data)
        super().full_clean()  # type: ignore[misc]

    def _with_text_blocks(self, data: Any) -> Any:
        keys = [
            self.add_prefix(name)  # type: ignore[attr-defined]
            for name, field in self.fields.items()
            if _is_text_block(field)
        ]
        present = [key for key in keys if key in data]
        if not present:
            return data
        copied = data.copy()
        for key in present:
            if hasattr(copied, "setlist"):
                copied.setlist(key, [text_block(str(v)) for v in data.getlist(key)])
            else:
                copied[key] = text_block(str(copied[key]))
        return copied


class StaleNoticeMixin:
    """A form whose save the service may refuse as stale (`clinic.concurrency`):
    `show_stale(error)` keeps what the user typed and attaches the refusal for
    the notice (templates/includes/stale_edit.html) as `stale`, and beside
    each field the other person changed a note (`stale_notes`, also shown as
    the field's help text: information in the form's own voice, not an error)."""

    fields: dict[str, forms.Field]
    stale: StaleEditError | None = None
    stale_notes: dict[str, str]

    def note_stale(self, name: str, note: str) -> None:
        """Put `note` beside field `name`: kept in `stale_notes` and shown as
        the field's help text (escaped: it may carry what someone typed),
        before any help text of its own."""
        if getattr(self, "stale_notes", None) is None:
            self.stale_notes = {}
        self.stale_notes[name] = note
        field = self.fields.get(name)
        if field is None or field.widget.is_hidden:
            return
        own = field.help_text
        marked = format_html(
            '<span class="d-block stale-note" data-testid="stale-note">{}</span>', note
        )
        field.help_text = format_html("{}{}", marked, own) if own else marked
        # A bound field takes its help text when first made (the form's checks made it).
        self[name].help_text = field.help_text  # type: ignore[index]

    def show_stale(self, error: StaleEditError) -> int:
        """Show the refusal of this form's save and return the HTTP status to
        answer with: 409 when someone saved first (the notice lists what they
        changed), 400 when the form's version is not one the record had."""
        if error.is_stale:
            self.stale = error
            for change in error.changes:
                self.note_stale(change.field, stale_note(change))
            return 409
        self.add_error(None, error.message)  # type: ignore[attr-defined]
        return 400


class VersionedFormMixin(TextBlocksMixin, StaleNoticeMixin):
    """A form that edits an existing record (or changes its state): it
    carries, in the hidden field `version`, the version of the record it was
    opened with, and the service refuses the save if the record has moved on
    since (`clinic.concurrency`). In the hidden field `opened` it carries the
    values its fields were opened with, so that `typed(values)` keeps only
    what the person changed: a save never writes back a value they did not
    touch.

    A model form editing an instance takes the instance's version; a model
    form creating one has no version field. Other forms pass the version as
    `initial["version"]`, or override `opened_version()`. A missing or
    mangled version is a form error (the view answers 400). After a refusal,
    `show_stale(error)` keeps what the user typed, takes the record's version
    now (so a second, deliberate save goes through and writes only what they
    changed), shows the other person's value in the fields they alone
    changed (with a note saying so), a note beside each field both changed,
    and attaches the refusal for the notice (templates/includes/stale_edit.html)."""

    fields: dict[str, forms.Field]
    versioned_without_instance = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stale = None
        self.stale_notes = {}
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
        self.fields["opened"] = forms.CharField(required=False, widget=forms.HiddenInput)
        if not self.is_bound:
            self.fields["opened"].initial = json.dumps(self._values_shown())

    def _record_fields(self) -> list[str]:
        return [name for name in self.fields if name not in MACHINERY_FIELDS]

    def _values_shown(self) -> dict[str, Any]:
        """What each field of the unbound form shows, as the browser sends it."""
        return {name: _as_text(self[name].value()) for name in self._record_fields()}  # type: ignore[index]

    def _opened(self) -> dict[str, Any] | None:
        raw = self.data.get(self.add_prefix("opened"))  # type: ignore[attr-defined]
        try:
            opened = json_from_post(raw) if raw else None
        except UnreadablePostError:
            return None
        return opened if isinstance(opened, dict) else None

    def _differs(self, name: str, before: Any) -> bool:
        """Whether what the form now holds in field `name` differs from
        `before` (a value as the browser sends it, or a Python value)."""
        field = self.fields[name]
        now = self[name].data  # type: ignore[index]
        if _is_text_block(field):
            return differs(str(before or ""), str(now or ""))
        try:
            initial = field.to_python(before) if isinstance(before, str | list) else before
        except ValidationError:
            return True
        return bool(field.has_changed(initial, now))

    def typed_names(self) -> set[str] | None:
        """The fields the person changed since the form was opened; None when
        the form does not say what it was opened with (then every field counts)."""
        opened = self._opened()
        if opened is None:
            return None
        return {
            name
            for name in self._record_fields()
            if name not in opened or self._differs(name, opened[name])
        }

    def typed(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """`values` (cleaned values by field name, for a service) restricted to
        the fields the person changed since the form was opened."""
        names = self.typed_names()
        return {k: v for k, v in values.items() if names is None or k in names}

    def current_values(self, record: Any) -> dict[str, Any]:
        """The record as saved now, as this form's fields would show it (only
        the fields that have a counterpart). Model forms take the instance's
        fields; other forms override this."""
        meta = getattr(self, "_meta", None)
        if meta is None or record is None or not isinstance(record, meta.model):
            return {}
        values = forms.models.model_to_dict(record, fields=self._record_fields())
        return {name: self.fields[name].prepare_value(value) for name, value in values.items()}

    def show_stale(self, error: StaleEditError) -> int:
        if not error.is_stale:
            return super().show_stale(error)
        self.stale = error
        typed = self.typed_names()
        current = self.current_values(error.current)
        data = self.data.copy()
        if error.version is not None and "version" in self.fields:
            data[self.add_prefix("version")] = str(error.version)  # type: ignore[attr-defined]
        opened = self._opened()
        rebased: set[str] = set()
        if typed is not None and opened is not None:
            # What the person did not change takes the value saved now, in the
            # form and as what it was "opened" with: a second save keeps it.
            for name, value in current.items():
                if name in typed:
                    continue
                text = _as_text(value)
                key = self.add_prefix(name)  # type: ignore[attr-defined]
                if isinstance(text, list) and hasattr(data, "setlist"):
                    data.setlist(key, text)
                elif isinstance(value, bool) and not value:
                    data.pop(key, None)
                else:
                    data[key] = text if text is not None else ""
                opened[name] = text
                rebased.add(name)
            data[self.add_prefix("opened")] = json.dumps(opened)  # type: ignore[attr-defined]
        self.data = data
        for change in error.changes:
            field = self.fields.get(change.field)
            if field is None or field.widget.is_hidden:
                continue
            if change.field in rebased:
                self.note_stale(change.field, stale_note(change, yours=False))
            elif change.field not in current or self._differs(change.field, current[change.field]):
                # Both changed it (or what is saved cannot be shown here): theirs beside it.
                self.note_stale(change.field, stale_note(change, yours=True))
        return 409

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


class SubmissionTokenMixin(TextBlocksMixin):
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
        if not self.is_bound:
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

    def saved_before(self, model: type[Model], *, by: Any = None) -> Model | None:
        """What this very form, sent before, already created (a row of
        `model` made by `by`), or None; asked before validating, since a form
        sent again may fail a check its first sending now makes true."""
        if not self.is_bound:
            return None
        raw = str(self.data.get(self.add_prefix("submission_token")) or "")  # type: ignore[attr-defined]
        try:
            token = uuid.UUID(raw.strip()[:64])
        except ValueError:
            return None
        return submission_find(model, token, by=by)


# What a post carries that nobody typed: the mechanism's hidden fields.
NOT_TYPED = frozenset(
    {*MACHINERY_FIELDS, "csrfmiddlewaretoken", "registration_token", "confirm_not_duplicate"}
)


def submits(*form_classes: type[forms.BaseForm]) -> Callable[[V], V]:
    """Declare the forms a view receives: their labels name what was typed
    when a post cannot be saved at all and is shown back as text (a record
    merged meanwhile: patients.middleware)."""

    def decorator(view: V) -> V:
        view.submitted_forms = form_classes  # type: ignore[attr-defined]
        return view

    return decorator


def typed_values(
    data: Mapping[str, Any],
    form_classes: Sequence[type[forms.BaseForm]] = (),
    *,
    record: Model | None = None,
) -> list[tuple[str, str]]:
    """What a post carried that a person typed or chose, as (label, text)
    pairs in the order sent: each field labelled as its form labels it (a
    formset's "lines-0-amount" as "Amount") and its value as people read it
    (a choice by its label, yes/no, dates dd/mm/yyyy, several values joined);
    empty fields, hidden fields and the mechanism's own left out, as is a
    drawn signature (a picture, not text).

    A form that says what it was opened with (the hidden `opened` of
    `VersionedFormMixin`) counts only the fields changed since: a value it
    merely showed was not typed (an emptied field or an untick counts, as
    "(empty)" or "No"). With `record` (the row such a form would now be sent
    to: the record a merged one went into), a value that record already holds
    is left out too: copying it over would change nothing, or undo a
    correction made there."""
    fields: dict[str, forms.Field] = {}
    models: dict[str, Any] = {}
    for form_class in form_classes:
        model = getattr(getattr(form_class, "_meta", None), "model", None)
        for name, field in getattr(form_class, "base_fields", {}).items():
            fields.setdefault(name, field)
            models.setdefault(name, model)
    opened = _opened_in(data)
    keys = list(data)
    if opened is not None:
        # A box unticked or a list emptied is not sent at all.
        keys += [name for name in opened if name in fields and name not in data]
    shown: list[tuple[str, str]] = []
    getlist = getattr(data, "getlist", None)
    for key in keys:
        name = re.sub(r"^[\w]+-\d+-", "", key)
        if key in NOT_TYPED or name in NOT_TYPED or name == "signature":
            continue
        raw = getlist(key) if getlist is not None and key in data else [data.get(key, "")]
        values = [str(v).strip() for v in raw if str(v).strip()]
        field = fields.get(name)
        if field is not None and field.widget.is_hidden:
            continue
        if field is None:
            if values:
                shown.append((capfirst(name.replace("_", " ")), ", ".join(values)))
            continue
        now = field.widget.value_from_datadict(data, {}, key)
        if opened is not None and name in opened:
            if not _posted_differs(field, opened[name], now):
                continue
        elif not values:
            continue
        try:
            value = field.to_python(now)
        except ValidationError:
            value = ", ".join(values)  # shown as typed
        if record is not None and _holds(record, models.get(name), name, value):
            continue
        label = str(field.label) if field.label else capfirst(name.replace("_", " "))
        shown.append((label, _readable(field, value) or str(_("(empty)"))))
    return shown


def _opened_in(data: Mapping[str, Any]) -> dict[str, Any] | None:
    """The values a `VersionedFormMixin` form was opened with, as it posted them."""
    try:
        opened = json_from_post(str(data.get("opened") or ""))
    except UnreadablePostError:
        return None
    return opened if isinstance(opened, dict) else None


def _posted_differs(field: forms.Field, before: Any, now: Any) -> bool:
    """Whether `now` (the widget's value from a post) differs from `before`
    (a value as the browser sent it when the form was opened)."""
    if _is_text_block(field):
        return differs(str(before or ""), str(now or ""))
    try:
        initial = field.to_python(before) if isinstance(before, str | list) else before
    except ValidationError:
        return True
    return bool(field.has_changed(initial, now))


def _holds(record: Model, model: Any, name: str, value: Any) -> bool:
    """Whether `record` already holds `value` in its field `name` (a field
    of a form for `record`'s own model only)."""
    if model is None or not isinstance(record, model):
        return False
    try:
        record._meta.get_field(name)
    except FieldDoesNotExist:
        return False
    held = getattr(record, name, None)
    if held in (None, "") and value in (None, ""):
        return True
    return not differs(held, value)


def _readable(field: forms.Field, value: Any) -> str:
    """A form field's value as people read it: a choice by its label, yes/no,
    a date dd/mm/yyyy (clinic.concurrency.value_text)."""
    if isinstance(field, forms.ModelChoiceField):
        return value_text(value)  # the row(s) by name
    choices = dict(getattr(field, "choices", None) or [])
    if choices and isinstance(value, list | tuple):
        return ", ".join(str(choices.get(str(v), v)) for v in value)
    if choices:
        return str(choices.get(value, choices.get(str(value), value_text(value))))
    return value_text(value)


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
    """The audit log's filters, its page size and the cursor of the page to
    show (`before`: older than; `after`: newer than), as its links write them.
    A cursor edited or cut short is refused on its field."""

    user = forms.CharField(label=_("User"), required=False, max_length=150)
    action = forms.ChoiceField(
        label=_("Action"),
        required=False,
        choices=[("", _("Any action")), *AuditAction.choices],
    )
    patient = forms.UUIDField(
        label=_("Patient record"),
        required=False,
        help_text=_("The record's id, as in its address."),
        error_messages={"invalid": _("Paste a patient record's id, as in its address.")},
    )
    since = FilterDateField(label=_("From"))
    until = FilterDateField(label=_("To"))
    per_page = forms.IntegerField(
        label=_("Entries a page"),
        required=False,
        min_value=AUDIT_PAGE_SIZE_LEAST,
        max_value=AUDIT_PAGE_SIZE_MOST,
    )
    before = forms.CharField(required=False, max_length=40)
    after = forms.CharField(required=False, max_length=40)

    def _clean_cursor(self, name: str) -> AuditCursor | None:
        token = self.cleaned_data.get(name) or ""
        if not token:
            return None
        try:
            return AuditCursor.parse(token)
        except AuditCursorError:
            raise forms.ValidationError(
                _("This link to other pages of the log is damaged. Start again from the newest."),
                code="cursor",
            ) from None

    def clean_before(self) -> AuditCursor | None:
        return self._clean_cursor("before")

    def clean_after(self) -> AuditCursor | None:
        return self._clean_cursor("after")

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and until < since:
            self.add_error("until", _("The end date is before the start date."))
        if data.get("before") and data.get("after"):
            self.add_error(
                None,
                _("This link to other pages of the log is damaged. Start again from the newest."),
            )
        return data

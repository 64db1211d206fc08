"""Changing the clinic's settings: one service, `clinic_settings_change`.

Each save inserts a new version (clinic.ClinicSettings, append-only) made of
the newest one with the manager's changes, checked against the safe bounds
of clinic/clinic_settings_rules.py (the same the form and the database
hold), and audited with the names of the fields it changed. Two managers
saving at once: the second is refused with what the first changed
(`StaleEditError`), never applied over it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import time
from itertools import pairwise
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils.translation import gettext as _

from clinic import clinic_settings, dates
from clinic.audit import audit_log
from clinic.clinic_settings_rules import (
    BOUND_OF_FIELD,
    BOUNDS,
    MAX_REMINDERS,
    QUIET_END_EARLIEST,
    QUIET_END_LATEST,
    QUIET_START_EARLIEST,
    QUIET_START_LATEST,
    WEEKDAYS,
)
from clinic.concurrency import (
    OtherEdit,
    StaleChange,
    StaleEditError,
    bad_version_error,
    field_text,
    stale_message,
    version_mark,
)
from clinic.models import AuditAction, ClinicSettings, User
from clinic.refusals import RefusedError

# Every field a manager may change (all but who, when and why).
SETTING_FIELDS: tuple[str, ...] = (
    "clinic_name",
    "clinic_address",
    "clinic_phone",
    "clinic_email",
    *(f"{day}_{edge}" for day in WEEKDAYS for edge in ("opens", "closes")),
    "reminder_first_hours",
    "reminder_second_hours",
    "reminder_third_hours",
    "quiet_hours_start",
    "quiet_hours_end",
    "medical_history_valid_days",
    "allergy_test_valid_months",
    "default_session_minutes",
    "adult_record_retention_years",
    "child_record_retention_until_age",
)


# One key for the transaction-level advisory lock that orders saves.
_LOCK_KEY = 0x636C696E6963_5345  # "clinic" "SE"


class ClinicSettingsRefusedError(RefusedError):
    """A change the bounds do not allow: `field` names the setting."""

    code = "clinic_settings_refused"


def bound_errors(values: Mapping[str, Any]) -> dict[str, str]:
    """What is wrong with a complete set of settings `values` (field name to
    value, as stored): a sentence per field, {} when all is well. The one
    statement of the bounds the form and the service share; the database's
    check constraints hold the same (clinic/clinic_settings_rules.py)."""
    errors: dict[str, str] = {}
    if not str(values.get("clinic_name") or "").strip():
        errors["clinic_name"] = _("Give the clinic's name.")
    for name, key in BOUND_OF_FIELD.items():
        value = values.get(name)
        if value is None:
            if name == "reminder_first_hours" or not name.startswith("reminder_"):
                errors[name] = _("Give a number.")
            continue
        bound = BOUNDS[key]
        if not bound.minimum <= value <= bound.maximum:
            errors[name] = _("Give a number from %(low)s to %(high)s.") % {
                "low": bound.minimum,
                "high": bound.maximum,
            }
        elif value % bound.step:
            errors[name] = _("Give a multiple of %(step)s.") % {"step": bound.step}
    leads = [values.get(f"reminder_{n}_hours") for n in ("first", "second", "third")]
    if leads[1] is None and leads[2] is not None:
        errors.setdefault("reminder_third_hours", _("Give the second reminder before the third."))
    given = [h for h in leads if h is not None]
    if len(given) > MAX_REMINDERS:  # pragma: no cover - three fields hold three at most
        errors["reminder_first_hours"] = _("At most three reminders.")
    for earlier, later, name in (
        (leads[0], leads[1], "reminder_second_hours"),
        (leads[1], leads[2], "reminder_third_hours"),
    ):
        if earlier is not None and later is not None and later >= earlier:
            errors.setdefault(
                name,
                _("Give fewer hours than the reminder before it (%(hours)s): each comes later.")
                % {"hours": earlier},
            )
    start, end = values.get("quiet_hours_start"), values.get("quiet_hours_end")
    if isinstance(start, time) and isinstance(end, time) and start == end:
        errors["quiet_hours_end"] = _("Quiet hours must end at another time than they start.")
    else:
        if isinstance(start, time) and not QUIET_START_EARLIEST <= start <= QUIET_START_LATEST:
            errors["quiet_hours_start"] = _(
                "Quiet hours start in the evening, between 19:00 and 23:00: messages must "
                "never reach patients in the small hours."
            )
        if isinstance(end, time) and not QUIET_END_EARLIEST <= end <= QUIET_END_LATEST:
            errors["quiet_hours_end"] = _(
                "Quiet hours end in the morning, between 06:00 and 09:00: later, and "
                "the morning's reminders would reach patients after their session."
            )
    for day in WEEKDAYS:
        opens, closes = values.get(f"{day}_opens"), values.get(f"{day}_closes")
        if (opens is None) != (closes is None):
            errors[f"{day}_closes" if closes is None else f"{day}_opens"] = _(
                "Give both times, or neither for a day the clinic is closed."
            )
        elif opens is not None and closes is not None and closes <= opens:
            errors[f"{day}_closes"] = _("Closing must be after opening.")
    return errors


def setting_text(row: ClinicSettings, name: str) -> tuple[str, str]:
    """The label and value of setting `name` of `row` as a person reads them:
    times as HH:MM, an empty time as "closed" and an empty reminder as "none"."""
    value = getattr(row, name)
    label = str(getattr(ClinicSettings._meta.get_field(name), "verbose_name", name))
    label = label[:1].upper() + label[1:]
    if isinstance(value, time):
        return label, dates.clock(value)
    if value is None and name.endswith(("_opens", "_closes")):
        return label, _("closed")
    if value is None:
        return label, _("none")
    return label, field_text(row, name)[1]


def _stale_error(newest: ClinicSettings, since: int) -> StaleEditError:
    """The refusal of a save opened at version `since`: each field changed by
    the versions after it, its value now, who changed it last and when."""
    later = list(
        ClinicSettings.objects.filter(id__gte=since).select_related("changed_by").order_by("id")
    )
    latest: dict[str, tuple[str, Any]] = {}
    edits: list[OtherEdit] = []
    for before, after in pairwise(later):
        who = (
            after.changed_by.get_full_name() or after.changed_by.get_username()
            if after.changed_by is not None
            else _("someone")
        )
        names = [n for n in SETTING_FIELDS if getattr(before, n) != getattr(after, n)]
        for name in names:
            latest[name] = (who, after.created_at)
        edits.append(
            OtherEdit(
                by=who, at=after.created_at, labels=[setting_text(after, n)[0] for n in names]
            )
        )
    edits.reverse()
    changes = []
    for name in SETTING_FIELDS:
        if name in latest:
            label, value = setting_text(newest, name)
            by, at = latest[name]
            changes.append(StaleChange(field=name, label=label, value=value, by=by, at=at))
    return StaleEditError(
        stale_message(edits, what=str(ClinicSettings._meta.verbose_name)),
        changes=changes,
        edits=edits,
        current=newest,
        version=newest.pk,
    )


def _values_row(values: clinic_settings.ClinicSettingsValues) -> ClinicSettings:
    """An unsaved version holding `values` (the built-in defaults, say)."""
    row = ClinicSettings(
        clinic_name=values.clinic_name,
        clinic_address=values.clinic_address,
        clinic_phone=values.clinic_phone,
        clinic_email=values.clinic_email,
        quiet_hours_start=values.quiet_hours_start,
        quiet_hours_end=values.quiet_hours_end,
        medical_history_valid_days=values.medical_history_valid_days,
        allergy_test_valid_months=values.allergy_test_valid_months,
        default_session_minutes=values.default_session_minutes,
        adult_record_retention_years=values.adult_record_retention_years,
        child_record_retention_until_age=values.child_record_retention_until_age,
    )
    leads: list[int | None] = [*values.reminder_lead_hours, None, None]
    for order, lead in zip(("first", "second", "third"), leads, strict=False):
        setattr(row, f"reminder_{order}_hours", lead)
    for day, opening in zip(WEEKDAYS, values.opening_hours, strict=True):
        setattr(row, f"{day}_opens", opening[0] if opening else None)
        setattr(row, f"{day}_closes", opening[1] if opening else None)
    return row


@transaction.atomic
def clinic_settings_newest() -> ClinicSettings:
    """The newest version, taking the lock that orders saves (a transaction-
    level advisory lock, held to the caller's commit). With no version at
    all (a database emptied by hand, or a test's flush) the built-in
    defaults are stored first, as the migration would have. Raises nothing
    of its own."""
    with connection.cursor() as cursor:
        # Saves one at a time: the newest version read below stays the newest.
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
    newest = ClinicSettings.objects.order_by("-id").first()
    if newest is None:
        newest = _values_row(clinic_settings.defaults())
        newest.reason = "The built-in defaults: no settings were stored."
        newest.save(force_insert=True)
    return newest


@transaction.atomic
def clinic_settings_change(
    *,
    changed_by: User,
    changes: Mapping[str, Any],
    reason: str = "",
    expected_version: int | None,
) -> ClinicSettings:
    """Save a new version of the clinic's settings: the newest version with
    `changes` (field name to value as stored: whole numbers in the units the
    field names say, hours, days, months, minutes, years; times as local
    wall-clock `time`s; the phone as a PhoneNumber or E.164 text).

    `changed_by`: the manager saving (the view checks the role).
    `reason`: why, optional, at most 300 characters. `expected_version`: the
    id of the version the form was opened with (None: not from a form, as in
    the demo data; nothing checked).

    Raises `StaleEditError` ("stale_edit") when another version was saved
    since `expected_version` (with what it changed), or ("bad_version") when
    `expected_version` names no version; `ClinicSettingsRefusedError` for an
    unknown field or a value outside the bounds (clinic_settings_rules.py,
    where each bound's source is given). Saving nothing new saves nothing and
    returns the newest version. Audited as an update naming the fields changed.
    """
    unknown = set(changes) - set(SETTING_FIELDS)
    if unknown:
        raise ClinicSettingsRefusedError(
            _("This setting cannot be changed here."), field=sorted(unknown)[0]
        )
    if len(reason) > 300:
        raise ClinicSettingsRefusedError(_("Keep the reason under 300 characters."), field="reason")
    newest = clinic_settings_newest()
    if expected_version is not None and expected_version != newest.pk:
        if expected_version < 1 or expected_version > newest.pk:
            raise bad_version_error()
        if not ClinicSettings.objects.filter(pk=expected_version).exists():
            raise bad_version_error()
        raise _stale_error(newest, since=expected_version)
    row = ClinicSettings(
        **{name: getattr(newest, name) for name in SETTING_FIELDS},
        changed_by=changed_by,
        reason=reason.strip(),
    )
    for name, value in changes.items():
        setattr(row, name, value)
    try:
        row.full_clean(exclude=["changed_by"], validate_constraints=False)
    except ValidationError as error:
        field, messages = next(iter(error.message_dict.items()))
        raise ClinicSettingsRefusedError(messages[0], field=field) from error
    errors = bound_errors({name: getattr(row, name) for name in SETTING_FIELDS})
    if errors:
        field, message = next(iter(errors.items()))
        raise ClinicSettingsRefusedError(message, field=field)
    changed = [n for n in SETTING_FIELDS if getattr(row, n) != getattr(newest, n)]
    if not changed:
        return newest
    row.save(force_insert=True)
    audit_log(
        actor=changed_by,
        action=AuditAction.UPDATE,
        obj=row,
        changed_fields=[*changed, version_mark(row.pk)],
    )
    # This request's later reads see the new version; other requests read afresh.
    clinic_settings.forget()
    transaction.on_commit(clinic_settings.forget)
    return row


def clinic_settings_history(*, limit: int = 50) -> list[ClinicSettingsChange]:
    """The newest `limit` versions, newest first, each with what it changed
    from the version before (label, from, to, as a person reads them), who
    saved it, when, and why. Two queries whatever the history's length."""
    rows = list(ClinicSettings.objects.select_related("changed_by").order_by("-id")[: limit + 1])
    history: list[ClinicSettingsChange] = []
    for after, before in zip(rows, [*rows[1:], None], strict=True):
        if before is None and len(rows) > limit:
            break
        diffs: list[tuple[str, str, str]] = []
        if before is not None:
            for name in SETTING_FIELDS:
                if getattr(before, name) != getattr(after, name):
                    label, new = setting_text(after, name)
                    _label, old = setting_text(before, name)
                    diffs.append((label, old, new))
        history.append(ClinicSettingsChange(row=after, changes=diffs, first=before is None))
    return history


class ClinicSettingsChange:
    """One version of the history page: `row`, its `changes` as (label, from,
    to) texts, and whether it is the `first` (no version before it)."""

    def __init__(self, *, row: ClinicSettings, changes: list[tuple[str, str, str]], first: bool):
        self.row = row
        self.changes = changes
        self.first = first

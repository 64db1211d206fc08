"""The clinic's settings as the code reads them: `current()`.

The settings are append-only rows of `clinic.ClinicSettings`; the newest is
the clinic's. `current()` reads it in one query. Inside a `scope()` (each
request has one, from `ClinicSettingsScopeMiddleware`; a batch of reminders
may open one) the values are read once and kept to the scope's end, so a
page costs one query at most however often it asks; outside a scope each
call reads the database, so a task reads the settings as they are when it
runs. A save (clinic/clinic_settings_services.py) forgets the values kept
by its own scope; other scopes are other requests, which read afresh. No
cache outlives a request, so no value is ever stale after a save commits.

With no row at all (a test database emptied by a flush) the defaults of
clinic/clinic_settings_rules.py apply.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, fields, replace
from datetime import datetime, time
from typing import TYPE_CHECKING, Any, TypeVar, cast

import phonenumbers
from django.conf import settings

from clinic.clinic_settings_rules import DEFAULTS, WEEKDAYS

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

    from clinic.models import ClinicSettings


F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class ClinicSettingsValues:
    """One version of the settings, as plain values.

    `id`: the row's id (None for the built-in defaults). Times are local
    wall-clock times in the clinic's zone. `opening_hours`: Monday first,
    seven entries of (opens, closes) or None for a closed day.
    `reminder_lead_hours`: hours before a session, longest first (1 to 3).
    `clinic_phone`: E.164 ("+442079460000") or ""; `clinic_phone_display`
    the way it is printed (national format for a number of the clinic's
    own region).
    """

    id: int | None
    changed_at: datetime | None
    changed_by_id: int | None
    clinic_name: str
    clinic_address: str
    clinic_phone: str
    clinic_email: str
    opening_hours: tuple[tuple[time, time] | None, ...]
    reminder_lead_hours: tuple[int, ...]
    quiet_hours_start: time
    quiet_hours_end: time
    medical_history_valid_days: int
    allergy_test_valid_months: int
    default_session_minutes: int
    adult_record_retention_years: int
    child_record_retention_until_age: int

    @property
    def clinic_phone_display(self) -> str:
        return phone_display(self.clinic_phone)

    def opening_on(self, weekday: int) -> tuple[time, time] | None:
        """(opens, closes) on `weekday` (0 Monday ... 6 Sunday), None when closed."""
        return self.opening_hours[weekday]

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def phone_display(e164: str) -> str:
    """`e164` as printed: national format for the clinic's region, else international."""
    if not e164:
        return ""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    region = getattr(settings, "PHONENUMBER_DEFAULT_REGION", None)
    style = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if phonenumbers.region_code_for_number(number) == region
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    return phonenumbers.format_number(number, style)


def _clock(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def defaults() -> ClinicSettingsValues:
    """The built-in defaults (clinic_settings_rules.DEFAULTS), used with no row."""
    return ClinicSettingsValues(
        id=None,
        changed_at=None,
        changed_by_id=None,
        clinic_name=DEFAULTS["clinic_name"],
        clinic_address=DEFAULTS["clinic_address"],
        clinic_phone=DEFAULTS["clinic_phone"],
        clinic_email=DEFAULTS["clinic_email"],
        opening_hours=tuple(
            (_clock(opens), _clock(closes)) if opens else None
            for opens, closes in DEFAULTS["opening_hours"]
        ),
        reminder_lead_hours=tuple(DEFAULTS["reminder_hours"]),
        quiet_hours_start=_clock(DEFAULTS["quiet_hours_start"]),
        quiet_hours_end=_clock(DEFAULTS["quiet_hours_end"]),
        medical_history_valid_days=DEFAULTS["medical_history_valid_days"],
        allergy_test_valid_months=DEFAULTS["allergy_test_valid_months"],
        default_session_minutes=DEFAULTS["default_session_minutes"],
        adult_record_retention_years=DEFAULTS["adult_record_retention_years"],
        child_record_retention_until_age=DEFAULTS["child_record_retention_until_age"],
    )


def values_of(row: ClinicSettings) -> ClinicSettingsValues:
    """The plain values of one stored version."""
    opening: list[tuple[time, time] | None] = []
    for day in WEEKDAYS:
        opens, closes = getattr(row, f"{day}_opens"), getattr(row, f"{day}_closes")
        opening.append((opens, closes) if opens is not None and closes is not None else None)
    leads = (row.reminder_first_hours, row.reminder_second_hours, row.reminder_third_hours)
    return ClinicSettingsValues(
        id=row.pk,
        changed_at=row.created_at,
        changed_by_id=row.changed_by_id,
        clinic_name=row.clinic_name,
        clinic_address=row.clinic_address,
        clinic_phone=str(row.clinic_phone) if row.clinic_phone else "",
        clinic_email=row.clinic_email,
        opening_hours=tuple(opening),
        reminder_lead_hours=tuple(h for h in leads if h is not None),
        quiet_hours_start=row.quiet_hours_start,
        quiet_hours_end=row.quiet_hours_end,
        medical_history_valid_days=row.medical_history_valid_days,
        allergy_test_valid_months=row.allergy_test_valid_months,
        default_session_minutes=row.default_session_minutes,
        adult_record_retention_years=row.adult_record_retention_years,
        child_record_retention_until_age=row.child_record_retention_until_age,
    )


def _read() -> ClinicSettingsValues:
    from clinic.models import ClinicSettings

    row = ClinicSettings.objects.order_by("-id").first()
    return values_of(row) if row is not None else defaults()


# The values kept by the open scope: a one-item list (empty until read), or
# None outside any scope.
_kept: ContextVar[list[ClinicSettingsValues] | None] = ContextVar(
    "clinic_settings_kept", default=None
)


def current() -> ClinicSettingsValues:
    """The clinic's settings now: the newest stored version.

    One query, once per `scope()` (every request is one); outside a scope,
    one query per call. Raises nothing of its own (database errors pass up).
    """
    kept = _kept.get()
    if kept is None:
        return _read()
    if not kept:
        kept.append(_read())
    return kept[0]


def current_or_defaults() -> ClinicSettingsValues:
    """`current()`, or the defaults when the database cannot answer: for the
    error pages, which must render whatever broke."""
    from django.db import DatabaseError

    try:
        return current()
    except DatabaseError:
        return defaults()


def printed(values: ClinicSettingsValues | None = None) -> dict[str, str]:
    """The clinic's name, address, phone and email as sheets, emails and
    pages print them (template context names `clinic_name`,
    `clinic_address`, `clinic_phone`, `clinic_email`). The email falls back
    to the address the clinic's mail is sent from."""
    values = values or current()
    return {
        "clinic_name": values.clinic_name,
        "clinic_address": values.clinic_address,
        "clinic_phone": values.clinic_phone_display,
        "clinic_email": values.clinic_email or settings.DEFAULT_FROM_EMAIL,
    }


def forget() -> None:
    """Drop the values kept by the open scope (after a save in it)."""
    kept = _kept.get()
    if kept is not None:
        kept.clear()


@contextlib.contextmanager
def scope() -> Iterator[None]:
    """Read the settings at most once until the block ends (inside another
    scope, the outer one's values serve)."""
    if _kept.get() is not None:
        yield
        return
    token = _kept.set([])
    try:
        yield
    finally:
        _kept.reset(token)


def read_once(func: F) -> F:
    """Decorate a function that judges with the settings (a safety gate): it
    reads them once, on entry, in a scope of its own (or the caller's), so
    it costs one query whatever it judges, and the same one every call."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with scope():
            current()
            return func(*args, **kwargs)

    return cast(F, wrapper)


@contextlib.contextmanager
def overridden(**changes: Any) -> Iterator[ClinicSettingsValues]:
    """Read the clinic's settings with `changes` (names of
    ClinicSettingsValues) until the block ends, without saving them: for a
    test that needs a value the clinic has not saved. Never for a request."""
    values = replace(current(), **changes)
    token = _kept.set([values])
    try:
        yield values
    finally:
        _kept.reset(token)


class ClinicSettingsScopeMiddleware:
    """Each request reads the clinic's settings at most once."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with scope():
            return self.get_response(request)

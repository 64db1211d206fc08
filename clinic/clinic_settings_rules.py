"""The safe bounds of the clinic's settings, each with the reason shown to the
manager beside the field.

One table, read by the model's check constraints (the numbers are copied
into the migration that makes them), the settings form and the service
(clinic/clinic_settings_services.py), so the three never disagree. No model
is imported here: clinic/models.py imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time
from typing import Any

from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class Bound:
    """An inclusive range for a whole-number setting, in `unit`, with a step."""

    minimum: int
    maximum: int
    reason: Any  # lazy translation: why these limits
    step: int = 1


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
WEEKDAY_LABELS = (
    _("Monday"),
    _("Tuesday"),
    _("Wednesday"),
    _("Thursday"),
    _("Friday"),
    _("Saturday"),
    _("Sunday"),
)

MAX_REMINDERS = 3

# Quiet hours run overnight, within these (inclusive, clinic time): never a
# message in the small hours, and the morning's two-hour reminders still go out
# before the first sessions. Copied into clinic 0016's check constraint.
QUIET_START_EARLIEST, QUIET_START_LATEST = time(19), time(23)
QUIET_END_EARLIEST, QUIET_END_LATEST = time(6), time(9)

BOUNDS: dict[str, Bound] = {
    # Gate 1 (treatments/gates.py; design.md "Clinical safety gates" 1).
    "medical_history_valid_days": Bound(
        30,
        365,
        _(
            "At most 365 days: a history older than a year misses new conditions and "
            "medicines, so the safety check never accepts one. At least 30 days: the "
            "questions asked on the day of each session already cover what changes "
            "from week to week."
        ),
    ),
    # Gate 4 (treatments/gates.py; domain.md "Allergy test").
    "allergy_test_valid_months": Bound(
        1,
        6,
        _(
            "At most 6 months: an older negative reading no longer says how the skin "
            "reacts today, so the safety check never accepts one. At least 1 month: a "
            "course of weekly or fortnightly sessions would otherwise need a new test "
            "part-way through."
        ),
    ),
    "reminder_hours": Bound(
        1,
        168,
        _(
            "Between 1 and 168 hours (a week) before the session: sooner leaves the "
            "patient no time to act on it, earlier is forgotten by the day. At most "
            "three reminders a session."
        ),
    ),
    # Protocol.session_minutes and the booking form hold sessions to 10-240 minutes.
    "default_session_minutes": Bound(
        10,
        240,
        _(
            "Between 10 and 240 minutes, in steps of 5, as a protocol's session and a "
            "booking are: a mesotherapy session takes 30 to 60 minutes."
        ),
        step=5,
    ),
    # UK Records Management Code of Practice (NHSX 2021), retention schedule:
    # adult health records 8 years after the conclusion of treatment.
    "adult_record_retention_years": Bound(
        8,
        30,
        _(
            "At least 8 years after the last treatment (UK Records Management Code of "
            "Practice, adult health records). At most 30: keeping records longer than "
            "the clinic needs them breaks UK GDPR's storage limitation."
        ),
    ),
    # Same schedule: children's records until the 25th birthday, or the 26th if
    # the patient was 17 at the conclusion of treatment.
    "child_record_retention_until_age": Bound(
        25,
        40,
        _(
            "At least until the 25th birthday (the 26th if the patient was 17 when "
            "treatment ended) for patients treated as children (UK Records Management "
            "Code of Practice). At most the 40th: longer breaks UK GDPR's storage "
            "limitation."
        ),
    ),
}

# The bound each bounded setting keeps to (the three reminders share one).
BOUND_OF_FIELD: dict[str, str] = {
    "medical_history_valid_days": "medical_history_valid_days",
    "allergy_test_valid_months": "allergy_test_valid_months",
    "default_session_minutes": "default_session_minutes",
    "adult_record_retention_years": "adult_record_retention_years",
    "child_record_retention_until_age": "child_record_retention_until_age",
    "reminder_first_hours": "reminder_hours",
    "reminder_second_hours": "reminder_hours",
    "reminder_third_hours": "reminder_hours",
}

REASONS: dict[str, Any] = {
    "quiet_hours": _(
        "No text or email reaches patients between these times (clinic time): what "
        "falls due is held until the end. They run overnight: they start between "
        "19:00 and 23:00, so nobody is messaged in the small hours, and end between "
        "06:00 and 09:00, so the morning's reminders still arrive before the first "
        "sessions."
    ),
    "opening_hours": _(
        "The calendar's day runs over them when no practitioner's working hours are "
        "set. Leave both times empty for a day the clinic is closed; closing must be "
        "after opening."
    ),
    "contact": _("Printed on aftercare sheets, consent PDFs and in emails and text messages."),
}

# What the clinic uses until a manager first saves the settings (and what the
# first row holds): the values the environment gave before the settings moved
# to the database.
DEFAULTS: dict[str, Any] = {
    "clinic_name": "Meso Clinic",
    "clinic_address": "",
    "clinic_phone": "",
    "clinic_email": "",
    "medical_history_valid_days": 365,
    "allergy_test_valid_months": 6,
    "reminder_hours": (48, 2),
    "quiet_hours_start": "21:00",
    "quiet_hours_end": "08:00",
    "default_session_minutes": 45,
    "adult_record_retention_years": 8,
    "child_record_retention_until_age": 25,
    # Monday to Saturday 08:00-19:00 (the calendar's day before opening hours
    # were a setting), Sunday closed.
    "opening_hours": (*(("08:00", "19:00"),) * 6, (None, None)),
}

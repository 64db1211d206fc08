"""Reminders: planning them with what they are about, and sending the due ones.

- `planning`: rows planned in the caller's transaction (booking, allergy
  test, course), cancelled when what they are about goes away.
- `quiet_hours`: the nightly window in which patients get no message.
- `dispatch`: the beat tick's claim, send and record, with no transaction
  open across a network call.

Callers import from here; the names below are the public ones.
"""

from __future__ import annotations

from treatments.services.reminders.dispatch import (
    BACKOFF_BASE,
    MAX_ATTEMPTS,
    DeliveryError,
    DispatchResult,
    backoff,
    failure_text,
    message_id_for,
    reminders_dispatch_batch,
    reminders_dispatch_due,
    send_email,
    send_sms,
)
from treatments.services.reminders.planning import (
    MAINTENANCE_LOCAL_TIME,
    booking_cancel_reason,
    patient_channel,
    patient_no_reminder_reason,
    reminder_cancel_allergy_reading,
    reminder_plan_allergy_reading,
    reminders_cancel_for_booking,
    reminders_plan_course,
    reminders_plan_for_booking,
)
from treatments.services.reminders.quiet_hours import (
    BEFORE_QUIET,
    in_quiet_hours,
    patient_due_at,
    quiet_hours,
    quiet_hours_end_after,
    quiet_hours_start_before,
)

__all__ = [
    "BACKOFF_BASE",
    "BEFORE_QUIET",
    "MAINTENANCE_LOCAL_TIME",
    "MAX_ATTEMPTS",
    "DeliveryError",
    "DispatchResult",
    "backoff",
    "booking_cancel_reason",
    "failure_text",
    "in_quiet_hours",
    "message_id_for",
    "patient_channel",
    "patient_due_at",
    "patient_no_reminder_reason",
    "quiet_hours",
    "quiet_hours_end_after",
    "quiet_hours_start_before",
    "reminder_cancel_allergy_reading",
    "reminder_plan_allergy_reading",
    "reminders_cancel_for_booking",
    "reminders_dispatch_batch",
    "reminders_dispatch_due",
    "reminders_plan_course",
    "reminders_plan_for_booking",
    "send_email",
    "send_sms",
]

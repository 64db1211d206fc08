"""Planning reminders with what they are about: bookings, allergy readings, courses.

PostgreSQL is the schedule. Each planning function is one call made inside
the caller's transaction (booking, allergy test, course), safe to call twice:
the unique constraints on Reminder and the checks here mean a second call
plans nothing new. Lead times are real hours before the session
(the clinic's settings, clinic/clinic_settings.py); messages to patients are kept out of quiet hours
(quiet_hours.py).
"""

from __future__ import annotations

from datetime import time, timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from clinic import clinic_settings
from clinic.localtime import local_instant
from patients.models import Patient
from patients.models import ReminderChannel as PatientChannel
from treatments.models import (
    AllergyTest,
    Booking,
    BookingStatus,
    CourseStatus,
    Reminder,
    ReminderChannel,
    ReminderKind,
    ReminderStatus,
    TreatmentCourse,
)
from treatments.services.reminders.quiet_hours import patient_due_at

# Maintenance recalls go out at this local time on the day they are due.
MAINTENANCE_LOCAL_TIME = time(10, 0)


def patient_channel(patient: Patient) -> str | None:
    """The channel a patient's reminders go by ("email" or "sms"), or None
    when no reminder may be planned for them.

    The patient's own choice (`reminder_channel`), given only when they
    agreed to receive messages (`consents_to_messages`) and have the
    address that channel needs. Raises nothing.
    """
    if not patient.consents_to_messages:
        return None
    if patient.reminder_channel == PatientChannel.EMAIL and patient.email:
        return ReminderChannel.EMAIL
    if patient.reminder_channel == PatientChannel.SMS and patient.phone:
        return ReminderChannel.SMS
    return None


def patient_no_reminder_reason(patient: Patient) -> str:
    """Why a patient gets no reminders, a sentence for reception; empty when
    they do (see patient_channel). Raises nothing."""
    if patient_channel(patient) is not None:
        return ""
    if patient.reminder_channel == PatientChannel.NONE:
        return _("This patient asked for no reminders, so none are planned.")
    if not patient.consents_to_messages:
        return _("This patient has not agreed to receive messages, so no reminders are planned.")
    return _("This patient has no address for their chosen channel, so no reminders are planned.")


# A row being sent is cancelled as a planned one is: the dispatcher reads it
# again just before it goes, and records an outcome only on a row still
# "sending" under its lease, so a cancelled row is neither sent nor overwritten.
OPEN = (ReminderStatus.PLANNED, ReminderStatus.SENDING)


def _cancel(*, reason: str, **filters: object) -> int:
    return Reminder.objects.filter(status__in=OPEN, **filters).update(
        status=ReminderStatus.CANCELLED,
        error=reason[:300],
        claimed_until=None,
        updated_at=timezone.now(),
    )


def booking_cancel_reason(booking: Booking) -> str:
    """The sentence the log shows for a reminder of `booking` that will not
    go because the booking is no longer booked. Raises nothing."""
    if booking.status == BookingStatus.CANCELLED:
        return _("The booking was cancelled.")
    if booking.status == BookingStatus.NO_SHOW:
        return _("The patient did not come.")
    return _("The booking is no longer booked.")


# --- Bookings ------------------------------------------------------------------------------


@transaction.atomic
def reminders_plan_for_booking(*, booking: Booking) -> list[Reminder]:
    """Plan the session reminders of `booking`, after it is created, moved or
    marked (booking services call it in their transaction).

    Planned and sending rows for any other start time (the slot it was moved
    from) are cancelled; a booking no longer booked has them cancelled
    (reminders_cancel_for_booking). Otherwise one row per lead time of
    the clinic's settings' `reminder_lead_hours` (1 to 3 of them, 1 to 168
    hours, read as the booking is saved; real hours before the start, so a 48-hour lead
    across a clock change is 48 hours) is planned by the patient's channel
    (patient_channel), due when patient_due_at allows it (quiet hours,
    from the settings too). A lead time already past is not
    planned. Booking the next session of a course closes the course's
    "next session not booked" task. Safe to call twice: a row already
    planned, sending or sent for this slot is kept. Returns the rows now
    planned. Raises ValidationError only for a row the model refuses (a bug,
    not an input error).
    """
    Reminder.objects.filter(booking=booking, kind=ReminderKind.SESSION, status__in=OPEN).exclude(
        slot_starts_at=booking.starts_at
    ).update(
        status=ReminderStatus.CANCELLED,
        error=_("The booking moved to another time."),
        claimed_until=None,
        updated_at=timezone.now(),
    )
    if booking.status != BookingStatus.BOOKED:
        reminders_cancel_for_booking(booking=booking)
        return []
    if booking.course_id is not None:
        # The next session of the course is booked: reception's follow-up is done.
        _cancel(
            course_id=booking.course_id,
            kind=ReminderKind.COURSE_NEXT,
            reason=_("The next session was booked."),
        )
    patient = booking.patient
    channel = patient_channel(patient)
    existing = {
        row.lead_minutes: row
        for row in Reminder.objects.select_for_update().filter(
            booking=booking, kind=ReminderKind.SESSION, slot_starts_at=booking.starts_at
        )
    }
    now = timezone.now()
    planned: list[Reminder] = []
    for hours in sorted(set(clinic_settings.current().reminder_lead_hours), reverse=True):
        lead = timedelta(hours=hours)
        # Arithmetic on UTC instants: a 48-hour lead across a clock change is
        # 48 real hours, not "the same wall-clock time two days before".
        intended = booking.starts_at - lead
        row = existing.get(int(lead.total_seconds() // 60))
        if row is not None and row.status != ReminderStatus.CANCELLED:
            if row.status == ReminderStatus.PLANNED:
                planned.append(row)
            continue
        if channel is None:
            continue
        due = patient_due_at(intended, now=now, slot_starts_at=booking.starts_at)
        if due is None:
            continue
        if row is None:
            row = Reminder(
                kind=ReminderKind.SESSION,
                patient=patient,
                booking=booking,
                course_id=booking.course_id,
                lead_minutes=int(lead.total_seconds() // 60),
                slot_starts_at=booking.starts_at,
            )
        # A row cancelled earlier for this very slot (moved away, then back) is reopened.
        row.channel = channel
        row.intended_at = intended
        row.due_at = due
        row.status = ReminderStatus.PLANNED
        row.claimed_until = None
        row.attempts = 0
        row.error = ""
        row.full_clean(validate_unique=False, validate_constraints=False)
        row.save()
        planned.append(row)
    return planned


@transaction.atomic
def reminders_cancel_for_booking(*, booking: Booking) -> int:
    """Cancel the planned reminders of a cancelled or missed `booking`, and
    those being sent at this moment (the dispatcher reads each row again just
    before it sends, and never records "sent" over a cancelled row), with the
    reason the log shows. Returns how many were cancelled. Raises nothing."""
    return _cancel(booking=booking, reason=booking_cancel_reason(booking))


# --- Allergy readings and courses -----------------------------------------------------------


@transaction.atomic
def reminder_plan_allergy_reading(*, test: AllergyTest) -> Reminder | None:
    """A task for the practitioner who gave `test`, due at its read_due_at
    (given_at + 24 hours, the reading interval of domain.md), plus an email
    to them when they have an address. Staff tasks are not held by quiet
    hours: a reading is due when it is due. Returns the row (the existing
    one when called twice), or None for a test already read. Raises
    ValidationError only for a row the model refuses (a bug)."""
    if test.read_at is not None:
        return None
    existing = Reminder.objects.filter(allergy_test=test, kind=ReminderKind.ALLERGY_READING).first()
    if existing is not None:
        return existing
    row = Reminder(
        kind=ReminderKind.ALLERGY_READING,
        channel=ReminderChannel.TASK,
        patient_id=test.patient_id,
        allergy_test=test,
        recipient_id=test.given_by_id,
        intended_at=test.read_due_at,
        due_at=test.read_due_at,
    )
    row.full_clean(validate_unique=False, validate_constraints=False)
    row.save()
    return row


@transaction.atomic
def reminder_cancel_allergy_reading(*, test: AllergyTest) -> int:
    """`test` was read: its reminder, if still planned or being sent, is cancelled.
    Returns how many rows were cancelled (0 or 1). Raises nothing."""
    return _cancel(
        allergy_test=test, kind=ReminderKind.ALLERGY_READING, reason=_("The test was read.")
    )


@transaction.atomic
def reminders_plan_course(*, course: TreatmentCourse) -> Reminder | None:
    """After a session of `course` is completed, and after the course closes.

    Course completed: a maintenance recall to the patient at
    MAINTENANCE_LOCAL_TIME (10:00 clinic time) on the course's
    maintenance_due_on (the protocol's maintenance interval, domain.md), by
    their channel and outside quiet hours. Stopped: cancel what is planned.
    Still running: nothing to plan; reception's list of courses whose next
    session is not booked reads the course itself
    (treatments.selectors.reminders.courses_to_book). Safe to call twice (one
    row per course, kind and moment). Returns the row, or None when nothing
    is planned. Raises ValidationError only for a row the model refuses (a
    bug).
    """
    if course.status == CourseStatus.STOPPED:
        _cancel(course=course, booking__isnull=True, reason=_("The course was stopped."))
        return None
    if course.status == CourseStatus.COMPLETED:
        _cancel(
            course=course,
            kind=ReminderKind.COURSE_NEXT,
            reason=_("The course is complete."),
        )
        return _plan_maintenance(course)
    return None


def _plan_maintenance(course: TreatmentCourse) -> Reminder | None:
    if course.maintenance_due_on is None:
        return None
    patient = course.patient
    intended = local_instant(course.maintenance_due_on, MAINTENANCE_LOCAL_TIME)
    existing = Reminder.objects.filter(
        course=course, kind=ReminderKind.MAINTENANCE, intended_at=intended
    ).first()
    if existing is not None:
        return existing
    channel = patient_channel(patient)
    due = patient_due_at(intended, now=timezone.now())
    if channel is None or due is None:
        return None
    return _plan_once(
        Reminder(
            kind=ReminderKind.MAINTENANCE,
            channel=channel,
            patient=patient,
            course=course,
            intended_at=intended,
            due_at=due,
        )
    )


def _plan_once(row: Reminder) -> Reminder:
    existing = Reminder.objects.filter(
        course_id=row.course_id,
        booking__isnull=True,
        kind=row.kind,
        intended_at=row.intended_at,
    ).first()
    if existing is not None:
        return existing
    row.full_clean(validate_unique=False, validate_constraints=False)
    row.save()
    return row

"""The course engine: propose a whole course of sessions, book it in one go,
and close it (with its maintenance date) when its last session is done.

Intervals count in weeks so that every session falls on the same weekday:
weekly is 7 days, every two weeks 14 days and monthly 28 days (the same
weekday four weeks later), each at the same local wall-clock time, so a 10:00
session stays at 10:00 when the clocks change.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from dateutil.relativedelta import relativedelta
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from clinic import dates
from clinic.audit import audit_log
from clinic.concurrency import submission_check, submission_marks
from clinic.localtime import LocalTimeError, local_to_utc, to_local
from clinic.models import AuditAction, User
from patients.locking import patient_hold, patient_row_lock
from patients.models import Patient
from treatments.models import (
    BookingStatus,
    CourseStatus,
    Interval,
    Protocol,
    Room,
    TreatmentCourse,
)
from treatments.selectors.booking import (
    Busy,
    busy_all,
    closures_between,
    free_starts_on_day,
    working_hours_map,
)
from treatments.services.booking import BookingRefusedError, booking_create

INTERVAL_DAYS = {Interval.WEEKLY: 7, Interval.FORTNIGHTLY: 14, Interval.MONTHLY: 28}

# How far past its planned day a session may slip when that day is full.
SLIP_DAYS = 6


@dataclass
class ProposedSession:
    number: int
    planned_on: date
    starts_at: datetime | None
    ends_at: datetime | None
    note: str = ""

    @property
    def moved(self) -> bool:
        return bool(self.note)


class CourseRefusedError(BookingRefusedError):
    """One session of the course could not be booked: nothing was saved."""

    def __init__(self, message: str, *, number: int) -> None:
        super().__init__(message)
        self.number = number


def course_propose(
    *,
    patient: Patient,
    protocol: Protocol,
    practitioner: User,
    room: Room,
    first_start: datetime,
    sessions: int | None = None,
    interval: str | None = None,
) -> list[ProposedSession]:
    """The protocol's sessions at its interval, each at the first session's
    local time when that is free and within working hours, otherwise the
    nearest free time that day, otherwise the first free time in the next days.
    A fixed handful of queries whatever the number of sessions."""
    count = sessions or protocol.default_sessions
    step = timedelta(days=INTERVAL_DAYS[Interval(interval or protocol.interval)])
    duration = timedelta(minutes=protocol.session_minutes)
    local_first = to_local(first_start)
    wanted_time = local_first.time().replace(tzinfo=None)
    first_day = local_first.date()
    last_day = first_day + step * (count - 1) + timedelta(days=SLIP_DAYS + 1)
    hours = working_hours_map([practitioner.pk])
    closed = closures_between(first_day, last_day)
    busy: list[Busy] = busy_all(
        practitioner=practitioner,
        room=room,
        patient=patient,
        start=first_start - timedelta(days=1),
        end=first_start + step * count + timedelta(days=SLIP_DAYS + 2),
    )
    now = timezone.now()
    proposals: list[ProposedSession] = []
    not_before = now
    for index in range(count):
        planned = first_day + step * index
        found: datetime | None = None
        note = ""
        for slip in range(SLIP_DAYS + 1):
            day = planned + timedelta(days=slip)
            if day in closed:
                continue
            starts = free_starts_on_day(
                day=day,
                practitioner=practitioner,
                duration=duration,
                hours=hours,
                busy=busy,
                not_before=not_before,
            )
            if not starts:
                continue
            if slip == 0:
                try:
                    wanted = local_to_utc(day, wanted_time, fold=0)
                except LocalTimeError:
                    wanted = None
                if wanted is not None and wanted in starts:
                    found = wanted
                    break
                target = wanted or starts[0]
                found = min(starts, key=lambda s: (abs(s - target), s))
                note = _("Moved to the nearest free time that day.")
            else:
                found = starts[0]
                reason = closed.get(planned)
                note = (
                    _("Clinic closed on the planned day (%(reason)s): moved to the next free day.")
                    % {"reason": reason}
                    if reason
                    else _("No free time on the planned day: moved to the next free day.")
                )
            break
        if found is None:
            proposals.append(
                ProposedSession(
                    index + 1, planned, None, None, _("No free time found near this date.")
                )
            )
            continue
        ends = found + duration
        busy.append(Busy(found, ends))
        not_before = ends
        proposals.append(ProposedSession(index + 1, planned, found, ends, note))
    return proposals


@transaction.atomic
def course_book(
    *,
    patient: Patient,
    protocol: Protocol,
    practitioner: User,
    room: Room,
    starts: list[datetime],
    interval: str,
    created_by: User,
    submission_token: uuid.UUID | None = None,
) -> TreatmentCourse:
    """The course and every one of its bookings, or nothing at all: `patient`
    with `practitioner` in `room` for `protocol`, one session at each of
    `starts` (aware, in order), `interval` as the course's rhythm.

    `submission_token` is the confirmation form's one-time token. Raises
    `AlreadySubmittedError` (clinic.concurrency, with `.obj`, the course)
    when this very confirmation was already saved (sent twice, even at the
    same instant): the course is booked once. Raises `CourseRefusedError`
    (with the session's number) when a session cannot be booked."""
    # First the token: a second post of the same form waits here for the first.
    submission_check(TreatmentCourse, submission_token, by=created_by)
    if not starts:
        raise CourseRefusedError(_("A course needs at least one session."), number=0)
    ordered = sorted(starts)
    if ordered != starts:
        raise CourseRefusedError(_("Put the sessions in date order."), number=0)
    # A record being merged at this moment: the course goes to the record that stays.
    patient = patient_hold(patient)
    course = TreatmentCourse(
        patient=patient,
        protocol=protocol,
        planned_sessions=len(starts),
        interval=interval,
        created_by=created_by,
    )
    course.full_clean()
    course.save()
    duration = timedelta(minutes=protocol.session_minutes)
    for number, starts_at in enumerate(starts, start=1):
        try:
            booking_create(
                patient=patient,
                practitioner=practitioner,
                room=room,
                protocol=protocol,
                starts_at=starts_at,
                ends_at=starts_at + duration,
                created_by=created_by,
                course=course,
            )
        except BookingRefusedError as error:
            local = to_local(starts_at)
            raise CourseRefusedError(
                _("Session %(number)s (%(when)s): %(reason)s")
                % {
                    "number": number,
                    "when": dates.day_time(local),
                    "reason": error.message,
                },
                number=number,
            ) from error
    audit_log(
        actor=created_by,
        action=AuditAction.CREATE,
        obj=course,
        patient_ref=patient.uuid,
        changed_fields=[
            "protocol",
            "planned_sessions",
            "interval",
            *submission_marks(submission_token),
        ],
    )
    return course


@transaction.atomic
def course_session_completed(
    *, course: TreatmentCourse, completed_by: User | None = None
) -> TreatmentCourse:
    """Close the course once its last planned session is completed, and set
    its maintenance date: the last session's local date plus the protocol's
    maintenance interval in calendar months."""
    # The patient held, then the course alone, then read with what it points
    # at (patients.locking): a merge moving the course finishes first, or waits.
    patient_row_lock(TreatmentCourse, course.pk, patient_id=course.patient_id)
    current = TreatmentCourse.objects.select_related("protocol", "patient").get(pk=course.pk)
    if current.status != CourseStatus.ACTIVE:
        return current
    done = list(
        current.bookings.filter(status=BookingStatus.COMPLETED)
        .order_by("-starts_at")
        .values_list("starts_at", flat=True)
    )
    if len(done) < current.planned_sessions:
        return current
    last_day = to_local(done[0]).date()
    current.status = CourseStatus.COMPLETED
    current.maintenance_due_on = last_day + relativedelta(
        months=current.protocol.maintenance_months
    )
    current.full_clean()
    current.save(update_fields=["status", "maintenance_due_on"])
    audit_log(
        actor=completed_by,
        actor_label="system",
        action=AuditAction.UPDATE,
        obj=current,
        patient_ref=current.patient.uuid,
        changed_fields=["status", "maintenance_due_on"],
    )
    return current

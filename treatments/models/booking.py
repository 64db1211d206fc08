"""Rooms, working hours, clinic closures, treatment courses and bookings.

Double booking of a practitioner, room or patient is refused by PostgreSQL
itself (exclusion constraints over the booked time range).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import (
    DateTimeRangeField,
    RangeBoundary,
    RangeOperators,
)
from django.db import models
from django.db.models import F, Q
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from treatments.models.catalogue import Interval, Protocol

if TYPE_CHECKING:
    pass


# --- Rooms, working hours and closures -----------------------------------------------


class Room(models.Model):
    """A treatment room: a booking holds one, and a room holds one booking at a time."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(_("name"), max_length=80, unique=True)
    active = models.BooleanField(_("in use"), default=True)
    # Raised by every save of the services: an edit opened at an older version
    # is refused (clinic.concurrency), never applied over someone else's.
    version = models.PositiveIntegerField(_("record version"), default=1, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name = _("room")
        verbose_name_plural = _("rooms")

    def __str__(self) -> str:
        return self.name


class WorkingHours(models.Model):
    """When a practitioner works on a weekday, in the clinic's local time."""

    practitioner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="working_hours"
    )
    weekday = models.PositiveSmallIntegerField(
        _("weekday"), help_text=_("0 is Monday, 6 is Sunday.")
    )
    starts = models.TimeField(_("from"))
    ends = models.TimeField(_("until"))

    class Meta:
        ordering = ["practitioner", "weekday", "starts"]
        verbose_name = _("working hours")
        verbose_name_plural = _("working hours")
        constraints = [
            models.CheckConstraint(condition=Q(weekday__lte=6), name="hours_weekday_range"),
            models.CheckConstraint(
                condition=Q(ends__gt=F("starts")),
                name="hours_end_after_start",
                violation_error_message=_("The end must be after the start."),
            ),
            models.UniqueConstraint(
                fields=["practitioner", "weekday", "starts"], name="hours_once_per_start"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.practitioner_id} day {self.weekday} {self.starts}-{self.ends}"


class ClinicClosure(models.Model):
    """Days the clinic is closed (bank holidays, training days): nothing is booked.

    How far back and ahead a closure may lie depends on the day it is set
    (treatments.services.booking.closure_dates_problem); its length does not,
    so the database holds that: a year at most."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    starts_on = models.DateField(_("first day closed"))
    ends_on = models.DateField(_("last day closed"))
    reason = models.CharField(_("reason"), max_length=150)
    # Raised by every save of the services: an edit opened at an older version
    # is refused (clinic.concurrency), never applied over someone else's.
    version = models.PositiveIntegerField(_("record version"), default=1, editable=False)

    class Meta:
        ordering = ["starts_on"]
        verbose_name = _("clinic closure")
        verbose_name_plural = _("clinic closures")
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_on__gte=F("starts_on")),
                name="closure_ends_after_start",
                violation_error_message=_("The last day must not be before the first."),
            ),
            # 366 days with both ends included (migration 0010 checks new rows only).
            models.CheckConstraint(
                condition=Q(ends_on__lte=F("starts_on") + timedelta(days=365)),
                name="closure_at_most_a_year",
                violation_error_message=_("A closure lasts at most a year (366 days)."),
            ),
        ]

    def __str__(self) -> str:
        return f"Closed {self.starts_on} to {self.ends_on}: {self.reason}"

    def get_absolute_url(self) -> str:
        return reverse("treatments:closure_edit", kwargs={"closure": self.uuid})


# --- Courses and bookings --------------------------------------------------------------


class CourseStatus(models.TextChoices):
    ACTIVE = "active", _("In progress")
    COMPLETED = "completed", _("Completed")
    STOPPED = "stopped", _("Stopped")


class TreatmentCourse(models.Model):
    """A series of sessions of one protocol for one patient."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, related_name="courses"
    )
    protocol = models.ForeignKey(Protocol, on_delete=models.PROTECT, related_name="courses")
    planned_sessions = models.PositiveSmallIntegerField(_("sessions planned"))
    interval = models.CharField(_("interval"), max_length=12, choices=Interval.choices)
    status = models.CharField(
        _("status"), max_length=10, choices=CourseStatus.choices, default=CourseStatus.ACTIVE
    )
    # Set when the last session is completed: the protocol's maintenance interval later.
    maintenance_due_on = models.DateField(_("maintenance due"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", editable=False
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("treatment course")
        verbose_name_plural = _("treatment courses")
        indexes = [
            # Reception's follow-up list reads the running courses only, a
            # few hundred among a decade of finished ones.
            models.Index(
                fields=["created_at"],
                condition=Q(status=CourseStatus.ACTIVE),
                name="course_running_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(planned_sessions__gte=1, planned_sessions__lte=20),
                name="course_sessions_range",
                violation_error_message=_("A course has between 1 and 20 sessions."),
            ),
        ]

    def __str__(self) -> str:
        return f"Course {self.uuid}"

    def get_absolute_url(self) -> str:
        return reverse(
            "treatments:course_detail", kwargs={"patient": self.patient.uuid, "course": self.uuid}
        )


class BookingStatus(models.TextChoices):
    BOOKED = "booked", _("Booked")
    ARRIVED = "arrived", _("Arrived")
    COMPLETED = "completed", _("Completed")
    CANCELLED = "cancelled", _("Cancelled")
    NO_SHOW = "no_show", _("Did not come")


# The one table of legal moves; Booking.transition_to enforces it.
BOOKING_TRANSITIONS: dict[str, frozenset[str]] = {
    BookingStatus.BOOKED: frozenset(
        {BookingStatus.ARRIVED, BookingStatus.CANCELLED, BookingStatus.NO_SHOW}
    ),
    BookingStatus.ARRIVED: frozenset(
        {BookingStatus.COMPLETED, BookingStatus.CANCELLED, BookingStatus.BOOKED}
    ),
    BookingStatus.COMPLETED: frozenset(),
    BookingStatus.CANCELLED: frozenset(),
    BookingStatus.NO_SHOW: frozenset(),
}

# Bookings in these states hold their time: practitioner, room and patient
# cannot be double-booked over them.
HOLDING_STATUSES = (BookingStatus.BOOKED, BookingStatus.ARRIVED, BookingStatus.COMPLETED)
# A booking in one of these states has happened, or never will, whatever its
# start: it shows its outcome (its status), never whether it is ready to treat.
FINISHED_STATUSES = (BookingStatus.COMPLETED, BookingStatus.CANCELLED, BookingStatus.NO_SHOW)


class IllegalTransitionError(Exception):
    """A booking cannot move from its status to the one asked for."""


class TsTzRange(models.Func):
    function = "TSTZRANGE"
    output_field = DateTimeRangeField()


def _no_overlap(field: str, name: str) -> ExclusionConstraint:
    return ExclusionConstraint(
        name=name,
        expressions=[
            (TsTzRange("starts_at", "ends_at", RangeBoundary()), RangeOperators.OVERLAPS),
            (field, RangeOperators.EQUAL),
        ],
        condition=Q(status__in=HOLDING_STATUSES),
        violation_error_code="slot_taken",
        violation_error_message=_("This slot was just taken. Choose another time."),
    )


class Booking(models.Model):
    """A treatment session in the calendar: patient, practitioner, room, time.

    Times are stored in UTC and shown in the clinic's zone. PostgreSQL refuses
    overlapping bookings that hold their time for the same practitioner, room
    or patient (exclusion constraints), so two receptionists can never take
    the same slot, whatever the timing.
    """

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, related_name="bookings"
    )
    practitioner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="bookings"
    )
    room = models.ForeignKey(Room, on_delete=models.PROTECT, related_name="bookings")
    protocol = models.ForeignKey(Protocol, on_delete=models.PROTECT, related_name="bookings")
    course = models.ForeignKey(
        TreatmentCourse,
        on_delete=models.PROTECT,
        related_name="bookings",
        null=True,
        blank=True,
    )
    starts_at = models.DateTimeField(_("starts"))
    ends_at = models.DateTimeField(_("ends"))
    status = models.CharField(
        _("status"), max_length=10, choices=BookingStatus.choices, default=BookingStatus.BOOKED
    )
    cancel_reason = models.CharField(_("reason for cancelling"), max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", editable=False
    )
    updated_at = models.DateTimeField(auto_now=True)
    # Raised by every save of the services: an edit opened at an older version
    # is refused (clinic.concurrency), never applied over someone else's.
    version = models.PositiveIntegerField(_("record version"), default=1, editable=False)
    # The one-time token of the form that created this row: the same form sent
    # twice (a double click, a resent request) finds it instead of a second row.
    submission_token = models.UUIDField(null=True, blank=True, unique=True, editable=False)

    class Meta:
        ordering = ["starts_at", "id"]
        verbose_name = _("booking")
        verbose_name_plural = _("bookings")
        indexes = [
            models.Index(fields=["starts_at"], name="booking_starts_idx"),
            models.Index(fields=["patient", "starts_at"], name="booking_patient_idx"),
            models.Index(fields=["course", "starts_at"], name="booking_course_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")),
                name="booking_ends_after_start",
                violation_error_message=_("The end must be after the start."),
            ),
            models.CheckConstraint(
                condition=~Q(status="cancelled") | ~Q(cancel_reason=""),
                name="booking_cancel_has_reason",
                violation_error_message=_("Say why the booking is cancelled."),
            ),
            _no_overlap("practitioner", "booking_no_overlap_practitioner"),
            _no_overlap("room", "booking_no_overlap_room"),
            _no_overlap("patient", "booking_no_overlap_patient"),
        ]

    def __str__(self) -> str:
        return f"Booking {self.uuid}"

    def get_absolute_url(self) -> str:
        return reverse("treatments:booking_detail", kwargs={"booking": self.uuid})

    def transition_to(self, status: str) -> None:
        """Move to `status` if the transition table allows it."""
        if status not in BOOKING_TRANSITIONS[self.status]:
            raise IllegalTransitionError(
                _("A booking that is “%(current)s” cannot become “%(new)s”.")
                % {
                    "current": BookingStatus(self.status).label,
                    "new": BookingStatus(status).label,
                }
            )
        self.status = status


class BookingEventKind(models.TextChoices):
    CREATED = "created", _("booked")
    MOVED = "moved", _("moved")
    CANCELLED = "cancelled", _("cancelled")
    ARRIVED = "arrived", _("marked arrived")
    NO_SHOW = "no_show", _("marked as not come")
    COMPLETED = "completed", _("completed")
    REOPENED = "reopened", _("set back to booked")


class BookingEvent(models.Model):
    """One change in a booking's history: who did what, when, from and to."""

    booking = models.ForeignKey(Booking, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=12, choices=BookingEventKind.choices)
    at = models.DateTimeField(auto_now_add=True)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # For moves: where it was; for every event: a short detail (the reason).
    previous_starts_at = models.DateTimeField(null=True, blank=True)
    previous_practitioner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True
    )
    previous_room = models.ForeignKey(Room, on_delete=models.PROTECT, related_name="+", null=True)
    detail = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["at", "id"]
        verbose_name = _("booking change")
        verbose_name_plural = _("booking changes")

    def __str__(self) -> str:
        return f"{self.kind} of {self.booking_id} at {self.at:%Y-%m-%d %H:%M}"

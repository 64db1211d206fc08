"""Forms of the calendar: a booking, a move, a cancellation, a course, and the
manager's rooms, working hours and closures."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime, timedelta
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from clinic import dates
from clinic.forms import VERSION_LOST, SubmissionTokenMixin, VersionedFormMixin
from clinic.localtime import (
    AmbiguousTimeError,
    LocalTimeError,
    fold_labels,
    is_ambiguous,
    local_to_utc,
    to_local,
)
from clinic.models import User
from clinic.widgets import ClockField, ClockInput, DayField, DayInput, parse_clock, parse_day
from patients.models import Patient
from patients.selectors import patients_visible_to
from treatments.models import ClinicClosure, Interval, Protocol, Room, WorkingHours
from treatments.selectors.booking import practitioners, rooms_in_use
from treatments.services.booking import booking_day_problem, booking_horizon

DATE_WIDGET = DayInput()
TIME_WIDGET = ClockInput()

FOLD_CHOICES = [("", "—"), ("0", _("the first time")), ("1", _("the second time"))]


def _choices_field(form: forms.Form, name: str) -> forms.ModelChoiceField:
    field = form.fields[name]
    assert isinstance(field, forms.ModelChoiceField)
    return field


class PractitionerChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return str(obj.get_full_name() or obj.get_username())


# How far back the calendar goes: far enough for any record kept, near enough
# that no date arithmetic leaves the calendar's years.
CALENDAR_PAST_DAYS = 20 * 366
# `date` names a field inside the calendar's form: the type by another name.
Day = date


class CalendarQueryForm(forms.Form):
    """The calendar's query string: every value checked, so a bad one is a 400.
    The date lies between CALENDAR_PAST_DAYS back and the booking horizon."""

    view = forms.ChoiceField(choices=[("day", _("Day")), ("week", _("Week"))], required=False)
    date = DayField(required=False)
    practitioner = forms.UUIDField(required=False)
    room = forms.UUIDField(required=False)

    def clean_date(self) -> Day | None:
        day: Day | None = self.cleaned_data.get("date")
        if day is None:
            return None
        today = timezone.localdate()
        first = today - timedelta(days=CALENDAR_PAST_DAYS)
        last = booking_horizon(today=today)
        if not first <= day <= last:
            raise forms.ValidationError(
                _("The calendar shows the days from %(first)s to %(last)s. Choose a date between.")
                % {"first": dates.day(first), "last": dates.day(last)},
                code="out_of_range",
            )
        return day


class LocalStartMixin(forms.Form):
    """A local date and start time, turned into a UTC instant with the clock
    changes handled: a time that does not exist is refused, one that happens
    twice asks which is meant (the `fold` choice appears only then)."""

    date = DayField(label=_("Date"))
    start_time = ClockField(label=_("Start time"))
    fold = forms.ChoiceField(
        label=_("This time happens twice that night. Which one?"),
        choices=FOLD_CHOICES,
        required=False,
        widget=forms.HiddenInput,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.needs_fold = False
        self._show_fold_if_ambiguous()

    def _show_fold_if_ambiguous(self) -> None:
        day = parse_day(str(self.data.get("date", "")))
        at = parse_clock(str(self.data.get("start_time", "")))
        if day is None or at is None:
            return
        if is_ambiguous(day, at):
            first, second = fold_labels(day, at)
            self.needs_fold = True
            fold = self.fields["fold"]
            assert isinstance(fold, forms.ChoiceField)
            fold.widget = forms.RadioSelect()
            fold.choices = [
                ("0", _("the first time (%(zone)s, before the clocks go back)") % {"zone": first}),
                ("1", _("the second time (%(zone)s, after the clocks go back)") % {"zone": second}),
            ]

    def local_start(self, cleaned: dict[str, Any]) -> datetime | None:
        day, at = cleaned.get("date"), cleaned.get("start_time")
        if day is None or at is None:
            return None
        # A day before today or past the booking horizon is refused before any
        # time is worked out from it (the service checks again).
        problem = booking_day_problem(day, today=timezone.localdate())
        if problem is not None:
            field, message = problem
            self.add_error(field, message)
            return None
        fold_value = cleaned.get("fold") or ""
        fold = int(fold_value) if fold_value in ("0", "1") else None
        try:
            return local_to_utc(day, at, fold=fold)
        except AmbiguousTimeError as error:
            self.add_error("start_time", error.message)
        except LocalTimeError as error:
            self.add_error("start_time", error.message)
        return None


class BookingForm(SubmissionTokenMixin, LocalStartMixin):
    """A new booking. Its one-time token makes a double-clicked "Book" book once."""

    patient = forms.UUIDField(
        label=_("Patient"),
        widget=forms.HiddenInput,
        error_messages={"required": _("Search for the patient and choose them.")},
    )
    protocol = forms.ModelChoiceField(
        label=_("Protocol"), queryset=Protocol.objects.none(), to_field_name="uuid"
    )
    practitioner = PractitionerChoiceField(
        label=_("Practitioner"), queryset=User.objects.none(), to_field_name="uuid"
    )
    room = forms.ModelChoiceField(
        label=_("Room"), queryset=Room.objects.none(), to_field_name="uuid"
    )
    duration = forms.IntegerField(
        label=_("Length (minutes)"),
        required=False,
        help_text=_("Leave empty for the protocol's usual session length."),
        widget=forms.NumberInput(attrs={"step": 5}),
    )
    field_order = ["patient", "protocol", "practitioner", "room", "date", "start_time", "fold"]

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        _choices_field(self, "protocol").queryset = Protocol.objects.filter(active=True).order_by(
            "name"
        )
        _choices_field(self, "practitioner").queryset = practitioners()
        _choices_field(self, "room").queryset = rooms_in_use()
        self.chosen_patient: Patient | None = None
        self.starts_at: datetime | None = None
        self.ends_at: datetime | None = None

    def clean_patient(self) -> uuid.UUID:
        value: uuid.UUID = self.cleaned_data["patient"]
        patient = patients_visible_to(self.user).filter(uuid=value).first()
        if patient is None:
            raise forms.ValidationError(_("Search for the patient and choose them."))
        self.chosen_patient = patient
        return value

    def clean_duration(self) -> int | None:
        minutes: int | None = self.cleaned_data.get("duration")
        if minutes is not None and minutes <= 0:
            raise forms.ValidationError(
                _("The end must be after the start: give a length of at least 10 minutes.")
            )
        if minutes is not None and not 10 <= minutes <= 240:
            raise forms.ValidationError(_("A session lasts between 10 and 240 minutes."))
        return minutes

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        starts_at = self.local_start(cleaned)
        protocol = cleaned.get("protocol")
        if starts_at is not None and protocol is not None and "duration" in cleaned:
            minutes = cleaned.get("duration") or protocol.session_minutes
            self.starts_at = starts_at
            self.ends_at = starts_at + timedelta(minutes=minutes)
        return cleaned


class BookingCheckForm(LocalStartMixin):
    """What the booking form has chosen so far (patient, protocol, date and
    start), to say before the booking is saved whether the patient can be
    treated then (`treatments.views.booking.booking_check`)."""

    FIELDS = ("patient", "protocol", "date", "start_time")

    patient = forms.UUIDField()
    protocol = forms.ModelChoiceField(queryset=Protocol.objects.none(), to_field_name="uuid")

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        _choices_field(self, "protocol").queryset = Protocol.objects.filter(active=True)
        self.chosen_patient: Patient | None = None
        self.starts_at: datetime | None = None

    @property
    def complete(self) -> bool:
        """Every value the check needs is given (not yet checked)."""
        return all(str(self.data.get(name) or "").strip() for name in self.FIELDS)

    def clean_patient(self) -> uuid.UUID:
        value: uuid.UUID = self.cleaned_data["patient"]
        self.chosen_patient = patients_visible_to(self.user).filter(uuid=value).first()
        if self.chosen_patient is None:
            raise forms.ValidationError(_("Search for the patient and choose them."))
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        self.starts_at = self.local_start(cleaned)
        # Earlier today: the booking itself is refused in these words on submit
        # (`treatments.services.booking.check_slot`); the check says them first.
        if self.starts_at is not None and self.starts_at < timezone.now():
            self.add_error(
                "start_time", _("This time has already passed. Choose a time from now on.")
            )
            self.starts_at = None
        return cleaned


class BookingMoveForm(VersionedFormMixin, LocalStartMixin):
    """A new time, practitioner or room for a booking, with the booking's
    version (`initial["version"]`; the calendar's drag sends it too)."""

    practitioner = PractitionerChoiceField(
        label=_("Practitioner"), queryset=User.objects.none(), to_field_name="uuid"
    )
    room = forms.ModelChoiceField(
        label=_("Room"), queryset=Room.objects.none(), to_field_name="uuid"
    )
    field_order = ["date", "start_time", "fold", "practitioner", "room"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _choices_field(self, "practitioner").queryset = practitioners()
        _choices_field(self, "room").queryset = rooms_in_use()
        self.starts_at: datetime | None = None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        self.starts_at = self.local_start(cleaned)
        return cleaned

    @staticmethod
    def initial_for(booking: Any) -> dict[str, Any]:
        """The form's values for `booking` as it is: its local day and start,
        practitioner and room, and its version."""
        local = to_local(booking.starts_at)
        return {
            "date": local.date(),
            "start_time": local.time().replace(tzinfo=None),
            "practitioner": booking.practitioner,
            "room": booking.room,
            "version": booking.version,
        }

    def current_values(self, record: Any) -> dict[str, Any]:
        if record is None or not hasattr(record, "starts_at"):
            return {}
        values = self.initial_for(record)
        return {
            name: self.fields[name].prepare_value(values[name])
            for name in self._record_fields()
            if name in values
        }


class BookingCancelForm(VersionedFormMixin, forms.Form):
    """A cancellation, with the version of the booking the page showed
    (`initial["version"]`): cancelling a booking moved since is refused."""

    reason = forms.CharField(
        label=_("Reason for cancelling"),
        max_length=300,
        error_messages={"required": _("Say why the booking is cancelled.")},
    )


class BookingMarkForm(VersionedFormMixin, forms.Form):
    """Arrived, did not come, back to booked: with the version of the booking
    the page showed, like every change of a booking."""

    status = forms.ChoiceField(
        choices=[
            ("arrived", _("Arrived")),
            ("no_show", _("Did not come")),
            ("booked", _("Back to booked")),
        ]
    )


class NextFreeSlotForm(forms.Form):
    practitioner = PractitionerChoiceField(
        label=_("Practitioner"), queryset=User.objects.none(), to_field_name="uuid"
    )
    room = forms.ModelChoiceField(
        label=_("Room"), queryset=Room.objects.none(), to_field_name="uuid"
    )
    duration = forms.IntegerField(label=_("Length (minutes)"), min_value=10, max_value=240)
    patient = forms.UUIDField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _choices_field(self, "practitioner").queryset = practitioners()
        _choices_field(self, "room").queryset = rooms_in_use()


class CourseStartForm(BookingForm):
    """The course's first session and its rhythm (the proposal's inputs)."""

    sessions = forms.IntegerField(
        label=_("Number of sessions"),
        required=False,
        min_value=1,
        max_value=20,
        help_text=_("Leave empty for the protocol's number of sessions."),
    )
    interval = forms.ChoiceField(
        label=_("Interval"),
        choices=[("", _("As the protocol says")), *Interval.choices],
        required=False,
    )


class CourseConfirmForm(SubmissionTokenMixin, forms.Form):
    """The proposed sessions as reception adjusted them: a date and a time
    each. Its one-time token books the course once however often it is sent."""

    def __init__(self, *args: Any, count: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.count = count
        for number in range(1, count + 1):
            self.fields[f"date_{number}"] = DayField(
                label=_("Session %(n)s date") % {"n": number},
                widget=DayInput(attrs={"class": "form-control"}),
            )
            self.fields[f"time_{number}"] = ClockField(
                label=_("Session %(n)s time") % {"n": number},
                widget=ClockInput(attrs={"class": "form-control"}),
            )
        self.starts: list[datetime] = []

    def rows(self) -> list[tuple[int, forms.BoundField, forms.BoundField]]:
        return [(n, self[f"date_{n}"], self[f"time_{n}"]) for n in range(1, self.count + 1)]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        starts = []
        for number in range(1, self.count + 1):
            day, at = cleaned.get(f"date_{number}"), cleaned.get(f"time_{number}")
            if day is None or at is None:
                continue
            problem = booking_day_problem(day, today=timezone.localdate())
            if problem is not None:
                field, message = problem
                self.add_error(f"date_{number}" if field == "date" else f"time_{number}", message)
                continue
            try:
                # A time that happens twice is taken at its first occurrence.
                starts.append(local_to_utc(day, at, fold=0))
            except LocalTimeError as error:
                self.add_error(f"time_{number}", error.message)
        if not self.errors:
            if starts != sorted(starts):
                raise forms.ValidationError(_("Put the sessions in date order."))
            self.starts = starts
        return cleaned


class RoomForm(SubmissionTokenMixin, VersionedFormMixin, forms.ModelForm):
    class Meta:
        model = Room
        fields = ["name", "active"]


# The version of a practitioner's week: seven short hashes, one per day
# (treatments.selectors.booking.working_hours_version).
HOURS_VERSION = re.compile(r"[0-9a-f]{10}(?:\.[0-9a-f]{10}){6}")


class HoursVersionMixin(VersionedFormMixin):
    """The hours page's forms carry the version of the practitioner's week, a
    hash of its rows (the week has no row of its own): `initial["version"]`."""

    versioned_without_instance = True

    def opened_version(self) -> Any:
        return None

    def clean_version(self) -> str | None:
        value = str(self.cleaned_data.get("version") or "").strip()  # type: ignore[attr-defined]
        if not HOURS_VERSION.fullmatch(value):
            self.add_error(None, VERSION_LOST)  # type: ignore[attr-defined]
            return None
        return value


class WorkingHoursClearForm(HoursVersionMixin, forms.Form):
    weekday = forms.TypedChoiceField(coerce=int, choices=[(d, d) for d in range(7)])


class WorkingHoursForm(SubmissionTokenMixin, HoursVersionMixin, forms.ModelForm):
    weekday = forms.TypedChoiceField(
        label=_("Day"),
        coerce=int,
        choices=[
            (0, _("Monday")),
            (1, _("Tuesday")),
            (2, _("Wednesday")),
            (3, _("Thursday")),
            (4, _("Friday")),
            (5, _("Saturday")),
            (6, _("Sunday")),
        ],
    )

    class Meta:
        model = WorkingHours
        fields = ["weekday", "starts", "ends"]
        widgets = {"starts": TIME_WIDGET, "ends": TIME_WIDGET}
        field_classes = {"starts": ClockField, "ends": ClockField}


class ClosureForm(SubmissionTokenMixin, VersionedFormMixin, forms.ModelForm):
    """A closure's days and reason. Editing one carries its version: an edit
    opened before someone else's save is refused (409). Adding one carries a
    one-time token: sent twice, one closure is added."""

    class Meta:
        model = ClinicClosure
        fields = ["starts_on", "ends_on", "reason"]
        widgets = {"starts_on": DATE_WIDGET, "ends_on": DATE_WIDGET}
        field_classes = {"starts_on": DayField, "ends_on": DayField}


class ClosureRemoveForm(VersionedFormMixin, forms.Form):
    """Remove a closure, as last seen: the version in `initial["version"]`."""

"""Reception's view of reminders: the delivery log (per patient, per booking)
and the follow-up list. Read-only; no clinical detail."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.urls import reverse
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from clinic import dates
from clinic.access import signed_in_user, staff
from clinic.audit import audit_read, audit_read_patients
from clinic.roles import Role
from patients.selectors import patient_get_for_user
from treatments.models import ReminderChannel, ReminderKind
from treatments.selectors.booking import booking_get_for_user
from treatments.selectors.reminders import (
    CourseToBook,
    FailedReminder,
    courses_to_book,
    reminder_followups,
    reminder_log_for_booking,
    reminder_log_for_patient,
)
from treatments.services.reminders import patient_no_reminder_reason

READ_ROLES = (Role.RECEPTIONIST, Role.PRACTITIONER, Role.MANAGER)


@staff(*READ_ROLES)
@require_GET
def reminder_log(
    request: HttpRequest, patient: uuid.UUID | None = None, booking: uuid.UUID | None = None
) -> HttpResponse:
    user = signed_in_user(request)
    if booking is not None:
        record = booking_get_for_user(user=user, booking_uuid=booking)
        person = record.patient
        rows = reminder_log_for_booking(booking=record)
        audit_read(request, record, patient_ref=person.uuid)
    else:
        assert patient is not None
        record = None
        person = patient_get_for_user(user=user, patient_uuid=patient)
        rows = reminder_log_for_patient(patient=person)
        audit_read(request, person, patient_ref=person.uuid)
    return render(
        request,
        "treatments/reminder_log.html",
        {
            "patient": person,
            "booking": record,
            "reminders": rows,
            "no_reminders_reason": patient_no_reminder_reason(person),
        },
    )


def _page_number(request: HttpRequest, name: str) -> int | None:
    """The page asked for in `name` (1 when absent), or None when it is not
    a whole number. Out of range is not an error: the selector shows the
    nearest page that exists."""
    raw = request.GET.get(name, "").strip()
    if not raw:
        return 1
    if len(raw) > 9 or not raw.lstrip("-").isdigit():
        return None
    return int(raw)


# The patients' pages, reversed once a page with this stand-in for the uuid
# and filled in per row: the same URLs as {% url %}, without a reversal a row.
_ANY_PATIENT = str(uuid.UUID(int=0))


class _LocalTimes:
    """Instants written in the clinic's formats (`clinic.dates`), with the
    current year read once a page rather than once a date."""

    def __init__(self) -> None:
        self.year = dates.this_year()

    def day(self, at: datetime) -> str:
        """As "Thu 5 Nov" (the year when not this one)."""
        return dates.day(at, current=self.year)

    def day_and_time(self, at: datetime) -> str:
        """As "Thu 5 Nov, 11:00" (the year when not this one)."""
        return dates.day_time(at, current=self.year)

    def date_and_time(self, at: datetime) -> str:
        return self.day_and_time(at)


@dataclass(frozen=True, slots=True)
class _FailedRow:
    """A failed reminder's row, every text ready to print."""

    patient: str
    url: str
    kind: str
    session: str
    channel: str
    due: str
    error: str


@dataclass(frozen=True, slots=True)
class _CourseRow:
    """A course to book's row, every text ready to print."""

    patient: str
    url: str
    sessions: str
    last_session: str


def _failed_rows(rows: list[FailedReminder], times: _LocalTimes) -> list[_FailedRow]:
    """What the failed reminders' table prints: each choice label, phrase and
    URL pattern translated or reversed once for the page, not once a row."""
    log_url = reverse("treatments:reminder_log", kwargs={"patient": _ANY_PATIENT})
    kinds = {value: capfirst(str(label)) for value, label in ReminderKind.choices}
    channels = {value: str(label) for value, label in ReminderChannel.choices}
    session = _("session %(when)s")
    before = _("%(hours)s h before")
    shown = []
    for row in rows:
        about = ""
        if row.slot_starts_at is not None:
            about = session % {"when": times.day_and_time(row.slot_starts_at)}
            if row.lead_minutes:
                about += " · " + before % {"hours": round(row.lead_minutes / 60)}
        shown.append(
            _FailedRow(
                patient=row.patient_name,
                url=log_url.replace(_ANY_PATIENT, str(row.patient_uuid)),
                kind=kinds.get(row.kind, row.kind),
                session=about,
                channel=channels.get(row.channel, row.channel),
                due=times.date_and_time(row.due_at),
                error=row.error,
            )
        )
    return shown


def _course_rows(rows: list[CourseToBook], times: _LocalTimes) -> list[_CourseRow]:
    """What the courses' table prints, translated and reversed once a page."""
    patient_url = reverse("patients:detail", kwargs={"patient": _ANY_PATIENT})
    done = _("%(done)s of %(planned)s")
    none_yet = _("None yet: every booking was cancelled or missed")
    return [
        _CourseRow(
            patient=row.patient_name,
            url=patient_url.replace(_ANY_PATIENT, str(row.patient_uuid)),
            sessions=done % {"done": row.sessions_done, "planned": row.planned_sessions},
            last_session=(
                times.day(row.last_session_ended) if row.last_session_ended else none_yet
            ),
        )
        for row in rows
    ]


@staff(*READ_ROLES)
@require_GET
def reminder_followups_view(request: HttpRequest) -> HttpResponse:
    failed_page = _page_number(request, "failed_page")
    courses_page = _page_number(request, "courses_page")
    if failed_page is None or courses_page is None:
        return HttpResponseBadRequest(
            _("A page of the follow-up list is a whole number, such as 2."),
            content_type="text/plain; charset=utf-8",
        )
    failed = reminder_followups(page=failed_page)
    to_book = courses_to_book(page=courses_page)
    patients = [row.patient_uuid for row in failed.rows] + [
        row.patient_uuid for row in to_book.rows
    ]
    if patients:
        audit_read_patients(
            request,
            None,
            patient_refs=list(dict.fromkeys(patients)),
            object_type="treatments.followups",
        )
    times = _LocalTimes()
    return render(
        request,
        "treatments/reminder_followups.html",
        {
            "failed": failed,
            "failed_rows": _failed_rows(failed.rows, times),
            "courses_to_book": to_book,
            "course_rows": _course_rows(to_book.rows, times),
        },
    )

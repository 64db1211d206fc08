"""Views of bookings and courses: thin, one access helper, one service each.

Receptionists and practitioners book, move, cancel and mark; managers read.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import NON_FIELD_ERRORS
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from clinic import dates
from clinic.access import signed_in_user, staff
from clinic.audit import audit_read
from clinic.concurrency import AlreadySubmittedError, StaleEditError
from clinic.localtime import to_local
from clinic.models import User
from clinic.roles import Role
from patients.forms import PatientSearchForm
from patients.models import Patient
from patients.search_audit import patient_search_audit
from patients.selectors import (
    PatientMergedError,
    patient_get_for_user,
    patient_search,
    patients_visible_to,
)
from treatments.forms.booking import (
    BookingCancelForm,
    BookingCheckForm,
    BookingForm,
    BookingMarkForm,
    BookingMoveForm,
    CourseConfirmForm,
    CourseStartForm,
    NextFreeSlotForm,
)
from treatments.models import FINISHED_STATUSES, Booking, BookingStatus, Interval, TreatmentCourse
from treatments.selectors.booking import (
    booking_get_for_user,
    course_get_for_patient,
    course_progress,
    next_free_slot,
)
from treatments.selectors.calendar import (
    SafeToTreat,
    SafeToTreatWords,
    booking_proposed_readiness,
    safe_to_treat,
    safe_to_treat_sentence,
)
from treatments.selectors.readiness import booking_readiness
from treatments.selectors.session import course_clinical_summary
from treatments.services.booking import (
    BookingRefusedError,
    BookingStateError,
    SlotTakenError,
    booking_cancel,
    booking_create,
    booking_mark,
    booking_move,
)
from treatments.services.course import (
    CourseRefusedError,
    course_book,
    course_propose,
)

WRITE_ROLES = (Role.RECEPTIONIST, Role.PRACTITIONER)
READ_ROLES = (Role.RECEPTIONIST, Role.PRACTITIONER, Role.MANAGER)


def _refusal_status(error: BookingRefusedError) -> int:
    if isinstance(error, (SlotTakenError, BookingStateError)):
        return 409
    return 400


def _add_refusal(form: BookingForm | BookingMoveForm, error: BookingRefusedError) -> None:
    field = error.field if error.field in form.fields else None
    form.add_error(field, error.message)


@staff(*WRITE_ROLES)
@require_GET
def booking_patient_search(request: HttpRequest) -> HttpResponse:
    """The booking form's patient search box (htmx): matching patients as choices."""
    form = PatientSearchForm(request.GET or None)
    query = form.cleaned_data["q"] if form.is_valid() else ""
    results = patient_search(user=signed_in_user(request), query=query, limit=10) if query else []
    if query:
        patient_search_audit(request=request, query=query)
    return render(
        request, "treatments/booking_patient_choices.html", {"results": results, "query": query}
    )


def _follow_merged_patient(request: HttpRequest, user: User) -> None:
    """A page opened for a patient record merged into another (`?patient=`,
    from an old link or a page opened before the merge) leads to the same
    page for the record that stays, like every patient page: the record's
    `PatientMergedError` is answered by patients.middleware with a redirect."""
    try:
        wanted = uuid.UUID(str(request.GET.get("patient", ""))[:64])
    except ValueError:
        return
    try:
        patient_get_for_user(user=user, patient_uuid=wanted)
    except PatientMergedError:
        raise
    except Http404:
        return  # not a record this user may see: nobody is chosen


def _initial_from_query(request: HttpRequest) -> dict[str, str]:
    """Prefill from the calendar's free slot link (values are checked on post)."""
    keys = ("practitioner", "room", "date", "time", "patient", "protocol")
    initial = {k: request.GET[k][:64] for k in keys if k in request.GET}
    if "time" in initial:
        initial["start_time"] = initial.pop("time")
    return initial


@dataclass(frozen=True)
class BookingCheck:
    """Whether the patient chosen on the booking form can be treated at the
    time chosen (`readiness`), said before the booking is saved; None when
    the form does not say yet whom, what and when."""

    patient: Patient | None = None
    readiness: SafeToTreat | None = None
    sentence: str = ""
    bad_input: bool = False
    # Why the date or time chosen cannot be booked, in the booking form's own
    # words on submit (in the past, happens twice, does not exist...).
    problems: tuple[str, ...] = ()


# The fields a receptionist types on the booking form: their refusals are
# said in the warning; a patient or protocol the form never offers is not.
_TYPED_FIELDS = ("date", "start_time", "fold", NON_FIELD_ERRORS)


def _booking_check(data: Mapping[str, Any], user: User) -> BookingCheck:
    """Ready-to-treat for the booking the form describes (patient, protocol,
    date and start in `data`), as the booking will say once made. Booking
    stays allowed whatever it says: reception books ahead for patients who
    will complete their records. A date or time the booking would be refused
    for gives the refusal's words (`problems`); a patient or protocol the
    form never offers is `bad_input`, with the reason in `problems`."""
    form = BookingCheckForm(data, user=user)
    if not form.complete:
        return BookingCheck()
    if not form.is_valid() or form.starts_at is None or form.chosen_patient is None:
        forged = [str(m) for name in ("patient", "protocol") for m in form.errors.get(name, ())]
        typed = [str(m) for name in _TYPED_FIELDS for m in form.errors.get(name, ())]
        if forged or not typed:
            return BookingCheck(bad_input=True, problems=tuple(forged))
        return BookingCheck(problems=tuple(typed))
    readiness = booking_proposed_readiness(
        patient_id=form.chosen_patient.pk,
        protocol=form.cleaned_data["protocol"],
        starts_at=form.starts_at,
        at=timezone.now(),
    )
    return BookingCheck(form.chosen_patient, readiness, safe_to_treat_sentence(readiness))


@staff(*WRITE_ROLES)
@require_GET
def booking_check(request: HttpRequest) -> HttpResponse:
    """The booking form's warning (htmx, as the form changes): whether the
    patient chosen can be treated at the time chosen, and if not, what is
    missing and from when, in reception's words. Empty until patient,
    protocol, date and start are given. A date or time the booking would be
    refused for (already passed, happening twice or not at all as the clocks
    change, not a date) answers 200 with the refusal's sentence, as htmx
    swaps only a 2xx into the form; a patient or protocol the form never
    offers answers 400 with the reason."""
    user = signed_in_user(request)
    check = _booking_check(request.GET, user)
    if check.patient is not None:
        audit_read(request, check.patient, patient_ref=check.patient.uuid)
    return render(
        request,
        "treatments/booking_check.html",
        {"check": check},
        status=400 if check.bad_input else 200,
    )


@staff(*WRITE_ROLES)
@require_http_methods(["GET", "POST"])
def booking_new(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    status = 200
    if request.method == "POST":
        form = BookingForm(request.POST, user=user)
        if form.is_valid() and request.POST.get("action") == "course":
            params = {
                k: request.POST.get(k, "")
                for k in ("patient", "protocol", "practitioner", "room", "date", "start_time")
            }
            return HttpResponseRedirect(reverse("treatments:course_new") + "?" + urlencode(params))
        if form.is_valid():
            assert form.chosen_patient is not None
            assert form.starts_at is not None
            assert form.ends_at is not None
            try:
                booking = booking_create(
                    patient=form.chosen_patient,
                    practitioner=form.cleaned_data["practitioner"],
                    room=form.cleaned_data["room"],
                    protocol=form.cleaned_data["protocol"],
                    starts_at=form.starts_at,
                    ends_at=form.ends_at,
                    created_by=user,
                    submission_token=form.cleaned_data["submission_token"],
                )
            except AlreadySubmittedError as repeated:
                messages.info(request, repeated.message)
                return HttpResponseRedirect(repeated.obj.get_absolute_url())  # type: ignore[attr-defined]
            except BookingRefusedError as error:
                _add_refusal(form, error)
                status = _refusal_status(error)
            else:
                messages.success(
                    request,
                    _("Booked: %(name)s on %(when)s.")
                    % {
                        "name": booking.patient.full_name,
                        "when": dates.day_time(booking.starts_at),
                    },
                )
                return HttpResponseRedirect(booking.get_absolute_url())
        else:
            status = 400
    else:
        _follow_merged_patient(request, user)
        form = BookingForm(initial=_initial_from_query(request), user=user)
    chosen = form.chosen_patient
    if chosen is None and form.initial.get("patient"):
        try:
            wanted = uuid.UUID(str(form.initial["patient"]))
        except ValueError:
            wanted = None
        if wanted is not None:
            chosen = patients_visible_to(user).filter(uuid=wanted).first()
    check = _booking_check(request.POST if request.method == "POST" else form.initial, user)
    if check.problems and request.method == "POST":
        check = BookingCheck()  # the form's own fields say it on the page
    return render(
        request,
        "treatments/booking_form.html",
        {"form": form, "chosen": chosen, "search": PatientSearchForm(), "check": check},
        status=status,
    )


@staff(*READ_ROLES)
@require_GET
def booking_detail(request: HttpRequest, booking: uuid.UUID) -> HttpResponse:
    user = signed_in_user(request)
    record = booking_get_for_user(user=user, booking_uuid=booking)
    audit_read(request, record, patient_ref=record.patient.uuid)
    return render(request, "treatments/booking_detail.html", _detail_context(record, user))


def _detail_context(record: Booking, user: User, **extra: object) -> dict[str, object]:
    # Ready-to-treat as the calendar's card says it (`safe_to_treat_sentence`),
    # for a booking still to happen; a finished one shows its outcome alone.
    readiness = None
    if record.status not in FINISHED_STATUSES:
        failures = booking_readiness(bookings=[record], at=timezone.now())
        readiness = safe_to_treat(failures.get(record.pk, []))
    words = SafeToTreatWords()
    events = list(
        record.events.select_related("by", "previous_practitioner", "previous_room").order_by(
            "at", "id"
        )
    )
    can_write = user.has_any_role(WRITE_ROLES)
    return {
        "booking": record,
        "events": events,
        "readiness": readiness,
        "readiness_words": words,
        "readiness_sentence": safe_to_treat_sentence(readiness, words) if readiness else "",
        "can_write": can_write,
        "is_practitioner": Role.PRACTITIONER in user.roles,
        "can_move": can_write and record.status == BookingStatus.BOOKED,
        "can_cancel": can_write and record.status in (BookingStatus.BOOKED, BookingStatus.ARRIVED),
        "cancel_form": extra.pop("cancel_form", None)
        or BookingCancelForm(initial={"version": record.version}),
        **extra,
    }


@staff(*WRITE_ROLES)
@require_http_methods(["GET", "POST"])
def booking_move_view(request: HttpRequest, booking: uuid.UUID) -> HttpResponse:
    """Move a booking (this page, or a card dragged on the calendar). A move
    opened before someone else changed the booking is refused (409)."""
    user = signed_in_user(request)
    record = booking_get_for_user(user=user, booking_uuid=booking)
    status = 200
    if request.method == "POST":
        form = BookingMoveForm(request.POST)
        if form.is_valid():
            assert form.starts_at is not None
            # What the person left as it was stays as the booking is now.
            typed = form.typed_names()
            when_typed = typed is None or bool({"date", "start_time", "fold"} & typed)
            starts_at = form.starts_at if when_typed else record.starts_at
            chosen = {
                name: form.cleaned_data[name]
                if typed is None or name in typed
                else getattr(record, name)
                for name in ("practitioner", "room")
            }
            try:
                booking_move(
                    booking=record,
                    starts_at=starts_at,
                    ends_at=starts_at + (record.ends_at - record.starts_at),
                    moved_by=user,
                    expected_version=form.cleaned_data["version"],
                    **chosen,
                )
            except StaleEditError as refusal:
                status = form.show_stale(refusal)
                # The page shows the booking as it is now, above the form.
                record.refresh_from_db()
            except BookingRefusedError as error:
                _add_refusal(form, error)
                status = _refusal_status(error)
            else:
                messages.success(request, _("The booking is moved."))
                return HttpResponseRedirect(record.get_absolute_url())
        else:
            status = 400
    else:
        form = BookingMoveForm(initial=BookingMoveForm.initial_for(record))
    return render(
        request, "treatments/booking_move.html", {"form": form, "booking": record}, status=status
    )


@staff(*WRITE_ROLES)
@require_POST
def booking_cancel_view(request: HttpRequest, booking: uuid.UUID) -> HttpResponse:
    user = signed_in_user(request)
    record = booking_get_for_user(user=user, booking_uuid=booking)
    form = BookingCancelForm(request.POST)
    status = 400
    if form.is_valid():
        try:
            booking_cancel(
                booking=record,
                reason=form.cleaned_data["reason"],
                cancelled_by=user,
                expected_version=form.cleaned_data["version"],
            )
        except StaleEditError as refusal:
            # The page shows the booking as it is now; the reason typed is kept.
            status = form.show_stale(refusal)
            record.refresh_from_db()
        except BookingRefusedError as error:
            form.add_error(None, error.message)
            status = _refusal_status(error)
        else:
            messages.success(request, _("The booking is cancelled."))
            return HttpResponseRedirect(record.get_absolute_url())
    return render(
        request,
        "treatments/booking_detail.html",
        _detail_context(record, user, cancel_form=form),
        status=status,
    )


@staff(*WRITE_ROLES)
@require_POST
def booking_mark_view(request: HttpRequest, booking: uuid.UUID) -> HttpResponse:
    user = signed_in_user(request)
    record = booking_get_for_user(user=user, booking_uuid=booking)
    form = BookingMarkForm(request.POST)
    if not form.is_valid():
        for error in form.non_field_errors() or [_("Choose arrived or did not come.")]:
            messages.error(request, str(error))
        return render(
            request, "treatments/booking_detail.html", _detail_context(record, user), status=400
        )
    try:
        booking_mark(
            booking=record,
            status=form.cleaned_data["status"],
            marked_by=user,
            expected_version=form.cleaned_data["version"],
        )
    except StaleEditError as refusal:
        # Nothing typed to keep: the page shows the booking as it is now and
        # what changed, and its buttons carry its version now.
        status = form.show_stale(refusal)
        record.refresh_from_db()
        return render(
            request,
            "treatments/booking_detail.html",
            _detail_context(record, user, stale=form.stale),
            status=status,
        )
    except BookingRefusedError as error:
        messages.error(request, error.message)
        record.refresh_from_db()
        return render(
            request,
            "treatments/booking_detail.html",
            _detail_context(record, user),
            status=_refusal_status(error),
        )
    messages.success(request, _("The booking is updated."))
    return HttpResponseRedirect(record.get_absolute_url())


def _next_free_needs(form: NextFreeSlotForm) -> str:
    """What the next free slot still needs, said in one sentence: "To find
    the next free slot, choose a practitioner and a room." """
    wanted = [
        words
        for name, words in (
            ("practitioner", _("a practitioner")),
            ("room", _("a room")),
            ("duration", _("a length between 10 and 240 minutes")),
        )
        if name in form.errors
    ]
    if not wanted:
        return " ".join(str(e) for errors in form.errors.values() for e in errors)
    listed = (
        wanted[0]
        if len(wanted) == 1
        else _("%(some)s and %(last)s")
        % {
            "some": ", ".join(wanted[:-1]),
            "last": wanted[-1],
        }
    )
    return _("To find the next free slot, choose %(what)s.") % {"what": listed}


@staff(*READ_ROLES)
@require_GET
def next_free_slot_view(request: HttpRequest) -> HttpResponse:
    """The earliest free start for a practitioner, room and length (htmx or page)."""
    form = NextFreeSlotForm(request.GET or None)
    found = None
    status = 200
    searched = False
    if request.GET:
        if form.is_valid():
            searched = True
            patient = None
            if form.cleaned_data.get("patient"):
                patient = patient_get_for_user(
                    user=signed_in_user(request), patient_uuid=form.cleaned_data["patient"]
                )
            found = next_free_slot(
                practitioner=form.cleaned_data["practitioner"],
                room=form.cleaned_data["room"],
                duration=timedelta(minutes=form.cleaned_data["duration"]),
                patient=patient,
            )
        else:
            status = 400
    context = {
        "form": form,
        "needs": _next_free_needs(form) if status == 400 else "",
        "found": to_local(found) if found else None,
        "searched": searched,
        "book_query": urlencode(
            {
                "practitioner": str(form.cleaned_data["practitioner"].uuid),
                "room": str(form.cleaned_data["room"].uuid),
                "date": to_local(found).date().isoformat(),
                "time": dates.input_time(to_local(found)),
            }
        )
        if found
        else "",
    }
    template = (
        "treatments/booking_next_free_result.html"
        if request.htmx  # type: ignore[attr-defined]
        else "treatments/booking_next_free.html"
    )
    return render(request, template, context, status=status)


# --- Courses ---------------------------------------------------------------------------


# What the course's first session is proposed from: a GET with none of them
# opens the empty form.
COURSE_START_FIELDS = ("protocol", "practitioner", "room", "date", "start_time")


def _course_start_context(start: CourseStartForm, user: User) -> dict[str, object]:
    """The course form before any proposal: the first session's fields, as
    given (with what is wrong with them) or empty."""
    chosen = start.chosen_patient
    if chosen is None and start.initial.get("patient"):
        try:
            wanted = uuid.UUID(str(start.initial["patient"]))
        except ValueError:
            wanted = None
        if wanted is not None:
            chosen = patients_visible_to(user).filter(uuid=wanted).first()
    # Each problem with the field it concerns: "Protocol: This field is required."
    problems = []
    for name, errors in (start.errors if start.is_bound else {}).items():
        field = start.fields.get(name)
        label = str(field.label) if field is not None and field.label else ""
        problems += [f"{label}: {error}" if label else str(error) for error in errors]
    return {
        "start": start,
        "form": start,
        "chosen": chosen,
        "start_errors": problems,
        "confirm": None,
        "proposals": [],
    }


@staff(*WRITE_ROLES)
@require_http_methods(["GET", "POST"])
def course_new(request: HttpRequest) -> HttpResponse:
    """Propose a course from its first session, let reception adjust, then book it all."""
    user = signed_in_user(request)
    if request.method == "GET":
        _follow_merged_patient(request, user)
    earlier = CourseConfirmForm(request.POST or None, count=0).saved_before(
        TreatmentCourse, by=user
    )
    if earlier is not None:
        # This very confirmation was saved already (sent twice): the course it booked.
        messages.info(request, AlreadySubmittedError.MESSAGE)
        return HttpResponseRedirect(earlier.get_absolute_url())  # type: ignore[attr-defined]
    if request.method == "GET" and not any(name in request.GET for name in COURSE_START_FIELDS):
        # Opened afresh ("Book a course"): an empty form, the patient chosen if named.
        start = CourseStartForm(initial=_initial_from_query(request), user=user)
        return render(request, "treatments/course_form.html", _course_start_context(start, user))
    data = request.POST if request.method == "POST" else request.GET
    start = CourseStartForm(data, user=user)
    if not start.is_valid():
        return render(
            request,
            "treatments/course_form.html",
            _course_start_context(start, user),
            status=400,
        )
    assert start.chosen_patient is not None
    assert start.starts_at is not None
    protocol = start.cleaned_data["protocol"]
    interval = start.cleaned_data.get("interval") or protocol.interval
    proposals = course_propose(
        patient=start.chosen_patient,
        protocol=protocol,
        practitioner=start.cleaned_data["practitioner"],
        room=start.cleaned_data["room"],
        first_start=start.starts_at,
        sessions=start.cleaned_data.get("sessions"),
        interval=interval,
    )
    status = 200
    if request.method == "POST":
        confirm = CourseConfirmForm(request.POST, count=len(proposals))
        if confirm.is_valid():
            try:
                course = course_book(
                    patient=start.chosen_patient,
                    protocol=protocol,
                    practitioner=start.cleaned_data["practitioner"],
                    room=start.cleaned_data["room"],
                    starts=confirm.starts,
                    interval=interval,
                    created_by=user,
                    submission_token=confirm.cleaned_data["submission_token"],
                )
            except AlreadySubmittedError as repeated:
                messages.info(request, repeated.message)
                return HttpResponseRedirect(repeated.obj.get_absolute_url())  # type: ignore[attr-defined]
            except CourseRefusedError as error:
                confirm.add_error(None, error.message)
                status = 409 if isinstance(error.__cause__, SlotTakenError) else 400
            else:
                messages.success(
                    request,
                    _("The course is booked: %(n)s sessions.") % {"n": course.planned_sessions},
                )
                return HttpResponseRedirect(course.get_absolute_url())
        else:
            status = 400
    else:
        initial: dict[str, object] = {}
        for p in proposals:
            if p.starts_at is not None:
                local = to_local(p.starts_at)
                initial[f"date_{p.number}"] = local.date()
                initial[f"time_{p.number}"] = local.time().replace(tzinfo=None)
            else:
                initial[f"date_{p.number}"] = p.planned_on
        confirm = CourseConfirmForm(initial=initial, count=len(proposals))
    return render(
        request,
        "treatments/course_form.html",
        {
            "start": start,
            "confirm": confirm,
            "proposals": proposals,
            "rows": list(zip(proposals, confirm.rows(), strict=True)),
            "patient": start.chosen_patient,
            "protocol": protocol,
            "interval_label": Interval(interval).label,
        },
        status=status,
    )


@staff(*READ_ROLES)
@require_GET
def course_detail(request: HttpRequest, patient: uuid.UUID, course: uuid.UUID) -> HttpResponse:
    record = patient_get_for_user(user=signed_in_user(request), patient_uuid=patient)
    found = course_get_for_patient(patient=record, course_uuid=course)
    audit_read(request, found, patient_ref=record.uuid)
    user = signed_in_user(request)
    return render(
        request,
        "treatments/course_detail.html",
        {
            "patient": record,
            "course": found,
            "progress": course_progress(found),
            "now": timezone.now(),
            # Sessions done and adverse events: clinical, for practitioners only.
            "clinical": course_clinical_summary(course=found)
            if Role.PRACTITIONER in user.roles
            else None,
        },
    )

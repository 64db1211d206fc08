"""Views of session records (practitioners only): record and complete a
session behind the safety gates (the cocktail, and where each line went on
the diagram), then read it, amend it, add later adverse events and follow
them up until they resolve."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, cast

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from clinic import dates
from clinic.access import signed_in_user, staff
from clinic.audit import audit_read
from clinic.concurrency import AlreadySubmittedError, StaleEditError
from clinic.refusals import refusal_status
from clinic.roles import Role
from treatments.forms.portal import SendLinkForm
from treatments.forms.session import (
    MAX_LINES,
    AdverseEventFollowUpForm,
    AdverseEventFormSet,
    AmendmentForm,
    BaseAdverseFormSet,
    BaseLineFormSet,
    CocktailLineForm,
    CocktailLineFormSet,
    DayOfCheckForm,
    LaterAdverseEventForm,
    SessionForm,
)
from treatments.gates import (
    GateFailure,
    area_labels,
    caution_areas,
    caution_wording,
    gate_batches,
    session_gates,
)
from treatments.models import (
    MAX_POINTS_PER_LINE,
    AdverseEvent,
    AdverseEventFollowUp,
    Batch,
    Booking,
    BookingStatus,
    SessionRecord,
)
from treatments.needle_map import blank_map, needle_map_of
from treatments.selectors.catalogue import batches_usable
from treatments.selectors.portal import document_status_context
from treatments.selectors.session import (
    Resolution,
    adverse_event_resolution,
    line_defaults,
    session_booking_get,
    session_get_for_user,
    session_prefill,
    session_record_of,
)
from treatments.services.session import (
    AdverseEventResolvedError,
    GatesFailedError,
    SessionRefusedError,
    adverse_event_follow_up,
    adverse_event_record,
    session_amend,
    session_complete,
    state_sentence,
)

LINES = "lines"
EVENTS = "events"
CAUTION = "caution"
# Gates answered by the form itself (day-of questions, cautions): before the
# first post they are prompts in their own sections, not failures.
FORM_GATES = (6, 7)


def _record_url(booking: Booking) -> str:
    return reverse("treatments:session_record", kwargs={"booking": booking.uuid})


def _submitted_batches(data: QueryDict, usable: list[Batch]) -> dict[str, Batch]:
    """The usable batches plus any other batch named in the post (one query),
    so a batch that became unusable is refused with its sentence, not lost."""
    batches = {str(b.uuid): b for b in usable}
    wanted = set()
    for key in data:
        value = str(data.get(key, ""))
        if key.startswith(f"{LINES}-") and key.endswith("-batch") and value not in batches:
            try:
                wanted.add(uuid.UUID(value))
            except ValueError:
                continue
    if wanted:
        batches.update(
            {
                str(b.uuid): b
                for b in Batch.objects.select_related("product").filter(uuid__in=wanted)
            }
        )
    return batches


def _chosen(formset: Any, batches: dict[str, Batch], data: Any) -> list[Batch]:
    """The batches currently chosen in the line forms (typed or pre-filled)."""
    chosen: dict[str, Batch] = {}
    for form in formset.forms:
        if data is not None:
            value = data.get(form.add_prefix("batch"), "")
            if data.get(form.add_prefix("DELETE")):
                continue
        else:
            value = str(form.initial.get("batch") or "")
        if value in batches:
            chosen[value] = batches[value]
    return list(chosen.values())


def _chosen_areas(formset: Any, data: Any) -> list[str]:
    """The treatment areas of the line forms (typed or pre-filled), in order."""
    areas: dict[str, None] = {}
    for form in formset.forms:
        if data is not None:
            if data.get(form.add_prefix("DELETE")):
                continue
            value = str(data.get(form.add_prefix("area"), ""))
        else:
            value = str(form.initial.get("area") or "")
        if value:
            areas[value] = None
    return list(areas)


ADD_LINE = "add_line"
COPY_LINE = "copy_line"


def _with_line_added(data: QueryDict, new_line: dict[str, Any]) -> tuple[QueryDict, str] | None:
    """When "Add a line" or "Copy this line" was pressed (the page's script
    does it in place; this is the page without it): the post with one more
    line, a copy of the line named or a new line as `new_line` starts it
    (technique, depth, needle, device: `line_defaults`), and a sentence if
    none could be added. None when the form was sent to complete the session."""
    if ADD_LINE not in data and COPY_LINE not in data:
        return None
    total_key = f"{LINES}-TOTAL_FORMS"
    try:
        total = int(str(data.get(total_key, "")))
    except ValueError:
        total = -1
    if not 0 <= total <= MAX_LINES:
        return data, _("The cocktail lines could not be read: open the session again.")
    if total == MAX_LINES:
        return data, _("A session has at most %(most)s lines.") % {"most": MAX_LINES}
    added = data.copy()
    source = str(data.get(COPY_LINE, ""))
    if source.isascii() and source.isdigit() and len(source) <= 3 and int(source) < total:
        # Not its points: each needle is recorded once, on the line that gave it.
        for name in CocktailLineForm.base_fields:
            if name != "points":
                added[f"{LINES}-{total}-{name}"] = str(data.get(f"{LINES}-{source}-{name}", ""))
    else:
        for name, value in new_line.items():
            added[f"{LINES}-{total}-{name}"] = str(value)
    added[total_key] = str(total + 1)
    return added, ""


def _acknowledged(data: QueryDict) -> dict[str, frozenset[str]]:
    """The cautions ticked on the form (at most a screening table's worth):
    each code with the areas shown beside it when ticked, as each box's value
    carries them ("cold_sores:face,under_eye"; `_caution_value`)."""
    ticked: dict[str, frozenset[str]] = {}
    for value in data.getlist(CAUTION)[:50]:
        code, _sep, areas = str(value)[:400].partition(":")
        ticked[code[:40]] = frozenset(area for area in areas.split(",")[:30] if area)
    return ticked


def _caution_value(code: str, areas: frozenset[str]) -> str:
    """A caution's box value: its code and the areas it is shown for."""
    return f"{code}:{','.join(sorted(areas))}"


def _beside_fields(
    refused: SessionRefusedError, lines: BaseLineFormSet, events: BaseAdverseFormSet
) -> bool:
    """Put a refusal about one line's or one event's field beside that field;
    False when it concerns no single field of the form."""
    forms: list[Any] = []
    index = -1
    if refused.line is not None:
        forms = list(lines.line_forms())
        index = refused.line
    elif refused.event is not None:
        forms = list(events.event_forms())
        index = refused.event
    if not forms or not 0 <= index < len(forms) or refused.field not in forms[index].fields:
        return False
    forms[index].add_error(refused.field, refused.message)
    return True


def _batch_failures_beside(lines: BaseLineFormSet, now: Any) -> None:
    """Gate 5's sentence for a line's recalled or expired batch, beside that
    line's batch too (the page lists every failure at the top)."""
    for line_form in lines.line_forms():
        batch = line_form.cleaned_data.get("batch")
        if batch is None:
            continue
        failures = gate_batches(batches=[batch], on=timezone.localdate(now))
        if failures:
            line_form.add_error("batch", failures[0].sentence)


FOLLOW_UP = "followup"


@dataclass(frozen=True)
class EventOnPage:
    """An adverse event on the session's page: its follow-ups (prefetched),
    how it resolved (None: open), and the follow-up form an open one carries."""

    event: AdverseEvent
    resolution: Resolution | None
    form: AdverseEventFollowUpForm | None


def _events_shown(
    record: SessionRecord, typed: AdverseEventFollowUpForm | None
) -> list[EventOnPage]:
    """Each adverse event of `record`; an open one with an empty follow-up
    form, or the one `typed` (sent for it and refused) with what was typed."""
    shown = []
    typed_for = typed.data.get(f"{FOLLOW_UP}-event") if typed is not None else None
    for index, event in enumerate(record.adverse_events.all()):
        resolution = adverse_event_resolution(event)
        form = None
        if resolution is None or str(event.uuid) == typed_for:
            if typed is not None and str(event.uuid) == typed_for:
                form = typed
                form.auto_id = f"id_{FOLLOW_UP}_{index}_%s"
            else:
                form = AdverseEventFollowUpForm(
                    prefix=FOLLOW_UP,
                    initial={"event": event.uuid},
                    auto_id=f"id_{FOLLOW_UP}_{index}_%s",
                )
        shown.append(EventOnPage(event=event, resolution=resolution, form=form))
    return shown


def _completed_page(
    request: HttpRequest,
    booking: Booking,
    *,
    amendment_form: AmendmentForm | None = None,
    adverse_form: LaterAdverseEventForm | None = None,
    follow_up_form: AdverseEventFollowUpForm | None = None,
    status: int = 200,
) -> HttpResponse:
    record = session_record_of(booking=booking)
    audit_read(request, record or booking, patient_ref=booking.patient.uuid)
    return render(
        request,
        "treatments/session_detail.html",
        {
            "booking": booking,
            "patient": booking.patient,
            "record": record,
            # The aftercare sheet: status (live), download, send again.
            **(document_status_context(session=record) if record else {}),
            "send_form": SendLinkForm(),
            "amendment_form": amendment_form or AmendmentForm(),
            "adverse_form": adverse_form or LaterAdverseEventForm(prefix="later"),
            "events_shown": _events_shown(record, follow_up_form) if record else [],
            "needle_map": needle_map_of(list(record.lines.all())) if record else None,
        },
        status=status,
    )


def _refused_page(request: HttpRequest, booking: Booking, sentence: str) -> HttpResponse:
    return render(
        request,
        "treatments/session_refused.html",
        {"booking": booking, "patient": booking.patient, "sentence": sentence},
        status=409,
    )


@staff(Role.PRACTITIONER)
@require_http_methods(["GET", "POST"])
def session_record(request: HttpRequest, booking: uuid.UUID) -> HttpResponse:
    """Record the cocktail and complete the session; once completed, the record, read-only."""
    user = signed_in_user(request)
    current = session_booking_get(user=user, booking_uuid=booking)
    if request.method == "POST" and SessionForm(request.POST).saved_before(SessionRecord, by=user):
        # This very page was saved already (sent twice): lead to what it saved.
        messages.info(request, AlreadySubmittedError.MESSAGE)
        return HttpResponseRedirect(_record_url(current))
    if current.status == BookingStatus.COMPLETED:
        if request.method == "POST":
            messages.error(request, state_sentence(current.status))
            return _completed_page(request, current, status=409)
        return _completed_page(request, current)
    sentence = state_sentence(current.status)
    if sentence and request.method != "POST":
        return _refused_page(request, current, sentence)
    # A post for a booking cancelled (or marked as missed) while the form was
    # being filled in goes on to the service, which refuses it with the
    # sentence; the page keeps everything typed.

    now = timezone.now()
    usable = list(batches_usable(on=timezone.localdate(now)))
    failures: list[GateFailure] | None = None
    status = 200
    error = ""
    acknowledged: dict[str, frozenset[str]] = {}
    if request.method == "POST":
        data: QueryDict = request.POST
        new_line = line_defaults(booking=current)
        lines_day = None
        adding = _with_line_added(data, new_line.values)
        if adding is not None:
            data, error = adding
        batches = _submitted_batches(data, usable)
        kwargs = {"batches": batches, "usable": usable}
        lines = CocktailLineFormSet(
            data, prefix=LINES, form_kwargs=kwargs, new_line=new_line.values
        )
        events = cast(BaseAdverseFormSet, AdverseEventFormSet(data, prefix=EVENTS))
        form = SessionForm(data, initial={"version": current.version})
        day_of = DayOfCheckForm(data)
        acknowledged = _acknowledged(data)
        if adding is not None:
            # A line more, nothing checked or saved yet: the page again, as typed.
            status = 400 if error else 200
        elif lines.is_valid() and events.is_valid() and form.is_valid() and day_of.is_valid():
            try:
                session_complete(
                    booking=current,
                    completed_by=user,
                    lines=lines.lines(),
                    adverse_events=events.events(),
                    numbing_cream=form.cleaned_data["numbing_cream"],
                    immediate_reactions=form.cleaned_data["immediate_reactions"],
                    notes=form.cleaned_data["notes"],
                    day_of=day_of.answers(),
                    cautions_acknowledged=acknowledged,
                    at=now,
                    expected_version=form.cleaned_data["version"],
                    submission_token=form.cleaned_data["submission_token"],
                )
            except AlreadySubmittedError as repeated:
                messages.info(request, repeated.message)
                return HttpResponseRedirect(_record_url(current))
            except StaleEditError as refusal:
                # The page shows the booking as it is now; everything typed is kept.
                status = form.show_stale(refusal)
                current.refresh_from_db()
            except GatesFailedError as refused:
                failures = refused.failures
                error = _("The session cannot be completed yet. Nothing was saved.")
                status = refusal_status(refused)
                _batch_failures_beside(lines, now)
            except SessionRefusedError as refused:
                status = refusal_status(refused)
                if _beside_fields(refused, lines, events):
                    error = _(
                        "Some details need correcting: see the messages below. Nothing was saved."
                    )
                else:
                    error = refused.message
                # Cancelled or completed meanwhile: the page shows its status now.
                current.refresh_from_db()
            except ValidationError as invalid:
                error = " ".join(invalid.messages)
                status = 400
            else:
                messages.success(
                    request,
                    _("Session completed and recorded for %(name)s.")
                    % {"name": current.patient.full_name},
                )
                return HttpResponseRedirect(_record_url(current))
        else:
            error = _("Some details need correcting: see the messages below. Nothing was saved.")
            status = 400
        chosen = _chosen(lines, batches, data)
        areas = _chosen_areas(lines, data)
    else:
        batches = {str(b.uuid): b for b in usable}
        kwargs = {"batches": batches, "usable": usable}
        prefill = session_prefill(booking=current, usable=usable)
        new_line, lines_day = prefill.new_line, prefill.lines_day
        lines = CocktailLineFormSet(
            initial=prefill.lines, prefix=LINES, form_kwargs=kwargs, new_line=new_line.values
        )
        events = cast(BaseAdverseFormSet, AdverseEventFormSet(prefix=EVENTS))
        form = SessionForm(initial={"version": current.version})
        day_of = DayOfCheckForm()
        chosen = _chosen(lines, batches, None)
        areas = _chosen_areas(lines, None)
    gates = session_gates(
        booking=current,
        batches=chosen,
        areas=areas,
        day_of=None,
        acknowledged=acknowledged,
        at=now,
    )
    if failures is None:
        failures = [f for f in gates.failures if f.gate not in FORM_GATES]
    audit_read(request, current, patient_ref=current.patient.uuid)
    return render(
        request,
        "treatments/session_form.html",
        {
            "booking": current,
            "patient": current.patient,
            "lines": lines,
            # Where the lines and a line added start from, said on the form.
            "lines_from": dates.day(lines_day) if lines_day else "",
            "new_line_from": new_line.source(),
            # The same session for both: said once.
            "new_line_same": lines_day is not None and new_line.session_day == lines_day,
            "events": events,
            "form": form,
            "day_of": day_of,
            "unanswered": set(day_of.unanswered()),
            "cautions": [
                {
                    "code": caution.code,
                    "reason": caution.reason,
                    # One sentence naming today's areas and the reason.
                    "wording": caution_wording(caution),
                    "areas": sorted(caution.areas),
                    "area_labels": area_labels(sorted(caution_areas(caution, areas))),
                    # Ticked again only for the very areas it was ticked for.
                    "value": _caution_value(caution.code, caution_areas(caution, areas)),
                    "acknowledged": acknowledged.get(caution.code) == caution_areas(caution, areas),
                }
                for caution in gates.cautions
            ],
            "failures": failures,
            "blocked_elsewhere": _blocked_elsewhere(failures),
            "error": error,
            # The diagram (css/needle_map.css, js/needle_map.js) and the line
            # the script adds or copies, without a round trip.
            "map_views": blank_map(),
            "empty_line": lines.empty_form,
            "max_lines": MAX_LINES,
            "max_points": MAX_POINTS_PER_LINE,
        },
        status=status,
    )


def _blocked_elsewhere(failures: list[GateFailure]) -> list[str]:
    """What to do, once per kind, about the failures this form cannot clear:
    the medical history (gates 1, 2) and the consent (3) are recorded
    elsewhere, and the booked time (8) clears by itself. Allergy tests (4) and
    batches (5) follow the products and batches chosen here, and the day-of
    answers (6) and cautions (7) are on the form: those are not listed."""
    gates = {failure.gate for failure in failures}
    todo = []
    if 1 in gates:
        todo.append(_("Take the patient's medical history, on the patient's page."))
    if 2 in gates:
        todo.append(_("Do not treat: a contraindication on the medical history stops the session."))
    if 3 in gates:
        todo.append(_("Have the patient sign the consent form, on the patient's page."))
    if 8 in gates:
        opens = min(
            (f.earliest for f in failures if f.gate == 8 and f.earliest is not None), default=None
        )
        todo.append(
            _("Wait: the session can be completed from %(opens)s.")
            % {"opens": dates.day_or_day_time(opens)}
            if opens is not None
            else _("Wait until the session has begun.")
        )
    return todo


def _session(request: HttpRequest, session: uuid.UUID) -> SessionRecord:
    return session_get_for_user(user=signed_in_user(request), session_uuid=session)


@staff(Role.PRACTITIONER)
@require_POST
def session_amend_view(request: HttpRequest, session: uuid.UUID) -> HttpResponse:
    record = _session(request, session)
    form = AmendmentForm(request.POST)
    if form.is_valid():
        try:
            session_amend(
                session=record,
                text=form.cleaned_data["text"],
                amended_by=signed_in_user(request),
                submission_token=form.cleaned_data["submission_token"],
            )
        except AlreadySubmittedError as repeated:
            messages.info(request, repeated.message)
            return HttpResponseRedirect(_record_url(record.booking))
        except ValidationError as invalid:
            form.add_error(None, invalid)
        else:
            messages.success(request, _("Amendment added to the session record."))
            return HttpResponseRedirect(_record_url(record.booking))
    return _completed_page(request, record.booking, amendment_form=form, status=400)


@staff(Role.PRACTITIONER)
@require_POST
def adverse_event_new(request: HttpRequest, session: uuid.UUID) -> HttpResponse:
    record = _session(request, session)
    form = LaterAdverseEventForm(request.POST, prefix="later")
    if form.is_valid():
        try:
            adverse_event_record(
                session=record,
                recorded_by=signed_in_user(request),
                event=form.to_input(),
                at=timezone.now(),
                submission_token=form.cleaned_data["submission_token"],
            )
        except AlreadySubmittedError as repeated:
            messages.info(request, repeated.message)
            return HttpResponseRedirect(_record_url(record.booking))
        except ValidationError as invalid:
            if hasattr(invalid, "error_dict"):
                for field, errors in invalid.error_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                form.add_error(None, invalid)
        else:
            messages.success(request, _("Adverse event recorded against this session."))
            return HttpResponseRedirect(_record_url(record.booking))
    return _completed_page(request, record.booking, adverse_form=form, status=400)


@staff(Role.PRACTITIONER)
@require_POST
def adverse_event_follow_up_new(request: HttpRequest, session: uuid.UUID) -> HttpResponse:
    """Follow up one adverse event of the session (named in the form), and
    mark it resolved when it has settled; back to the session's page."""
    record = _session(request, session)
    user = signed_in_user(request)
    form = AdverseEventFollowUpForm(request.POST, prefix=FOLLOW_UP)
    status = 400
    if form.saved_before(AdverseEventFollowUp, by=user) is not None:
        messages.info(request, AlreadySubmittedError.MESSAGE)
        return HttpResponseRedirect(_record_url(record.booking))
    if form.is_valid():
        event = (
            AdverseEvent.objects.filter(session=record, uuid=form.cleaned_data["event"])
            .select_related("session__booking__patient")
            .first()
        )
        if event is None:
            # Not one of this session's events (another session's, or made
            # up): nothing is written, and the note is given back to copy.
            messages.error(
                request,
                _(
                    "This follow-up was not saved: the adverse event it was sent for is not "
                    "one of this session's. What you wrote: \u201c%(note)s\u201d"
                )
                % {"note": form.cleaned_data["note"]},
            )
            return _completed_page(request, record.booking, status=400)
        try:
            follow_up = adverse_event_follow_up(
                event=event,
                recorded_by=user,
                note=form.cleaned_data["note"],
                resolved=form.cleaned_data["resolved"],
                at=timezone.now(),
                submission_token=form.cleaned_data["submission_token"],
            )
        except AlreadySubmittedError as repeated:
            messages.info(request, repeated.message)
            return HttpResponseRedirect(_record_url(record.booking))
        except AdverseEventResolvedError as refused:
            form.add_error(None, refused.message)
            status = refusal_status(refused)
        except ValidationError as invalid:
            for field, errors in invalid.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            if follow_up.resolved:
                messages.success(request, _("Follow-up added: the adverse event is resolved."))
            else:
                messages.success(request, _("Follow-up added to the adverse event."))
            return HttpResponseRedirect(_record_url(record.booking) + f"#event-{event.uuid}")
    return _completed_page(request, record.booking, follow_up_form=form, status=status)

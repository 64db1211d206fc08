"""The calendar (day and week views) and the manager's rooms, working hours
and closures."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from clinic import dates
from clinic.access import signed_in_user, staff
from clinic.audit import audit_log
from clinic.concurrency import AlreadySubmittedError, StaleEditError
from clinic.models import AuditAction, User
from clinic.roles import Role
from treatments.forms.booking import (
    CalendarQueryForm,
    ClosureForm,
    ClosureRemoveForm,
    RoomForm,
    WorkingHoursClearForm,
    WorkingHoursForm,
)
from treatments.gates import GateFailure
from treatments.models import (
    FINISHED_STATUSES,
    Booking,
    BookingStatus,
    ClinicClosure,
    Room,
    WorkingHours,
)
from treatments.selectors.booking import bookings_on_days, practitioners, working_hours_version
from treatments.selectors.calendar import (
    MAX_LANES,
    MAX_SPAN,
    Calendar,
    CalendarBooking,
    SafeToTreatWords,
    WeekBooking,
    calendar_build,
    calendar_frame,
    safe_to_treat_sentence,
)
from treatments.selectors.calendar_cache import facts_version, grid_get, grid_key, grid_put
from treatments.selectors.readiness import week_readiness
from treatments.services.booking import (
    BookingRefusedError,
    closure_add,
    closure_dates_problem,
    closure_remove,
    closure_update,
    room_save,
    working_hours_add,
    working_hours_clear,
)
from treatments.views.booking import READ_ROLES, WRITE_ROLES


@dataclass(frozen=True)
class _Words:
    """Translated words and URLs of the grid, looked up once per page."""

    readiness: SafeToTreatWords
    statuses: dict[str, str]
    booking_url: str  # with {uuid} to fill in
    move_url: str  # with {uuid} to fill in
    more: str  # with %(count)s: the bookings beyond the lanes drawn


def _words() -> _Words:
    placeholder = "00000000-0000-4000-8000-000000000000"
    url = reverse("treatments:booking_detail", kwargs={"booking": placeholder})
    return _Words(
        readiness=SafeToTreatWords(),
        statuses={value: str(label) for value, label in BookingStatus.choices},
        booking_url=url.replace(placeholder, "{uuid}"),
        move_url=reverse("treatments:booking_move", kwargs={"booking": placeholder}).replace(
            placeholder, "{uuid}"
        ),
        more=_("+%(count)s more"),
    )


class _Cards:
    """The grid's booking cards, as safe HTML built by `format_html`.

    Eight hundred cards through the template engine cost more than everything
    else on the page; here each card is one `format_html` of a fixed pattern
    (every value escaped on the way in), with what is the same for every card
    (the translated badges, the URLs, a practitioner's name and room) worked
    out once per page. Its lane classes place it beside the bookings it
    overlaps (`calendar_build`; static/css/calendar.css)."""

    CARD = (
        '<a class="cal-booking {classes}" href="{href}"'
        ' data-testid="booking" data-booking="{uuid}"{drag}><span class="cal-when">'
        "{starts}\N{EN DASH}{ends}</span>"
        '<strong class="cal-patient">{patient}</strong>'
        '<span class="cal-badges"><span class="badge cal-status-badge">{status_label}</span>'
        "{badge}</span>"
        '<span class="cal-protocol">{protocol}</span>{who}{notes}</a>'
    )
    DRAG = (
        ' draggable="true" data-move="{move}" data-practitioner="{practitioner}"'
        ' data-room="{room}" data-version="{version}"'
    )
    NOT_READY = (
        '<span class="badge text-bg-warning" data-testid="not-ready" title="{notes}">{label}</span>'
    )
    NOTES = '<span class="cal-notes" data-testid="safe-to-treat">{}</span>'
    MORE = (
        '<details class="cal-more cal-lane-{lane} cal-lanes-{lanes}" data-testid="more-bookings"'
        ' data-count="{count}"><summary>{summary}<span class="visually-hidden"> {context}</span>'
        '</summary><ul class="cal-more-list">{items}</ul></details>'
    )
    MORE_ITEM = (
        '<li><a href="{}" data-more-booking="{}"><span class="cal-when">{}\N{EN DASH}{}</span>'
        " {}</a></li>"
    )

    def __init__(self, cal: Calendar, *, can_write: bool) -> None:
        self.words = _words()
        self.can_write = can_write
        self.show_who = cal.view == "week" and cal.practitioner is None
        self.readiness_checked = cal.readiness_checked
        self.safe = format_html(
            '<span class="badge text-bg-success" data-testid="safe">{}</span>',
            self.words.readiness.safe,
        )
        self.statuses = self.words.statuses
        self.who: dict[tuple[str, str], SafeString] = {}
        self.classes: dict[tuple[str, int, int, int], SafeString] = {}

    def _classes(self, item: CalendarBooking) -> SafeString:
        """The card's status, length and lane classes: a handful of
        combinations on a page, each escaped once. A card beyond the lanes
        drawn (`CalendarBooking.hidden`) has no lane: the grid lists it under
        "+k more", the list of days shows it (static/css/calendar.css)."""
        key = (
            item.booking.status,
            min(item.span, MAX_SPAN),
            -1 if item.hidden else min(item.lane, MAX_LANES - 1),
            min(item.lanes, MAX_LANES),
        )
        found = self.classes.get(key)
        if found is None:
            found = self.classes[key] = (
                format_html("cal-status-{} cal-len-{} cal-overflow", *key[:2])
                if item.hidden
                else format_html("cal-status-{} cal-len-{} cal-lane-{} cal-lanes-{}", *key)
            )
        return found

    def more(self, hidden: list[CalendarBooking]) -> SafeString:
        """The last lane's "+k more" for the `hidden` bookings starting in one
        row: a disclosure (no script) listing each one's times and patient,
        each a link to its booking."""
        times = ", ".join(dict.fromkeys(dates.clock(item.starts) for item in hidden))
        return format_html(
            self.MORE,
            lane=MAX_LANES - 1,
            lanes=MAX_LANES,
            count=len(hidden),
            summary=self.words.more % {"count": len(hidden)},
            context=ngettext(
                "booking starting at %(times)s", "bookings starting at %(times)s", len(hidden)
            )
            % {"times": times},
            items=format_html_join(
                "",
                self.MORE_ITEM,
                (
                    (
                        self.words.booking_url.format(uuid=item.booking.uuid),
                        item.booking.uuid,
                        dates.clock(item.starts),
                        dates.clock(item.ends),
                        item.booking.patient_name,
                    )
                    for item in hidden
                ),
            ),
        )

    def _who(self, booking: WeekBooking) -> SafeString:
        key = (booking.practitioner_name, booking.room_name)
        found = self.who.get(key)
        if found is None:
            found = self.who[key] = format_html(
                '<span class="cal-who">{} · {}</span>', key[0], key[1]
            )
        return found

    def card(self, item: CalendarBooking) -> SafeString:
        """One booking in the grid, as HTML."""
        booking = item.booking
        badge: SafeString | str = ""
        notes: SafeString | str = ""
        # A finished booking's card says its outcome (the status badge) alone.
        if self.readiness_checked and booking.status not in FINISHED_STATUSES:
            if item.safe:
                badge = self.safe
            else:
                sentence = safe_to_treat_sentence(item.readiness, self.words.readiness)
                badge = format_html(
                    self.NOT_READY, notes=sentence, label=self.words.readiness.not_ready
                )
                notes = format_html(self.NOTES, sentence)
        # Booked sessions can be dragged to a free time (static/js/calendar.js); the
        # move sends the version shown, so a booking changed since is not moved.
        drag: SafeString | str = (
            format_html(
                self.DRAG,
                move=self.words.move_url.format(uuid=booking.uuid),
                practitioner=booking.practitioner_uuid,
                room=booking.room_uuid,
                version=booking.version,
            )
            if self.can_write and booking.status == BookingStatus.BOOKED
            else ""
        )
        return format_html(
            self.CARD,
            classes=self._classes(item),
            href=self.words.booking_url.format(uuid=booking.uuid),
            uuid=booking.uuid,
            drag=drag,
            starts=dates.clock(item.starts),
            ends=dates.clock(item.ends),
            patient=booking.patient_name,
            protocol=booking.protocol_name,
            who=self._who(booking) if self.show_who else "",
            status_label=self.statuses.get(booking.status) or booking.status,
            badge=badge,
            notes=notes,
        )


def _render_cells(cal: Calendar, *, can_write: bool) -> None:
    """Fill in each cell's HTML: its bookings' cards, or a link to book a free
    time. Each cell names its column (`cal-col-N`, from 1) and says whether
    it holds a booking (`cal-busy`): on a narrow screen the week reads as a
    list of each day's bookings (static/css/calendar.css)."""
    new_url = reverse("treatments:booking_new")
    book_at = _("Book at %(time)s")
    cards = _Cards(cal, can_write=can_write)
    for row in cal.rows:
        label = book_at % {"time": dates.clock(row.at)}
        for number, cell in enumerate(row.cells, start=1):
            inner: SafeString | str = ""
            if cell.bookings:
                hidden = [item for item in cell.bookings if item.hidden]
                inner = format_html(
                    '<div class="cal-items">{}{}</div>',
                    format_html_join("", "{}", ((cards.card(item),) for item in cell.bookings)),
                    cards.more(hidden) if hidden else "",
                )
            elif can_write and cell.free_query:
                inner = format_html(
                    '<a class="cal-free" data-testid="free-slot" href="{}?{}" aria-label="{}"></a>',
                    new_url,
                    cell.free_query,
                    label,
                )
            cell.html = format_html(
                '<td class="cal-cell cal-{} cal-col-{}{}"><div class="cal-slot">{}</div></td>',
                cell.state,
                number,
                " cal-busy" if cell.bookings else "",
                inner,
            )


def _bad_calendar(request: HttpRequest, message: str) -> HttpResponse:
    return render(
        request,
        "treatments/calendar_bad_request.html",
        {"message": message, "today": timezone.localdate()},
        status=400,
    )


class _WeekJudge:
    """Ready-to-treat for `calendar_build`, noting how long its answer holds."""

    holds_until: datetime | None = None

    def __call__(
        self, *, bookings: list[WeekBooking], at: datetime
    ) -> dict[int, list[GateFailure]]:
        judged = week_readiness(bookings=bookings, at=at)
        self.holds_until = judged.holds_until
        return judged.failures


# The session remembers the last view chosen (day or week).
VIEW_SESSION_KEY = "calendar_view"


def _chosen_view(request: HttpRequest, user: User, asked: str) -> str:
    """The view to show: the one asked for (`?view=`, remembered for the rest
    of the session), else the last one chosen, else the day view for
    reception (today's patients, one column per practitioner) and the week
    view for everyone else."""
    if asked:
        if request.session.get(VIEW_SESSION_KEY) != asked:
            request.session[VIEW_SESSION_KEY] = asked
        return asked
    remembered = request.session.get(VIEW_SESSION_KEY)
    if remembered in ("day", "week"):
        return str(remembered)
    return "day" if Role.RECEPTIONIST in user.roles else "week"


@staff(*READ_ROLES)
@require_GET
def calendar(request: HttpRequest) -> HttpResponse:
    """Day view (a column per practitioner) or week view (a column per day),
    on today unless `?date=` says otherwise; the view is `?view=`, else the
    last one chosen, else the day view for reception (`_chosen_view`).

    The grid's rows (bookings, ready-to-treat flags, free times) come from the
    cache when the clinical facts have not changed since they were computed
    for the same view, filters, roles and language
    (`treatments.selectors.calendar_cache`); otherwise they are computed
    through the gates and kept."""
    # The facts' version first: whatever is read after it is at least as new.
    version = facts_version()
    form = CalendarQueryForm(request.GET)
    if not form.is_valid():
        if form.has_error("date", code="out_of_range"):
            return _bad_calendar(request, str(form.errors["date"][0]))
        if "date" in form.errors:
            return _bad_calendar(request, _("The date is not valid: use the form 2026-11-23."))
        if "view" in form.errors:
            return _bad_calendar(request, _("Choose the day view or the week view."))
        return _bad_calendar(request, _("That practitioner or room is not known."))
    data = form.cleaned_data
    practitioner = None
    if data.get("practitioner"):
        practitioner = practitioners().filter(uuid=data["practitioner"]).first()
        if practitioner is None:
            return _bad_calendar(request, _("That practitioner is not known."))
    room = None
    if data.get("room"):
        room = Room.objects.filter(uuid=data["room"]).first()
        if room is None:
            return _bad_calendar(request, _("That room is not known."))
    now = timezone.now()
    user = signed_in_user(request)
    view = _chosen_view(request, user, data.get("view") or "")
    day = data.get("date") or timezone.localdate()
    can_write = user.has_any_role(WRITE_ROLES)
    frame = calendar_frame(view=view, day=day, practitioner=practitioner, room=room)
    key = (
        grid_key(
            version=version,
            view=view,
            first_day=frame.days[0],
            practitioner=practitioner.uuid if practitioner is not None else None,
            room=room.uuid if room is not None else None,
            roles=(role.value for role in user.roles),
        )
        if version is not None
        else None
    )
    rows = grid_get(key, at=now) if key is not None else None
    if rows is None:
        judge = _WeekJudge()
        built = calendar_build(
            view=view,
            day=day,
            practitioner=practitioner,
            room=room,
            at=now,
            readiness=judge,
            frame=frame,
        )
        _render_cells(built, can_write=can_write)
        rows = render_to_string("treatments/calendar_rows.html", {"cal": built})
        # Kept only if no change was committed while it was computed: the rows
        # are then the facts of exactly that version.
        if key is not None and facts_version() == version:
            grid_put(key, rows, at=now, holds_until=judge.holds_until)
    frame.readiness_checked = True
    # The calendar shows patients' names: record that it was seen.
    audit_log(actor=request.user, action=AuditAction.VIEW, object_type="treatments.calendar")
    return render(
        request,
        "treatments/calendar_view.html",
        {
            "cal": frame,
            "rows": rows,
            "today": timezone.localdate(),
            "can_write": can_write,
        },
    )


# --- Rooms, working hours, closures (managers) -------------------------------------------


@staff(Role.MANAGER)
@require_GET
def room_list(request: HttpRequest) -> HttpResponse:
    return render(request, "treatments/room_list.html", {"rooms": Room.objects.order_by("name")})


@staff(Role.MANAGER)
@require_http_methods(["GET", "POST"])
def room_new(request: HttpRequest) -> HttpResponse:
    return _room_form(request, None)


@staff(Role.MANAGER)
@require_http_methods(["GET", "POST"])
def room_edit(request: HttpRequest, room: uuid.UUID) -> HttpResponse:
    return _room_form(request, get_object_or_404(Room, uuid=room))


def _room_form(request: HttpRequest, room: Room | None) -> HttpResponse:
    form = RoomForm(request.POST or None, instance=room)
    status = 200
    user = signed_in_user(request)
    if room is None and form.saved_before(Room, by=user) is not None:
        messages.info(request, AlreadySubmittedError.MESSAGE)
        return HttpResponseRedirect(reverse("treatments:room_list"))
    if request.method == "POST" and form.is_valid():
        values = {"name": form.cleaned_data["name"], "active": form.cleaned_data["active"]}
        try:
            room_save(
                room=room,
                saved_by=user,
                expected_version=form.cleaned_data.get("version"),
                submission_token=form.cleaned_data["submission_token"],
                **(values if room is None else form.typed(values)),
            )
        except AlreadySubmittedError as repeated:
            messages.info(request, repeated.message)
            return HttpResponseRedirect(reverse("treatments:room_list"))
        except StaleEditError as refusal:
            status = form.show_stale(refusal)
        else:
            messages.success(request, _("Room saved."))
            return HttpResponseRedirect(reverse("treatments:room_list"))
    if form.errors and status == 200:
        status = 400
    return render(
        request,
        "treatments/room_form.html",
        {"form": form, "room": room},
        status=status,
    )


def _practitioner_from(request: HttpRequest) -> User | None:
    value = request.POST.get("practitioner") or request.GET.get("practitioner") or ""
    try:
        wanted = uuid.UUID(value)
    except ValueError:
        return None
    return practitioners().filter(uuid=wanted).first()


def _hours_page(
    request: HttpRequest,
    chosen: User | None,
    form: WorkingHoursForm,
    *,
    status: int = 200,
    stale: StaleEditError | None = None,
) -> HttpResponse:
    """The hours page: the practitioner's week as it is now (with its version,
    sent by every form on the page), the add form, and any refusal."""
    names = dict(WorkingHoursForm.base_fields["weekday"].choices)  # type: ignore[attr-defined]
    hours = (
        [
            (names[h.weekday], h)
            for h in WorkingHours.objects.filter(practitioner=chosen).order_by("weekday", "starts")
        ]
        if chosen
        else []
    )
    return render(
        request,
        "treatments/hours_form.html",
        {
            "form": form,
            "staff_list": list(practitioners()),
            "chosen": chosen,
            "hours": hours,
            "hours_version": working_hours_version(chosen) if chosen else "",
            "stale": stale or form.stale,
            "reload_url": reverse("treatments:hours_edit")
            + (f"?practitioner={chosen.uuid}" if chosen else ""),
        },
        status=status,
    )


@staff(Role.MANAGER)
@require_http_methods(["GET", "POST"])
def hours_edit(request: HttpRequest) -> HttpResponse:
    """A practitioner's weekly hours: add an interval on a day, or clear a day.
    A change made from a page showing an older week is refused (409)."""
    chosen = _practitioner_from(request)
    opened = working_hours_version(chosen) if chosen else ""
    form = WorkingHoursForm(request.POST or None, initial={"version": opened})
    status = 200
    if request.method == "POST":
        if chosen is None:
            messages.error(request, _("Choose a practitioner."))
            status = 400
        elif form.is_valid():
            try:
                working_hours_add(
                    practitioner=chosen,
                    weekday=form.cleaned_data["weekday"],
                    starts=form.cleaned_data["starts"],
                    ends=form.cleaned_data["ends"],
                    added_by=signed_in_user(request),
                    expected_version=form.cleaned_data["version"],
                    submission_token=form.cleaned_data["submission_token"],
                )
            except AlreadySubmittedError as repeated:
                messages.info(request, repeated.message)
                return HttpResponseRedirect(
                    reverse("treatments:hours_edit") + f"?practitioner={chosen.uuid}"
                )
            except StaleEditError as refusal:
                status = form.show_stale(refusal)
            except BookingRefusedError as error:
                form.add_error(None, error.message)
                status = 400
            else:
                messages.success(request, _("Working hours saved."))
                return HttpResponseRedirect(
                    reverse("treatments:hours_edit") + f"?practitioner={chosen.uuid}"
                )
        else:
            status = 400
    return _hours_page(request, chosen, form, status=status)


@staff(Role.MANAGER)
@require_POST
def hours_clear(request: HttpRequest) -> HttpResponse:
    """Clear a day of a practitioner's hours; refused (409) from a page showing
    an older week."""
    chosen = _practitioner_from(request)
    form = WorkingHoursClearForm(request.POST)
    valid = form.is_valid()
    if chosen is None or "weekday" in form.errors:
        messages.error(request, _("Choose a practitioner and a day."))
        return HttpResponseRedirect(reverse("treatments:hours_edit"))
    add_form = WorkingHoursForm(initial={"version": working_hours_version(chosen)})
    if not valid:
        for error in form.non_field_errors():
            messages.error(request, str(error))
        return _hours_page(request, chosen, add_form, status=400)
    try:
        working_hours_clear(
            practitioner=chosen,
            weekday=form.cleaned_data["weekday"],
            cleared_by=signed_in_user(request),
            expected_version=form.cleaned_data["version"],
        )
    except StaleEditError as refusal:
        status = form.show_stale(refusal)
        for error in form.non_field_errors():
            messages.error(request, str(error))
        return _hours_page(request, chosen, add_form, status=status, stale=form.stale)
    messages.success(request, _("That day's hours are cleared."))
    return HttpResponseRedirect(reverse("treatments:hours_edit") + f"?practitioner={chosen.uuid}")


@dataclass(frozen=True)
class ClosureClash:
    """Bookings on the days a closure was refused for: the first ones, in
    time order, and how many there are in all."""

    bookings: list[Booking]
    total: int

    @property
    def more(self) -> int:
        return self.total - len(self.bookings)


def _closure_refused(
    form: ClosureForm,
    refusal: BookingRefusedError,
    *,
    already_closed: tuple[date, date] | None = None,
) -> ClosureClash | None:
    """Put a closure's refusal on its form. Refused because the days hold
    bookings, those are returned to be listed one a line, each with its
    link (the refusal's own sentence runs them together)."""
    first, last = form.cleaned_data.get("starts_on"), form.cleaned_data.get("ends_on")
    if first and last and closure_dates_problem(first, last, today=timezone.localdate()) is None:
        shown, total = bookings_on_days(first, last, already_closed=already_closed)
        if shown:
            form.add_error("starts_on", _("These days hold bookings: they are listed above."))
            return ClosureClash(bookings=shown, total=total)
    field = refusal.field if refusal.field in form.fields else None
    form.add_error(field, refusal.message)
    return None


@staff(Role.MANAGER)
@require_http_methods(["GET", "POST"])
def closure_list(request: HttpRequest) -> HttpResponse:
    """The closures from this month on, each with its edit and remove buttons,
    and the form to add one."""
    form = ClosureForm(request.POST or None)
    clash = None
    if form.saved_before(ClinicClosure, by=signed_in_user(request)) is not None:
        messages.info(request, AlreadySubmittedError.MESSAGE)
        return HttpResponseRedirect(reverse("treatments:closure_list"))
    if request.method == "POST" and form.is_valid():
        try:
            closure_add(
                starts_on=form.cleaned_data["starts_on"],
                ends_on=form.cleaned_data["ends_on"],
                reason=form.cleaned_data["reason"],
                added_by=signed_in_user(request),
                submission_token=form.cleaned_data["submission_token"],
            )
        except AlreadySubmittedError:
            messages.info(request, AlreadySubmittedError.MESSAGE)
            return HttpResponseRedirect(reverse("treatments:closure_list"))
        except BookingRefusedError as refusal:
            clash = _closure_refused(form, refusal)
        else:
            messages.success(request, _("Closure added."))
            return HttpResponseRedirect(reverse("treatments:closure_list"))
    closures = ClinicClosure.objects.filter(
        ends_on__gte=timezone.localdate().replace(day=1)
    ).order_by("starts_on", "id")
    return render(
        request,
        "treatments/closure_list.html",
        {"form": form, "closures": closures, "clash": clash},
        status=400 if form.errors else 200,
    )


def _closure_page(
    request: HttpRequest,
    closure: ClinicClosure,
    form: ClosureForm,
    *,
    status: int = 200,
    stale: StaleEditError | None = None,
    clash: ClosureClash | None = None,
) -> HttpResponse:
    return render(
        request,
        "treatments/closure_form.html",
        {
            "form": form,
            "closure": closure,
            "remove_form": ClosureRemoveForm(initial={"version": closure.version}),
            "stale": stale or form.stale,
            "clash": clash,
        },
        status=status,
    )


@staff(Role.MANAGER)
@require_http_methods(["GET", "POST"])
def closure_edit(request: HttpRequest, closure: uuid.UUID) -> HttpResponse:
    """Change a closure's days or reason. A save opened before someone else's
    is refused (409) with what they changed; what was typed stays in the form."""
    found = get_object_or_404(ClinicClosure, uuid=closure)
    closed = (found.starts_on, found.ends_on)  # before the form writes what was typed on it
    form = ClosureForm(request.POST or None, instance=found)
    status = 200
    clash = None
    if request.method == "POST":
        if form.is_valid():
            try:
                closure_update(
                    closure=found,
                    starts_on=form.cleaned_data["starts_on"],
                    ends_on=form.cleaned_data["ends_on"],
                    reason=form.cleaned_data["reason"],
                    updated_by=signed_in_user(request),
                    expected_version=form.cleaned_data.get("version"),
                )
            except StaleEditError as refusal:
                status = form.show_stale(refusal)
            except BookingRefusedError as refusal:
                clash = _closure_refused(form, refusal, already_closed=closed)
            else:
                messages.success(request, _("Closure saved."))
                return HttpResponseRedirect(reverse("treatments:closure_list"))
        if form.errors and status == 200:
            status = 400
        # Show the closure as saved now (the form keeps what was typed).
        found.refresh_from_db()
    return _closure_page(request, found, form, status=status, clash=clash)


@staff(Role.MANAGER)
@require_POST
def closure_remove_view(request: HttpRequest, closure: uuid.UUID) -> HttpResponse:
    """Remove a closure, as the page showed it: if someone changed it since,
    the edit page shows what changed (409) and nothing is removed."""
    found = get_object_or_404(ClinicClosure, uuid=closure)
    form = ClosureRemoveForm(request.POST, initial={"version": found.version})
    if not form.is_valid():
        for error in form.non_field_errors():
            messages.error(request, str(error))
        return _closure_page(request, found, ClosureForm(instance=found), status=400)
    try:
        closure_remove(
            closure=found,
            removed_by=signed_in_user(request),
            expected_version=form.cleaned_data["version"],
        )
    except StaleEditError as refusal:
        found.refresh_from_db()
        edit_form = ClosureForm(instance=found)
        if not refusal.is_stale:
            messages.error(request, refusal.message)
            return _closure_page(request, found, edit_form, status=400)
        return _closure_page(request, found, edit_form, status=409, stale=refusal)
    messages.success(request, _("Closure removed: those days can be booked again."))
    return HttpResponseRedirect(reverse("treatments:closure_list"))

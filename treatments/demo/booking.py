"""Demo calendar for `manage.py seed_demo` (idempotent): two rooms, a second
practitioner, working hours, the next bank holiday closed, and a dozen
bookings this week and next, one of them the start of a six-session course,
all through the booking services (the past sessions are treatments.demo.session's)."""

from __future__ import annotations

from datetime import date, time, timedelta

from django.conf import settings
from django.utils import timezone

from clinic.demo_clock import OPENED_DAYS_AGO, clinic_time, clock_at, working_day
from clinic.localtime import local_instant
from clinic.models import User
from clinic.roles import Role
from clinic.services import staff_user_create
from patients.models import Patient
from treatments.models import ClinicClosure, Protocol, Room, TreatmentCourse, WorkingHours
from treatments.selectors.booking import next_free_slot
from treatments.services.booking import (
    BookingRefusedError,
    booking_create,
    closure_add,
    room_save,
    working_hours_add,
)
from treatments.services.course import CourseRefusedError, course_book, course_propose

ROOMS = ("Treatment room 1", "Treatment room 2")

# Bank holidays in England and Wales (gov.uk), for the demo's one closure.
BANK_HOLIDAYS: tuple[tuple[date, str], ...] = (
    (date(2026, 12, 25), "Christmas Day"),
    (date(2026, 12, 28), "Boxing Day (substitute day)"),
    (date(2027, 1, 1), "New Year's Day"),
    (date(2027, 3, 26), "Good Friday"),
    (date(2027, 3, 29), "Easter Monday"),
    (date(2027, 5, 3), "Early May bank holiday"),
    (date(2027, 5, 31), "Spring bank holiday"),
    (date(2027, 8, 30), "Summer bank holiday"),
    (date(2027, 12, 27), "Christmas Day (substitute day)"),
    (date(2027, 12, 28), "Boxing Day (substitute day)"),
)

# Bookings of this week and next, made today by reception: (the patient's
# email before the @, protocol, days after this week's Monday, local hour).
# Each shows reception what stands in the way (treatments.gates): Isla is
# new (no history, consent or allergy test yet), Grace now takes an
# anticoagulant and Freya isotretinoin (see the practitioner), Theo's
# allergy reading is due. Amelia's and Oliver's courses are booked apart.
PLAN: tuple[tuple[str, str, int, int], ...] = (
    ("isla.moreno", "Revitalising", 0, 14),
    ("grace.okafor", "Cellulite", 1, 11),
    ("freya.lindqvist", "Under-eye", 1, 15),
    ("theo.fairbairn", "Hands", 2, 9),
    ("isla.moreno", "Revitalising", 4, 10),
    ("grace.okafor", "Cellulite", 7, 13),
    ("freya.lindqvist", "Under-eye", 8, 10),
    ("theo.fairbairn", "Hands", 9, 16),
    ("isla.moreno", "Revitalising", 10, 11),
)


def _second_practitioner(reception: User) -> User:
    """The demo's second practitioner: one of seed_demo's demo staff, made
    here too when this part is seeded on its own."""
    existing = User.objects.filter(username="practitioner2").first()
    if existing is not None:
        return existing
    return staff_user_create(
        username="practitioner2",
        password=settings.DEMO_PASSWORD or "demo-clinic-2026",
        roles=[Role.PRACTITIONER],
        first_name="Sam",
        last_name="Okoye",
        email="practitioner2@demo.clinic.invalid",
        created_by=reception,
    )


def _hours(user: User, *, saturday: bool, added_by: User) -> int:
    if WorkingHours.objects.filter(practitioner=user).exists():
        return 0
    days = [(d, time(9), time(17, 30)) for d in range(5)]
    if saturday:
        days.append((5, time(9), time(13)))
    for weekday, starts, ends in days:
        working_hours_add(
            practitioner=user,
            weekday=weekday,
            starts=starts,
            ends=ends,
            added_by=added_by,
            expected_version=None,
        )
    return len(days)


def seed(*, practitioner: User, reception: User) -> int:
    """Add the rooms, working hours and closure missing, and, the first time
    (no demo room yet), the bookings; return how many objects were added.
    The manager set up the rooms and hours when the demo clinic opened
    (clinic.demo_clock); reception books today."""
    protocols = list(Protocol.objects.filter(active=True).order_by("name"))
    if not protocols:
        return 0
    manager = User.objects.filter(username="manager").first() or reception
    added = 0
    calendar_seeded = Room.objects.filter(name__in=ROOMS).exists()
    second = _second_practitioner(reception)
    rooms = {room.name: room for room in Room.objects.filter(name__in=ROOMS)}
    staffed = set(
        WorkingHours.objects.filter(practitioner__in=[practitioner, second]).values_list(
            "practitioner_id", flat=True
        )
    )
    if len(rooms) < len(ROOMS) or len(staffed) < 2:
        # The manager set them up when the demo clinic opened.
        with clock_at(clinic_time(working_day(OPENED_DAYS_AGO), 9)):
            for name in ROOMS:
                if name not in rooms:
                    rooms[name] = room_save(room=None, name=name, active=True, saved_by=manager)
                    added += 1
            added += _hours(practitioner, saturday=True, added_by=manager)
            added += _hours(second, saturday=False, added_by=manager)
    room_list = [rooms[name] for name in ROOMS]

    today = timezone.localdate()
    upcoming = next(((d, r) for d, r in BANK_HOLIDAYS if d > today), None)
    if upcoming and not ClinicClosure.objects.exists():
        closure_add(
            starts_on=upcoming[0], ends_on=upcoming[0], reason=upcoming[1], added_by=manager
        )
        added += 1

    patients = {
        p.email.split("@")[0]: p
        for p in Patient.objects.filter(email__endswith="@demo.clinic.invalid")
    }
    if not patients or calendar_seeded:
        return added
    staff = (practitioner, second)
    monday = today - timedelta(days=today.weekday())
    by_name = {p.name: p for p in protocols}
    for index, (key, name, offset, hour) in enumerate(PLAN):
        patient, protocol = patients.get(key), by_name.get(name)
        if patient is None or protocol is None:
            continue
        who, room = staff[index % 2], room_list[index % 2]
        wanted = max(
            timezone.now(),
            local_instant(monday + timedelta(days=offset), time(hour)),
        )
        starts = next_free_slot(
            practitioner=who,
            room=room,
            duration=timedelta(minutes=protocol.session_minutes),
            patient=patient,
            after=wanted,
            horizon_days=14,
        )
        if starts is None:
            continue
        try:
            booking_create(
                patient=patient,
                practitioner=who,
                room=room,
                protocol=protocol,
                starts_at=starts,
                ends_at=starts + timedelta(minutes=protocol.session_minutes),
                created_by=reception,
            )
        except BookingRefusedError:
            continue
        added += 1

    amelia = patients.get("amelia.hart")
    if amelia is not None and not TreatmentCourse.objects.filter(patient=amelia).exists():
        # The protocol she consented to and was allergy-tested for: ready to treat.
        protocol = next((p for p in protocols if p.name == "Revitalising"), protocols[0])
        first = next_free_slot(
            practitioner=practitioner,
            room=room_list[0],
            duration=timedelta(minutes=protocol.session_minutes),
            patient=amelia,
            after=max(
                timezone.now(),
                local_instant(today + timedelta(days=1), time(10)),
            ),
        )
        if first is not None:
            proposals = course_propose(
                patient=amelia,
                protocol=protocol,
                practitioner=practitioner,
                room=room_list[0],
                first_start=first,
                sessions=6,
            )
            sessions = [p.starts_at for p in proposals if p.starts_at is not None]
            try:
                course_book(
                    patient=amelia,
                    protocol=protocol,
                    practitioner=practitioner,
                    room=room_list[0],
                    starts=sessions,
                    interval=protocol.interval,
                    created_by=reception,
                )
                added += 1 + len(sessions)
            except CourseRefusedError:
                pass
    return added

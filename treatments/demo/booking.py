"""Demo calendar for `manage.py seed_demo` (idempotent): two rooms, a second
practitioner, working hours, the next bank holiday closed, and a dozen
bookings this week and next, one of them the start of a six-session course."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.utils import timezone

from clinic.models import User
from clinic.roles import Role
from clinic.services import staff_user_create
from patients.models import Patient
from treatments.models import Booking, ClinicClosure, Protocol, Room, TreatmentCourse, WorkingHours
from treatments.selectors.booking import next_free_slot
from treatments.services.booking import BookingRefusedError, booking_create, closure_add, room_save
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

# Demo patients by email, each with a day offset and a local start hour.
PLAN: tuple[tuple[str, int, int], ...] = (
    ("oliver.bennett", 0, 10),
    ("isla.moreno", 0, 14),
    ("grace.okafor", 1, 11),
    ("freya.lindqvist", 1, 15),
    ("theo.fairbairn", 2, 9),
    ("oliver.bennett", 3, 12),
    ("isla.moreno", 4, 10),
    ("grace.okafor", 7, 13),
    ("freya.lindqvist", 8, 10),
    ("theo.fairbairn", 9, 16),
    ("isla.moreno", 10, 11),
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


def _hours(user: User, *, saturday: bool) -> int:
    if WorkingHours.objects.filter(practitioner=user).exists():
        return 0
    days = [(d, time(9), time(17, 30)) for d in range(5)]
    if saturday:
        days.append((5, time(9), time(13)))
    WorkingHours.objects.bulk_create(
        WorkingHours(practitioner=user, weekday=d, starts=s, ends=e) for d, s, e in days
    )
    return len(days)


def seed(*, practitioner: User, reception: User) -> int:
    protocols = list(Protocol.objects.filter(active=True).order_by("name"))
    if not protocols:
        return 0
    added = 0
    rooms = []
    for name in ROOMS:
        room = Room.objects.filter(name=name).first()
        if room is None:
            room = room_save(room=None, name=name, active=True, saved_by=reception)
            added += 1
        rooms.append(room)
    second = _second_practitioner(reception)
    added += _hours(practitioner, saturday=True) + _hours(second, saturday=False)

    today = timezone.localdate()
    upcoming = next(((d, r) for d, r in BANK_HOLIDAYS if d > today), None)
    if upcoming and not ClinicClosure.objects.filter(starts_on=upcoming[0]).exists():
        closure_add(
            starts_on=upcoming[0], ends_on=upcoming[0], reason=upcoming[1], added_by=reception
        )
        added += 1

    patients = {
        p.email.split("@")[0]: p
        for p in Patient.objects.filter(email__endswith="@demo.clinic.invalid")
    }
    if (
        not patients
        or Booking.objects.filter(patient__in=patients.values(), created_by=reception).exists()
    ):
        return added
    staff = (practitioner, second)
    monday = today - timedelta(days=today.weekday())
    for index, (key, offset, hour) in enumerate(PLAN):
        patient = patients.get(key)
        if patient is None:
            continue
        who, room = staff[index % 2], rooms[index % 2]
        protocol = protocols[index % len(protocols)]
        wanted = max(
            timezone.now(),
            timezone.make_aware(datetime.combine(monday + timedelta(days=offset), time(hour))),
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
            room=rooms[0],
            duration=timedelta(minutes=protocol.session_minutes),
            patient=amelia,
            after=max(
                timezone.now(),
                timezone.make_aware(datetime.combine(today + timedelta(days=1), time(10))),
            ),
        )
        if first is not None:
            proposals = course_propose(
                patient=amelia,
                protocol=protocol,
                practitioner=practitioner,
                room=rooms[0],
                first_start=first,
                sessions=6,
            )
            sessions = [p.starts_at for p in proposals if p.starts_at is not None]
            try:
                course_book(
                    patient=amelia,
                    protocol=protocol,
                    practitioner=practitioner,
                    room=rooms[0],
                    starts=sessions,
                    interval=protocol.interval,
                    created_by=reception,
                )
                added += 1 + len(sessions)
            except CourseRefusedError:
                pass
    return added

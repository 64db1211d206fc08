"""The load test's data: a clinic larger than the demo, 30 staff accounts, and
what the simulated staff open.

    python -m tests.load.prepare --out accounts.json [--staff 30] [--patients 5000]
    python -m tests.load.prepare --close

Run after `manage.py seed_demo` (its protocols and its six patients with full
clinical records are used). Adds, once (later runs add only what is missing):
`--patients` patients with common names (created by "loadtest-seed"), and,
for the first BOOKED_PRACTITIONERS practitioners, WorkingHours Monday to
Saturday and a booking in every SLOTS_PER_DAY slot of those days from last
week's Monday to the end of next week, each with its own patient and room.

Every run gives the `--staff` accounts (loadtest-reception-NN,
loadtest-practitioner-NN, loadtest-manager-NN: a third each) a new random
password and a new authenticator key, and writes them to `--out` with the
pages to open (patients, this week's bookings, search terms). `--close`
deactivates the accounts and removes their authenticators, so nothing
signs in with what the file holds once the run is over.

The accounts stay in the database (the audit trail names them): run the load
test on the demo's or a scratch database, never a clinic's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

PREFIX = "loadtest"
ROLES = ("reception", "practitioner", "manager")
BOOKED_PRACTITIONERS = 6
SLOTS_PER_DAY = 10
SLOT = timedelta(minutes=45)
FIRST_SLOT = time(9, 0)
WORKDAYS = 6  # Monday to Saturday
SEARCH_TERMS = ("smi", "wil", "jon", "tay", "bro", "pat", "kha", "eva", "tho", "wal", "ro", "le")

FIRST_NAMES = (
    "Olivia", "Amelia", "Isla", "Ava", "Mia", "Grace", "Sophia", "Emily", "Lily", "Freya",
    "Aisha", "Fatima", "Priya", "Chloe", "Ella", "Zara", "Hannah", "Lucy", "Sofia", "Maya",
    "Oliver", "George", "Noah", "Arthur", "Leo", "Harry", "Oscar", "Jack", "Mohammed", "Ravi",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Jones", "Williams", "Taylor", "Brown", "Davies", "Evans", "Wilson", "Thomas",
    "Johnson", "Roberts", "Robinson", "Thompson", "Wright", "Walker", "White", "Edwards",
    "Hughes", "Green", "Hall", "Lewis", "Harris", "Clarke", "Patel", "Jackson", "Wood",
    "Turner", "Martin", "Cooper", "Hill", "Ward", "Morris", "Moore", "Clark", "Lee", "King",
    "Baker", "Harrison", "Morgan", "Allen", "James", "Scott", "Phillips", "Watson", "Khan",
    "Ali", "Begum", "Shah", "Hussain", "Nowak", "Kowalski", "Murphy", "Kelly", "Walsh",
)  # fmt: skip


def username(role: str, number: int) -> str:
    """The account of the `number`th (from 1) simulated member of staff in `role`."""
    return f"{PREFIX}-{role}-{number:02d}"


def staff_usernames(count: int) -> dict[str, list[str]]:
    """`count` accounts, a third per role (the remainder to reception first)."""
    names: dict[str, list[str]] = {role: [] for role in ROLES}
    for index in range(count):
        role = ROLES[index % len(ROLES)]
        names[role].append(username(role, len(names[role]) + 1))
    return names


def prepare_staff(count: int) -> list[dict[str, str]]:
    """Create (or take again) `count` staff accounts across the three roles,
    each active, with a new random password and one new confirmed TOTP
    authenticator. Returns, per account: username, role, password and the
    authenticator's key (hex), which is all a simulated member of staff needs
    to sign in through the real two pages."""
    from django.contrib.auth.models import Group
    from django.db import transaction
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from clinic.models import User
    from clinic.roles import Role
    from clinic.services import staff_user_create

    role_of = {"reception": Role.RECEPTIONIST, "practitioner": Role.PRACTITIONER,
               "manager": Role.MANAGER}  # fmt: skip
    accounts = []
    with transaction.atomic():
        for role, names in staff_usernames(count).items():
            group = Group.objects.get(name=role_of[role].value)
            for name in names:
                password = secrets.token_urlsafe(18)
                user = User.objects.filter(username=name).first()
                if user is None:
                    user = staff_user_create(
                        username=name, password=password, roles=[role_of[role]],
                        first_name=role.title(), last_name=name.rsplit("-", 1)[1],
                    )  # fmt: skip
                else:
                    user.set_password(password)
                    user.is_active = True
                    user.save(update_fields=["password", "is_active"])
                    user.groups.set([group])
                TOTPDevice.objects.filter(user=user).delete()
                device = TOTPDevice.objects.create(user=user, name="load test", confirmed=True)
                accounts.append(
                    {"username": name, "role": role, "password": password, "totp_key": device.key}
                )
    return accounts


def close_staff() -> int:
    """Deactivate every load-test account and remove its authenticators and
    sessions. Returns how many accounts were active."""
    from django.contrib.sessions.models import Session
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from clinic.models import User

    users = User.objects.filter(username__startswith=f"{PREFIX}-").exclude(
        username=f"{PREFIX}-seed"
    )
    TOTPDevice.objects.filter(user__in=users).delete()
    ids = {str(pk) for pk in users.values_list("pk", flat=True)}
    for session in Session.objects.all().iterator():
        if session.get_decoded().get("_auth_user_id") in ids:
            session.delete()
    return users.filter(is_active=True).update(is_active=False)


def _week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def seed_clinic(*, patients: int, seed: int = 14) -> dict[str, int]:
    """Add what is missing of the load test's clinic (see the module's
    docstring): returns how many patients and bookings were added. Needs the
    demo's protocols (seed_demo) and the practitioners made by prepare_staff."""
    from django.conf import settings
    from django.db import transaction
    from django.utils import timezone

    from clinic.models import User
    from patients.models import Patient
    from patients.services import patient_search_text
    from treatments.models import Booking, Protocol, Room, WorkingHours

    rng = random.Random(seed)
    zone = ZoneInfo(settings.TIME_ZONE)
    added = {"patients": 0, "bookings": 0}
    with transaction.atomic():
        seeder, _ = User.objects.get_or_create(
            username=f"{PREFIX}-seed", defaults={"first_name": "Load", "is_active": False}
        )
        have = Patient.objects.filter(created_by=seeder).count()
        rows = []
        for index in range(have, patients):
            patient = Patient(
                first_name=rng.choice(FIRST_NAMES),
                last_name=rng.choice(LAST_NAMES),
                date_of_birth=date(1950, 1, 1) + timedelta(days=(index * 37) % 20_000),
                email=f"patient{index}@example.org",
                phone=f"+4477{index:08d}",
                reminder_channel="email",
                created_by=seeder,
            )
            patient.search_text = patient_search_text(patient)
            rows.append(patient)
        Patient.objects.bulk_create(rows, batch_size=2_000)
        added["patients"] = len(rows)

        pool = list(Patient.objects.filter(created_by=seeder).order_by("pk")[:patients])
        practitioners = list(
            User.objects.filter(username__startswith=f"{PREFIX}-practitioner-").order_by(
                "username"
            )[:BOOKED_PRACTITIONERS]
        )
        protocols = list(Protocol.objects.order_by("pk"))
        if not pool or not practitioners or not protocols:
            return added
        rooms = [
            Room.objects.get_or_create(name=f"Load test room {i + 1}")[0]
            for i in range(len(practitioners))
        ]
        WorkingHours.objects.bulk_create(
            [
                WorkingHours(practitioner=p, weekday=d, starts=time(8), ends=time(18))
                for p in practitioners
                for d in range(WORKDAYS)
                if not WorkingHours.objects.filter(practitioner=p, weekday=d).exists()
            ]
        )
        first = _week_start(timezone.localdate()) - timedelta(days=7)
        days = [
            first + timedelta(days=n)
            for n in range(21)
            if (first + timedelta(days=n)).weekday() < WORKDAYS
        ]
        taken = set(
            Booking.objects.filter(
                practitioner__in=practitioners,
                starts_at__gte=datetime.combine(first, time(0), tzinfo=zone),
            ).values_list("practitioner_id", "starts_at")
        )
        bookings = []
        slot_index = 0
        for day in days:
            for slot in range(SLOTS_PER_DAY):
                starts = datetime.combine(day, FIRST_SLOT, tzinfo=zone) + SLOT * slot
                for i, practitioner in enumerate(practitioners):
                    # One patient per slot and practitioner: nobody is booked twice at once.
                    patient = pool[(slot_index * len(practitioners) + i) % len(pool)]
                    if (practitioner.pk, starts) not in taken:
                        bookings.append(
                            Booking(
                                patient=patient,
                                practitioner=practitioner,
                                room=rooms[i],
                                protocol=protocols[(slot_index + i) % len(protocols)],
                                starts_at=starts,
                                ends_at=starts + SLOT - timedelta(minutes=5),
                                created_by=practitioner,
                            )
                        )
                slot_index += 1
        Booking.objects.bulk_create(bookings, batch_size=2_000)
        added["bookings"] = len(bookings)
    return added


def targets(*, limit: int = 200) -> dict[str, Any]:
    """What the simulated staff open: patients (the demo's, then those booked
    this week), this week's bookings still to record (the session page), the
    search terms, and today's date as the calendar takes it."""
    from django.utils import timezone

    from patients.models import Patient
    from treatments.models import Booking, BookingStatus

    today = timezone.localdate()
    week = _week_start(today)
    this_week = Booking.objects.filter(
        starts_at__date__gte=week, starts_at__date__lt=week + timedelta(days=7)
    )
    booked = list(
        this_week.filter(status=BookingStatus.BOOKED).order_by("starts_at", "pk")
        .values_list("uuid", flat=True)[:limit]
    )  # fmt: skip
    demo = list(
        Patient.objects.filter(merged_into__isnull=True)
        .exclude(created_by__username=f"{PREFIX}-seed")
        .order_by("pk")
        .values_list("uuid", flat=True)[:50]
    )
    seen = list(
        Patient.objects.filter(bookings__in=this_week).distinct().order_by("pk")
        .values_list("uuid", flat=True)[:limit]
    )  # fmt: skip
    return {
        "today": today.isoformat(),
        "patients": [str(u) for u in [*demo, *seen]],
        "session_bookings": [str(u) for u in booked],
        "search_terms": list(SEARCH_TERMS),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, help="where to write the accounts and pages (JSON)")
    parser.add_argument("--staff", type=int, default=30)
    parser.add_argument("--patients", type=int, default=5_000)
    parser.add_argument("--close", action="store_true", help="deactivate the accounts and stop")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clinic.settings")
    import django

    django.setup()
    if args.close:
        print(f"Load-test accounts deactivated: {close_staff()}")
        return 0
    if args.out is None:
        parser.error("--out is required")
    accounts = prepare_staff(args.staff)
    added = seed_clinic(patients=args.patients)
    print(
        f"Load-test clinic: {added['patients']} patients and {added['bookings']} bookings "
        f"added; {len(accounts)} staff accounts ready"
    )
    args.out.write_text(json.dumps({"accounts": accounts, **targets()}, indent=1))
    args.out.chmod(0o600)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

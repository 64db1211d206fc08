"""Create the demo staff accounts and each app's demo data (idempotent).

Everything is written through the services real work goes through, the
past with the clock moved back (clinic.demo_clock), so the demo shows
nothing the clinic would refuse."""

from __future__ import annotations

import importlib
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from clinic.clinic_settings_services import clinic_settings_change
from clinic.demo_clock import OPENED_DAYS_AGO, clinic_time, clock_at, clock_installed, working_day
from clinic.models import ClinicSettings, User
from clinic.roles import Role
from clinic.services import staff_user_create

DEFAULT_DEMO_PASSWORD = "demo-clinic-2026"  # noqa: S105 - demo installations only

DEMO_STAFF: tuple[tuple[str, str, str, tuple[Role, ...]], ...] = (
    ("reception", "Rosa", "Reyes", (Role.RECEPTIONIST,)),
    ("practitioner", "Dr Priya", "Patel", (Role.PRACTITIONER,)),
    ("practitioner2", "Sam", "Okoye", (Role.PRACTITIONER,)),
    ("manager", "Max", "Morgan", (Role.MANAGER,)),
)


# The demo clinic's contact details (Ofcom's numbers for drama), printed on
# its sheets and emails, as a manager would set them on the settings page.
DEMO_CLINIC = {
    "clinic_phone": "+442079460000",
    "clinic_address": "1 High Street, London",
    "clinic_email": "desk@demo.clinic.invalid",
}


def _demo_clinic_details() -> None:
    """Give the demo clinic its contact details, once, as its manager: only
    while the settings are still the installation's (a manager's own change
    is never undone by running the demo again)."""
    newest = ClinicSettings.objects.order_by("-id").first()
    if newest is not None and (newest.changed_by_id is not None or newest.clinic_phone):
        return
    manager = User.objects.get(username="manager")
    with clock_at(clinic_time(working_day(OPENED_DAYS_AGO), 8, 45)):
        clinic_settings_change(
            changed_by=manager,
            changes=DEMO_CLINIC,
            reason="The demo clinic's contact details.",
            expected_version=None,
        )


class Command(BaseCommand):
    help = "Create the demo staff users (reception, practitioner, manager). Safe to run again."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--force",
            action="store_true",
            help="Run even with DEBUG off (demo accounts on a real clinic are a risk).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG and not options["force"]:
            raise CommandError(
                "Refusing to create demo accounts with DEBUG off. "
                "Use --force if this really is a demo installation."
            )
        password = settings.DEMO_PASSWORD or DEFAULT_DEMO_PASSWORD
        created = 0
        with transaction.atomic():
            existing = set(User.objects.values_list("username", flat=True))
            missing = [staff for staff in DEMO_STAFF if staff[0] not in existing]
            if missing:
                # The staff joined when the demo clinic opened.
                with clock_at(clinic_time(working_day(OPENED_DAYS_AGO), 8, 30)):
                    for username, first, last, roles in missing:
                        staff_user_create(
                            username=username,
                            password=password,
                            roles=roles,
                            first_name=first,
                            last_name=last,
                            email=f"{username}@demo.clinic.invalid",
                        )
                        created += 1
            _demo_clinic_details()
            # Each feature app seeds its own demo data (a `demo` module with
            # `seed()`), found by name so that this base app imports none of them.
            staff = {
                u.username: u
                for u in User.objects.filter(username__in=["practitioner", "reception"])
            }
            for app in ("patients", "consent", "treatments"):
                try:
                    module = importlib.import_module(f"{app}.demo")
                except ModuleNotFoundError:
                    continue
                added = module.seed(
                    practitioner=staff["practitioner"], reception=staff["reception"]
                )
                self.stdout.write(f"Demo data: {added} {app} record(s) added.")
            if not clock_installed():
                self.stdout.write(
                    "Demo data: written at today's time, without the sessions of earlier "
                    "weeks (moving the clock back needs time-machine, requirements-dev.txt)."
                )
        kept = len(DEMO_STAFF) - created
        self.stdout.write(f"Demo data: {created} staff user(s) created, {kept} already there.")
        self.stdout.write("Demo logins (username / password):")
        for username, _first, _last, roles in DEMO_STAFF:
            role_names = ", ".join(str(r.label) for r in roles)
            self.stdout.write(f"  {username:<13} / {password}   ({role_names})")

"""Demo patients for `manage.py seed_demo` (idempotent: keyed by email).

Reception registered each of them on the day they first called, weeks or
months ago, and the practitioner took their medical histories on the days
of their visits, through the register's services with the clock moved to
those days (clinic.demo_clock). So their contact details are long past the
24-hour hold an address typed by reception carries
(patients.contact_changes), but for Isla Moreno's email, which reception
corrected an hour ago: the hold can be seen on her record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.utils import timezone

from clinic.demo_clock import clinic_time, clock_at, working_day
from clinic.models import User
from patients.models import HISTORY_BOOLEAN_FIELDS, Patient
from patients.services import medical_history_record, patient_create, patient_update

NO = dict.fromkeys(HISTORY_BOOLEAN_FIELDS, False)
DOMAIN = "demo.clinic.invalid"


@dataclass(frozen=True)
class DemoPatient:
    first: str
    last: str
    born: date
    phone: str
    channel: str  # how they asked to be reminded
    registered: int  # working days ago (clinic.demo_clock.working_day), at 09:30
    # (days ago, answers) of each medical history, taken at 10:00 on that
    # working day; answers not given are "no". "isotretinoin_months_before":
    # the last dose of isotretinoin that many months before the history.
    histories: tuple[tuple[int, dict[str, Any]], ...] = ()
    # The email given when registering, corrected by reception an hour ago.
    first_email: str = ""

    @property
    def email(self) -> str:
        return f"{self.first}.{self.last}@{DOMAIN}".lower()


# The demo's story, in short (treatments.demo tells the rest): Grace had a
# course of body treatments until she started an anticoagulant last week;
# Oliver is halfway through a course for the face, and must sign the face
# consent again since it changed; Amelia starts hers tomorrow; Freya waits
# for her isotretinoin to wash out; Theo's allergy reading is due today;
# Isla is new, with no history yet.
PATIENTS: tuple[DemoPatient, ...] = (
    DemoPatient("Amelia", "Hart", date(1986, 4, 12), "+447911123456", "email", 25, ((21, {}),)),
    DemoPatient(
        "Oliver",
        "Bennett",
        date(1979, 9, 3),
        "+447912345678",
        "sms",
        75,
        ((70, {"cold_sores_history": True}),),
    ),
    DemoPatient(
        "Isla",
        "Moreno",
        date(1992, 1, 27),
        "+447723456789",
        "email",
        5,
        first_email=f"isla.moreno92@{DOMAIN}",
    ),
    DemoPatient(
        "Grace",
        "Okafor",
        date(1974, 6, 30),
        "+447834567890",
        "sms",
        130,
        ((130, {}), (6, {"anticoagulants": True})),
    ),
    DemoPatient(
        "Freya",
        "Lindqvist",
        date(1990, 11, 8),
        "+447400123456",
        "email",
        40,
        ((12, {"isotretinoin_months_before": 4}),),
    ),
    DemoPatient("Theo", "Fairbairn", date(1968, 3, 15), "+447777123456", "sms", 15, ((14, {}),)),
)


def demo_patient(email: str) -> Patient | None:
    """The demo patient with this email (as it is now), if seeded."""
    return Patient.objects.filter(email=email).first()


def _answers(given: dict[str, Any], *, day: date) -> dict[str, Any]:
    answers = {**NO, **given}
    months = answers.pop("isotretinoin_months_before", None)
    if months:
        answers["isotretinoin_last_dose"] = day - timedelta(days=round(30.5 * months))
    return answers


def seed(*, practitioner: User, reception: User) -> int:
    """Register the demo patients not yet registered, each with their
    histories; return how many patients were added."""
    created = 0
    for person in PATIENTS:
        emails = [person.email] + ([person.first_email] if person.first_email else [])
        if Patient.objects.filter(email__in=emails).exists():
            continue
        with clock_at(clinic_time(working_day(person.registered), 9, 30)):
            patient = patient_create(
                created_by=reception,
                first_name=person.first,
                last_name=person.last,
                date_of_birth=person.born,
                email=person.first_email or person.email,
                phone=person.phone,
                reminder_channel=person.channel,
                consents_to_messages=True,
            )
        created += 1
        for days_ago, given in person.histories:
            day = working_day(days_ago)
            with clock_at(clinic_time(day, 10)):
                medical_history_record(
                    patient=patient, signed_by=practitioner, answers=_answers(given, day=day)
                )
        if person.first_email:
            # Reception typed the corrected address an hour ago: held until tomorrow.
            with clock_at(timezone.now() - timedelta(hours=1)):
                patient_update(patient=patient, updated_by=reception, email=person.email)
    return created

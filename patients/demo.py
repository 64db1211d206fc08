"""Demo patients for `manage.py seed_demo` (idempotent: keyed by email)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.utils import timezone

from clinic.models import User
from patients.models import HISTORY_BOOLEAN_FIELDS, Patient
from patients.services import medical_history_record, patient_create

NO = dict.fromkeys(HISTORY_BOOLEAN_FIELDS, False)

# (first, last, born, phone, history answers or None for "no history yet")
PATIENTS: tuple[tuple[str, str, date, str, dict[str, Any] | None], ...] = (
    ("Amelia", "Hart", date(1986, 4, 12), "+447911123456", {}),
    ("Oliver", "Bennett", date(1979, 9, 3), "+447912345678", {"cold_sores_history": True}),
    ("Isla", "Moreno", date(1992, 1, 27), "+447723456789", None),
    ("Grace", "Okafor", date(1974, 6, 30), "+447834567890", {"anticoagulants": True}),
    ("Freya", "Lindqvist", date(1990, 11, 8), "+447400123456", {"months_since_isotretinoin": 4}),
    ("Theo", "Fairbairn", date(1968, 3, 15), "+447777123456", {}),
)


def seed(*, practitioner: User, reception: User) -> int:
    created = 0
    today = timezone.localdate()
    for first, last, born, phone, answers in PATIENTS:
        email = f"{first}.{last}@demo.clinic.invalid".lower()
        if Patient.objects.filter(email=email).exists():
            continue
        patient = patient_create(
            created_by=reception,
            first_name=first,
            last_name=last,
            date_of_birth=born,
            email=email,
            phone=phone,
            reminder_channel="sms",
            consents_to_messages=True,
        )
        created += 1
        if answers is None:
            continue
        answers = dict(answers)
        months = answers.pop("months_since_isotretinoin", None)
        if months:
            answers["isotretinoin_last_dose"] = today - timedelta(days=30 * months)
        medical_history_record(patient=patient, signed_by=practitioner, answers={**NO, **answers})
    return created

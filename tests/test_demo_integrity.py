"""The demo data never shows what the product forbids.

`manage.py seed_demo` is run, then the data is walked on its own terms,
whatever made it: every completed session had, when it happened, a valid
medical history with nothing that forbids treatment, the current version of
its protocol's consent form signed and not withdrawn, a negative allergy
reading for every ingredient given, and batches in date and not recalled;
every patient on a batch's recall list was treated so. Seeding again adds
nothing, and the audit trail seals and verifies whole. The contact details
of the demo patients are past their 24-hour hold, but for the one reception
changed an hour ago.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from io import StringIO
from typing import Any

import pytest
import time_machine
from dateutil.relativedelta import relativedelta
from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.db.models import Model
from django.utils import timezone

from clinic import clinic_settings, demo_clock
from clinic.auditchain import audit_chain_verify, audit_seal
from clinic.localtime import clinic_zone
from clinic.roles import Role
from clinic.services import staff_user_create
from consent.models import ConsentFormVersion, SignedConsent
from patients.contact_changes import email_hold
from patients.models import MedicalHistory, Patient
from patients.screening import Severity, screen
from treatments.models import (
    AllergyResult,
    AllergyTest,
    Batch,
    Booking,
    BookingEventKind,
    BookingStatus,
    PatientAllergy,
    SessionRecord,
)
from treatments.selectors.catalogue import batch_recipients

pytestmark = pytest.mark.django_db

# Moments the demo is seeded at (clinic time): a Wednesday morning, a Monday
# just after midnight (the week's first day, the weekend just behind), a
# Sunday evening, and the day the clocks go back.
MOMENTS = ("2026-06-17 10:30", "2026-06-15 00:20", "2026-11-08 21:45", "2026-10-25 08:00")


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=clinic_zone())


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", "--force", stdout=out)
    return out.getvalue()


# --- The checker: the rules, read from the data --------------------------------------


def _history_problems(record: SessionRecord, *, known_by: datetime) -> list[str]:
    booking = record.booking
    history = (
        MedicalHistory.objects.filter(patient=booking.patient, signed_at__lte=known_by)
        .order_by("-signed_at", "-id")
        .first()
    )
    if history is None:
        return ["no medical history signed by then"]
    day = timezone.localdate(booking.starts_at)
    age = day - timezone.localdate(history.signed_at)
    if age > timedelta(days=clinic_settings.current().medical_history_valid_days):
        return [f"medical history {age.days} days old"]
    forbidding = [
        finding.code
        for finding in screen(history, today=day, answered_on=timezone.localdate(history.signed_at))
        if finding.severity == Severity.ABSOLUTE
    ]
    return [f"contraindicated: {', '.join(forbidding)}"] if forbidding else []


def _consent_problems(record: SessionRecord, *, known_by: datetime) -> list[str]:
    booking = record.booking
    form = booking.protocol.consent_form
    current = (
        ConsentFormVersion.objects.filter(
            form=form, published_at__isnull=False, published_at__lte=known_by
        )
        .order_by("-number")
        .first()
    )
    signed = (
        SignedConsent.objects.filter(
            patient=booking.patient, version__form=form, signed_at__lte=known_by
        )
        .select_related("withdrawal")
        .order_by("-signed_at", "-id")
        .first()
    )
    if current is None:
        return [f"no published version of “{form.title}” by then"]
    if signed is None:
        return [f"“{form.title}” not signed by then"]
    if signed.version_id != current.pk:
        return [f"“{form.title}” signed on an older version"]
    withdrawal = getattr(signed, "withdrawal", None)
    if withdrawal is not None and withdrawal.withdrawn_at <= known_by:
        return [f"“{form.title}” withdrawn"]
    return []


def _allergy_problems(record: SessionRecord, *, known_by: datetime) -> list[str]:
    booking = record.booking
    problems = []
    ingredients = {
        ingredient
        for line in record.lines.all()
        for ingredient in line.batch.product.ingredients.all()
    }
    for ingredient in sorted(ingredients, key=lambda i: i.name):
        if PatientAllergy.objects.filter(
            patient=booking.patient, ingredient=ingredient, recorded_at__lte=known_by
        ).exists():
            problems.append(f"allergic to {ingredient.name}")
            continue
        tests = AllergyTest.objects.filter(
            patient=booking.patient, ingredients=ingredient, read_at__lte=known_by
        )
        if any(t.result == AllergyResult.POSITIVE for t in tests):
            problems.append(f"positive allergy test for {ingredient.name}")
            continue
        valid = [
            t
            for t in tests
            if t.result == AllergyResult.NEGATIVE
            and t.read_at is not None
            and t.read_at >= t.read_due_at
            and booking.starts_at
            <= timezone.localtime(t.read_at)
            + relativedelta(months=clinic_settings.current().allergy_test_valid_months)
        ]
        if not valid:
            problems.append(f"no valid negative allergy reading for {ingredient.name}")
    return problems


def _batch_problems(record: SessionRecord) -> list[str]:
    day = timezone.localdate(record.booking.starts_at)
    problems = []
    for line in record.lines.all():
        batch = line.batch
        if batch.expiry_date < day:
            problems.append(f"lot {batch.lot_number} expired on {batch.expiry_date}")
        if batch.recalled_at is not None and batch.recalled_at <= record.completed_at:
            problems.append(f"lot {batch.lot_number} recalled before")
        if batch.received_on > day:
            problems.append(f"lot {batch.lot_number} not yet received")
    return problems


def session_problems(record: SessionRecord, *, now: datetime) -> list[str]:
    """What was wrong with this completed session when it happened ([] if nothing)."""
    booking = record.booking
    # What counts is what was on record by the end of the session.
    known_by = min(record.completed_at, booking.ends_at)
    problems = [
        *_history_problems(record, known_by=known_by),
        *_consent_problems(record, known_by=known_by),
        *_allergy_problems(record, known_by=known_by),
        *_batch_problems(record),
    ]
    if booking.status != BookingStatus.COMPLETED:
        problems.append(f"booking is {booking.status}")
    opens = booking.starts_at - timedelta(minutes=settings.SESSION_COMPLETE_EARLY_MINUTES)
    if not opens <= record.completed_at <= now:
        problems.append(f"completed at {record.completed_at}, booked for {booking.starts_at}")
    if not record.lines.exists():
        problems.append("no cocktail")
    check = getattr(record, "day_of_check", None)
    if check is None or any(
        getattr(check, name)
        for name in (
            "unwell",
            "pregnant",
            "breastfeeding",
            "skin_infection",
            "active_acne",
            "cold_sore",
            "new_medicine_or_allergy",
        )
    ):
        problems.append("day-of-treatment questions not all answered no")
    if not booking.events.filter(kind=BookingEventKind.COMPLETED).exists():
        problems.append("no 'completed' event on the booking")
    return problems


def all_session_problems(now: datetime) -> dict[str, list[str]]:
    found = {}
    for record in SessionRecord.objects.select_related(
        "booking__patient", "booking__protocol__consent_form", "day_of_check"
    ).prefetch_related("lines__batch__product__ingredients"):
        problems = session_problems(record, now=now)
        if problems:
            label = (
                f"{record.booking.patient.full_name}, {record.booking.protocol.name} "
                f"{timezone.localtime(record.booking.starts_at):%Y-%m-%d %H:%M}"
            )
            found[label] = problems
    return found


def recall_list_problems(now: datetime) -> dict[str, list[str]]:
    """Every patient a batch's recall list names: treated when the gates held
    (a session), or allergy-tested after a medical history was taken."""
    found: dict[str, list[str]] = {}
    for batch in Batch.objects.select_related("product"):
        for recipient in batch_recipients(batch=batch):
            sessions = SessionRecord.objects.filter(
                booking__patient=recipient.patient,
                completed_at=recipient.received_at,
                lines__batch=batch,
            ).distinct()
            problems = [p for record in sessions for p in session_problems(record, now=now)]
            if (
                not sessions
                and not MedicalHistory.objects.filter(
                    patient=recipient.patient, signed_at__lte=recipient.received_at
                ).exists()
            ):
                problems.append("allergy-tested with no medical history")
            if problems:
                found[f"lot {batch.lot_number}: {recipient.patient.full_name}"] = problems
    return found


def row_counts() -> dict[str, int]:
    models: Iterator[type[Model]] = (
        model
        for app in ("clinic", "patients", "consent", "treatments")
        for model in apps.get_app_config(app).get_models()
    )
    return {model._meta.label: model._default_manager.count() for model in models}


# --- The tests ------------------------------------------------------------------------


@pytest.mark.parametrize("moment", MOMENTS)
def test_every_demo_session_passed_the_gates_of_its_day_and_seeding_again_adds_nothing(
    moment: str, settings: Any
) -> None:
    settings.DEBUG = False
    now = local(moment)
    with time_machine.travel(now, tick=False):
        seed()
        # Grace's two sessions and four of Oliver's course.
        assert SessionRecord.objects.count() == 6
        assert all_session_problems(now) == {}
        assert recall_list_problems(now) == {}
        counts = row_counts()
        seed()
        assert row_counts() == counts
        # The trail of a demo written in its past seals and verifies whole.
        audit_seal()
        assert audit_chain_verify().fault is None


def test_the_recall_list_of_a_demo_lot_names_only_patients_treated_behind_the_gates(
    settings: Any,
) -> None:
    settings.DEBUG = False
    now = local(MOMENTS[0])
    with time_machine.travel(now, tick=False):
        seed()
        recalled = {
            (b.product.name, b.lot_number): batch_recipients(batch=b)
            for b in Batch.objects.select_related("product")
        }
    named = {lot: {r.patient.full_name for r in people} for lot, people in recalled.items()}
    assert named[("Draining cellulite complex", "NVP-DC0417")]
    assert recall_list_problems(now) == {}


def test_demo_contact_details_are_past_their_hold_but_for_one_changed_an_hour_ago(
    settings: Any,
) -> None:
    settings.DEBUG = False
    now = local(MOMENTS[0])
    with time_machine.travel(now, tick=False):
        seed()
        held = {
            p.full_name: hold
            for p in Patient.objects.all()
            if (hold := email_hold(patient=p, now=now)) is not None
        }
    assert list(held) == ["Isla Moreno"]
    assert held["Isla Moreno"].changed_at == now - timedelta(hours=1)
    assert held["Isla Moreno"].previous_told


def test_without_time_machine_the_demo_is_written_today_and_forbids_nothing_either(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `make run` installs only the runtime packages: the clock cannot move.
    monkeypatch.setattr(demo_clock, "TIME_MACHINE_INSTALLED", False)
    settings.DEBUG = False
    now = local(MOMENTS[0])
    with time_machine.travel(now, tick=False):
        out = seed()
        assert "without the sessions of earlier weeks" in out
        assert not SessionRecord.objects.exists()
        assert not Booking.objects.filter(starts_at__lt=now).exists()
        assert all_session_problems(now) == {}
        assert recall_list_problems(now) == {}
        counts = row_counts()
        seed()
        assert row_counts() == counts


def test_a_database_whose_trail_is_sealed_gets_nothing_written_in_its_past(
    settings: Any,
) -> None:
    settings.DEBUG = False
    now = local(MOMENTS[0])
    with time_machine.travel(now, tick=False):
        staff_user_create(username="owner", password="x" * 20, roles=[Role.MANAGER])
        audit_seal()
        seed()
    # An event dated before the last seal would never be sealed, and the
    # chain would read it as slipped in: none was written.
    with time_machine.travel(now + timedelta(hours=2), tick=False):
        audit_seal()
        assert audit_chain_verify().fault is None
    assert not SessionRecord.objects.exists()

"""Safe-to-treat for many bookings at once, for the calendar.

The same gates as `treatments.gates` (medical history, absolute
contraindications, consent on the current version, allergy readings for the
protocol's default cocktail), evaluated for every booking shown in a fixed
number of queries whatever their number. Batches are chosen at the session,
so gate 5 does not apply to a booking yet. Reception reads only each
failure's `reception_note` and `earliest`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _

from consent.models import ConsentFormVersion, SignedConsent
from consent.selectors import ConsentState, ConsentStatus
from patients.models import MedicalHistory
from patients.screening import Severity, screen
from patients.selectors import history_is_valid
from treatments.gates import GateFailure, _moment, _start_of
from treatments.models import (
    AllergyResult,
    AllergyTest,
    Booking,
    PatientAllergy,
    ProtocolCocktailLine,
)


def _consent_status(current: ConsentFormVersion | None, latest: SignedConsent | None) -> str:
    if current is None:
        return ConsentStatus.NO_PUBLISHED_VERSION
    if latest is None:
        return ConsentStatus.NOT_SIGNED
    if hasattr(latest, "withdrawal"):
        return ConsentStatus.WITHDRAWN
    if latest.version_id != current.pk:
        return ConsentStatus.RECONSENT_NEEDED
    return ConsentStatus.VALID


def booking_readiness(*, bookings: Sequence[Booking], at: datetime) -> dict[int, list[GateFailure]]:
    """{booking id: failures} for each booking, judged at its start (or `at`,
    if later). Seven queries whatever the number of bookings."""
    if not bookings:
        return {}
    patient_ids = {b.patient_id for b in bookings}
    protocol_ids = {b.protocol_id for b in bookings}
    form_ids = {b.protocol.consent_form_id for b in bookings}

    histories: dict[int, MedicalHistory] = {}
    for history in (
        MedicalHistory.objects.filter(patient_id__in=patient_ids)
        .order_by("patient_id", "-signed_at", "-id")
        .distinct("patient_id")
    ):
        histories[history.patient_id] = history

    currents: dict[int, ConsentFormVersion] = {}
    for version in (
        ConsentFormVersion.objects.filter(form_id__in=form_ids, published_at__isnull=False)
        .select_related("form")
        .order_by("form_id", "-number")
    ):
        currents.setdefault(version.form_id, version)
    signatures: dict[tuple[int, int], SignedConsent] = {}
    for signed in (
        SignedConsent.objects.filter(patient_id__in=patient_ids, version__form_id__in=form_ids)
        .select_related("version", "withdrawal")
        .order_by("-signed_at", "-id")
    ):
        signatures.setdefault((signed.patient_id, signed.version.form_id), signed)

    ingredients: dict[int, dict[int, str]] = defaultdict(dict)
    for protocol_id, ingredient_id, name in ProtocolCocktailLine.objects.filter(
        protocol_id__in=protocol_ids, product__ingredients__isnull=False
    ).values_list("protocol_id", "product__ingredients__id", "product__ingredients__name"):
        ingredients[protocol_id][ingredient_id] = name
    wanted = {i for per in ingredients.values() for i in per}

    allergic = set(
        PatientAllergy.objects.filter(
            patient_id__in=patient_ids, ingredient_id__in=wanted
        ).values_list("patient_id", "ingredient_id")
    )
    tests: dict[tuple[int, int], list[AllergyTest]] = defaultdict(list)
    through = AllergyTest.ingredients.through
    for link in (
        through.objects.filter(allergytest__patient_id__in=patient_ids, ingredient_id__in=wanted)
        .select_related("allergytest")
        .order_by("-allergytest__given_at")
    ):
        test = link.allergytest
        tests[(test.patient_id, link.ingredient_id)].append(test)

    months = settings.ALLERGY_TEST_VALID_MONTHS
    result: dict[int, list[GateFailure]] = {}
    for booking in bookings:
        when = max(at, booking.starts_at)
        today = timezone.localdate(when)
        failures: list[GateFailure] = []
        current = histories.get(booking.patient_id)
        if current is None:
            failures.append(GateFailure(1, "", _("medical history needed")))
        elif not history_is_valid(current, today=today):
            failures.append(
                GateFailure(1, "", _("medical history out of date: needs taking again"))
            )
        if current is not None:
            for finding in screen(current, today=today):
                if finding.severity == Severity.ABSOLUTE:
                    failures.append(
                        GateFailure(
                            2,
                            "",
                            finding.reception_note
                            or _("cannot be treated for now: see the practitioner"),
                            _start_of(finding.lifts_on) if finding.lifts_on else None,
                        )
                    )
        form_id = booking.protocol.consent_form_id
        published = currents.get(form_id)
        latest = signatures.get((booking.patient_id, form_id))
        state = ConsentState(_consent_status(published, latest), published, latest)
        if not state.is_valid:
            failures.append(GateFailure(3, "", state.reception_note))
        for ingredient_id in sorted(
            ingredients.get(booking.protocol_id, {}),
            key=lambda i: ingredients[booking.protocol_id][i].lower(),
        ):
            its = tests.get((booking.patient_id, ingredient_id), [])
            if (booking.patient_id, ingredient_id) in allergic or any(
                t.result == AllergyResult.POSITIVE and t.read_at for t in its
            ):
                failures.append(
                    GateFailure(4, "", _("cannot have this treatment: see the practitioner"))
                )
                continue
            negative = any(
                t.result == AllergyResult.NEGATIVE
                and t.read_at is not None
                and t.read_due_at <= t.read_at <= when
                and t.read_at + relativedelta(months=months) >= when
                for t in its
            )
            if negative:
                continue
            pending = sorted((t for t in its if t.read_at is None), key=lambda t: t.read_due_at)
            if pending:
                due = pending[0].read_due_at
                failures.append(
                    GateFailure(
                        4, "", _("allergy reading due %(when)s") % {"when": _moment(due)}, due
                    )
                )
            else:
                failures.append(GateFailure(4, "", _("allergy test needed")))
        result[booking.pk] = failures
    return result

"""Reads of allergy tests and allergies, and the practitioner's task list."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Prefetch, QuerySet
from django.http import Http404

from clinic import dates
from patients.models import Patient
from treatments.models import AllergyTest, Ingredient, PatientAllergy

# The task list looks this far ahead for readings coming up.
TASKS_LOOKAHEAD = timedelta(hours=24)
# A task list is a working list, not an archive: it shows at most this many rows per part.
TASKS_LIMIT = 200


def format_local(moment: datetime) -> str:
    """A moment in the clinic's zone as `clinic.dates.day_time` writes it:
    "Tue 24 Nov, 14:05"."""
    return dates.day_time(moment)


def _with_details(tests: QuerySet[AllergyTest]) -> QuerySet[AllergyTest]:
    return tests.select_related("given_by", "read_by", "batch__product").prefetch_related(
        Prefetch("ingredients", queryset=Ingredient.objects.order_by("name")),
        "products",
    )


def allergy_tests_of(*, patient: Patient) -> QuerySet[AllergyTest]:
    """This patient's tests, newest first, with what was tested and by whom."""
    return (
        _with_details(AllergyTest.objects.filter(patient=patient))
        .select_related("patient")
        .order_by("-given_at", "-id")
    )


def allergy_test_get(*, patient: Patient, test_uuid: uuid.UUID) -> AllergyTest:
    """One of this patient's tests; 404 for another patient's."""
    try:
        return allergy_tests_of(patient=patient).get(uuid=test_uuid)
    except AllergyTest.DoesNotExist:
        raise Http404 from None


def allergies_of(*, patient: Patient) -> QuerySet[PatientAllergy]:
    """The ingredients this patient must never be given."""
    return (
        PatientAllergy.objects.filter(patient=patient)
        .select_related("ingredient", "recorded_by", "source_test")
        .order_by("ingredient__name")
    )


@dataclass(frozen=True)
class AllergyTasks:
    """Readings to do: those due now or overdue (oldest first), then those coming up."""

    due: list[AllergyTest]
    upcoming: list[AllergyTest]


def allergy_tasks(*, now: datetime) -> AllergyTasks:
    """Unread allergy tests of the whole clinic, in a fixed number of queries."""
    unread = _with_details(
        AllergyTest.objects.filter(read_at__isnull=True).select_related("patient")
    ).order_by("read_due_at", "id")
    return AllergyTasks(
        due=list(unread.filter(read_due_at__lte=now)[:TASKS_LIMIT]),
        upcoming=list(
            unread.filter(read_due_at__gt=now, read_due_at__lte=now + TASKS_LOOKAHEAD)[:TASKS_LIMIT]
        ),
    )

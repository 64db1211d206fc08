"""Allergy tests: giving one, then reading it 24 hours later. A positive
reading records an allergy to every ingredient tested."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from clinic.audit import audit_log
from clinic.models import AuditAction, User
from patients.images import CleanImage
from patients.models import Patient
from treatments.models import (
    ALLERGY_READING_DELAY,
    AllergyResult,
    AllergyTest,
    Batch,
    Ingredient,
    PatientAllergy,
    Product,
)
from treatments.selectors.allergy import format_local
from treatments.services.reminders import (
    reminder_cancel_allergy_reading,
    reminder_plan_allergy_reading,
)

# A test given earlier than this is recorded on paper, not back-dated here.
GIVEN_AT_MAX_AGE = timedelta(days=7)


class AllergyReadingRefusedError(Exception):
    """The reading cannot be recorded now. `message` is a plain sentence for the
    practitioner; `status` the HTTP status the page answers with."""

    def __init__(self, message: str, *, status: int = 409) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def given_at_problem(given_at: datetime, *, now: datetime) -> str:
    """Why this time cannot be the time a test was given; "" when it can."""
    if given_at > now + timedelta(minutes=1):
        return _("The time given cannot be in the future.")
    if given_at < now - GIVEN_AT_MAX_AGE:
        return _("The time given cannot be more than 7 days ago.")
    return ""


def tested_ingredients(
    *, ingredients: Iterable[Ingredient], products: Iterable[Product]
) -> list[Ingredient]:
    """Every ingredient tested: those chosen, plus every ingredient of each product."""
    found = {i.pk: i for i in ingredients}
    product_ids = [p.pk for p in products]
    if product_ids:
        for ingredient in Ingredient.objects.filter(products__in=product_ids).distinct():
            found.setdefault(ingredient.pk, ingredient)
    return sorted(found.values(), key=lambda i: i.name.lower())


@transaction.atomic
def allergy_test_give(
    *,
    patient: Patient,
    given_by: User,
    ingredients: Iterable[Ingredient],
    products: Iterable[Product],
    site: str,
    given_at: datetime,
    batch: Batch | None = None,
    now: datetime | None = None,
) -> AllergyTest:
    """Record a test micro-injection; it is due to be read 24 hours later."""
    now = now or timezone.now()
    products = list(products)
    tested = tested_ingredients(ingredients=ingredients, products=products)
    if not tested:
        raise ValidationError(_("Choose at least one ingredient or product."))
    problem = given_at_problem(given_at, now=now)
    if problem:
        raise ValidationError({"given_at": problem})
    if batch is not None and not batch.is_usable_on(timezone.localdate(given_at)):
        raise ValidationError({"batch": _("This batch cannot be used: it is expired or recalled.")})
    test = AllergyTest(
        patient=patient,
        given_by=given_by,
        site=site.strip(),
        given_at=given_at,
        read_due_at=given_at + ALLERGY_READING_DELAY,
        batch=batch,
    )
    test.full_clean()
    test.save()
    test.ingredients.set(tested)
    test.products.set(products)
    # The practitioner is told when the reading is due (their task list, and email).
    reminder_plan_allergy_reading(test=test)
    audit_log(
        actor=given_by,
        action=AuditAction.TEST_GIVEN,
        obj=test,
        patient_ref=patient.uuid,
        changed_fields=["ingredients", "products", "site", "given_at"]
        + (["batch"] if batch is not None else []),
    )
    return test


def allergy_test_read(
    *,
    test: AllergyTest,
    read_by: User,
    result: str,
    reaction: str = "",
    photo: CleanImage | None = None,
    now: datetime | None = None,
) -> AllergyTest:
    """Record the reading of a test, once, no earlier than 24 hours after it was given.

    A positive reading records an allergy to every ingredient tested, in the
    same transaction. No photo file is left behind if the reading is refused.
    """
    stored: list[str] = []
    try:
        with transaction.atomic():
            return _read(
                test=test,
                read_by=read_by,
                result=result,
                reaction=reaction.strip(),
                photo=photo,
                now=now or timezone.now(),
                stored=stored,
            )
    except BaseException:
        for name in stored:
            test.photo.storage.delete(name)
        raise


def _read(
    *,
    test: AllergyTest,
    read_by: User,
    result: str,
    reaction: str,
    photo: CleanImage | None,
    now: datetime,
    stored: list[str],
) -> AllergyTest:
    # Lock the row: two practitioners reading at once must not both succeed.
    current = AllergyTest.objects.select_for_update().select_related("patient").get(pk=test.pk)
    if current.is_read:
        assert current.read_at is not None
        raise AllergyReadingRefusedError(
            _("This test was already read on %(when)s: a reading is never changed.")
            % {"when": format_local(current.read_at)}
        )
    if now < current.read_due_at:
        raise AllergyReadingRefusedError(
            _("This test can be read from %(when)s.") % {"when": format_local(current.read_due_at)}
        )
    if result not in AllergyResult.values:
        raise ValidationError({"result": _("Choose negative or positive.")})
    if result == AllergyResult.POSITIVE and not reaction:
        raise ValidationError({"reaction": _("Describe the reaction seen.")})
    current.result = result
    current.reaction = reaction if result == AllergyResult.POSITIVE else ""
    current.read_at = now
    current.read_by = read_by
    changed = ["result", "read_at", "read_by"]
    if photo is not None:
        current.photo.save(f"{current.uuid}.jpg", ContentFile(photo.content), save=False)
        stored.append(current.photo.name)
        changed.append("photo")
    if current.reaction:
        changed.append("reaction")
    current.full_clean()
    current.save()
    reminder_cancel_allergy_reading(test=current)
    patient = current.patient
    audit_log(
        actor=read_by,
        action=AuditAction.TEST_READ,
        obj=current,
        patient_ref=patient.uuid,
        changed_fields=changed,
    )
    if result == AllergyResult.POSITIVE:
        for ingredient in current.ingredients.all():
            allergy, created = PatientAllergy.objects.get_or_create(
                patient=patient,
                ingredient=ingredient,
                defaults={"source_test": current, "recorded_by": read_by},
            )
            if created:
                audit_log(
                    actor=read_by,
                    action=AuditAction.CREATE,
                    obj=allergy,
                    patient_ref=patient.uuid,
                    changed_fields=["ingredient"],
                )
    return current

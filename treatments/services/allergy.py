"""Allergy tests: giving one, then reading it 24 hours later. A positive
reading records an allergy to every ingredient tested.

The 24-hour wait (domain.md, "Allergy test") runs from the moment the test is
entered here, by the server's clock, or from the time given if that is later:
typing an earlier time given never brings the reading forward. A test entered
more than 15 minutes after it was given (given on paper) is a late entry and
needs a reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from clinic.audit import audit_log
from clinic.concurrency import submission_check, submission_marks
from clinic.models import AuditAction, User
from clinic.refusals import RefusalKind, RefusedError
from patients.images import CleanImage
from patients.locking import patient_hold, patient_row_lock
from patients.models import Patient
from treatments.models import (
    ALLERGY_GIVEN_AT_GRACE,
    ALLERGY_GIVEN_AT_MAX_AGE,
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


class AllergyReadingRefusedError(RefusedError):
    """The reading cannot be recorded now (already read, or not yet due): a
    plain sentence for the practitioner."""

    code = "reading_refused"
    kind = RefusalKind.CONFLICT


def given_at_problem(given_at: datetime, *, now: datetime) -> str:
    """Why `given_at` cannot be the time a test was given when it is entered
    at `now` (both aware); "" when it can. A minute ahead is allowed (clocks
    differ); a test given more than 7 days ago is kept on paper."""
    if given_at > now + ALLERGY_GIVEN_AT_GRACE:
        return _("The time given cannot be in the future.")
    if given_at < now - ALLERGY_GIVEN_AT_MAX_AGE:
        return _("The time given cannot be more than 7 days ago.")
    return ""


def late_entry_problem(given_at: datetime, *, now: datetime, reason: str) -> str:
    """Why a test given at `given_at` and entered at `now` (both aware) cannot
    be saved with this late-entry `reason`; "" when it can. A test entered more
    than 15 minutes after it was given is a late entry and needs a reason."""
    if AllergyTest(given_at=given_at, entered_at=now).is_late_entry and not reason.strip():
        return _(
            "This test was given more than 15 minutes ago: say why it is entered late "
            "(for example, given on paper). It can be read 24 hours after it is entered."
        )
    return ""


def reading_opens_at(given_at: datetime, *, entered_at: datetime) -> datetime:
    """The first moment a test may be read: 24 hours after it was entered, or
    after the time given if that is later (domain.md: a wait of 24 hours)."""
    return max(given_at, entered_at) + ALLERGY_READING_DELAY


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
    late_entry_reason: str = "",
    batch: Batch | None = None,
    now: datetime | None = None,
    submission_token: uuid.UUID | None = None,
) -> AllergyTest:
    """Record a test micro-injection, entered now; it can be read 24 hours
    after it was entered, or after the time given if that is later.

    Arguments:
        patient: who was tested.
        given_by: the practitioner entering the test.
        ingredients, products: what was injected; a product tests every
            ingredient it contains. At least one of them.
        site: where, for example "inner left forearm".
        given_at: when the test was given, as typed (aware; any zone). At
            most 1 minute ahead of `now` and at most 7 days before it.
        late_entry_reason: why the test is entered more than 15 minutes after
            `given_at` (up to 300 characters); required then, ignored (kept
            blank) otherwise.
        batch: the batch of the test substance, if recorded.
        now: the moment of entry (aware), by default the server's clock;
            only tests and the demo seed pass another. It is stored as
            `entered_at`; no form or view ever supplies it.
        submission_token: the form's one-time token, stored on the test
            (None: no form, no guard).

    The reading opens at max(given_at, now) + 24 h (`read_due_at`): typing an
    earlier time given never shortens the wait (domain.md, "Allergy test").

    Raises:
        AlreadySubmittedError (clinic.concurrency, with `.obj`): a test was
            already recorded with this token; the same form sent twice, even
            at the same instant, records one test.
        ValidationError: no ingredient or product chosen (no field);
            `given_at` in the future or over 7 days ago ("given_at"); a late
            entry without a reason ("late_entry_reason"); an expired or
            recalled batch ("batch").
    """
    # First the token: a second post of the same form waits here for the first.
    submission_check(AllergyTest, submission_token)
    # A record being merged at this moment: the test goes to the record that stays.
    patient = patient_hold(patient)
    now = now or timezone.now()
    products = list(products)
    tested = tested_ingredients(ingredients=ingredients, products=products)
    if not tested:
        raise ValidationError(_("Choose at least one ingredient or product."))
    problem = given_at_problem(given_at, now=now)
    if problem:
        raise ValidationError({"given_at": problem})
    problem = late_entry_problem(given_at, now=now, reason=late_entry_reason)
    if problem:
        raise ValidationError({"late_entry_reason": problem})
    if batch is not None and not batch.is_usable_on(timezone.localdate(given_at)):
        raise ValidationError({"batch": _("This batch cannot be used: it is expired or recalled.")})
    test = AllergyTest(
        patient=patient,
        given_by=given_by,
        site=site.strip(),
        given_at=given_at,
        entered_at=now,
        read_due_at=reading_opens_at(given_at, entered_at=now),
        batch=batch,
        submission_token=submission_token,
    )
    # A test entered on time keeps no reason, even if one was typed.
    test.late_entry_reason = late_entry_reason.strip() if test.is_late_entry else ""
    test.full_clean()
    test.save()
    test.ingredients.set(tested)
    test.products.set(products)
    # The practitioner is told when the reading is due (their task list, and email).
    reminder_plan_allergy_reading(test=test)
    # Field names only, never values: a late entry shows as its reason being recorded.
    audit_log(
        actor=given_by,
        action=AuditAction.TEST_GIVEN,
        obj=test,
        patient_ref=patient.uuid,
        changed_fields=["ingredients", "products", "site", "given_at", "entered_at"]
        + (["late_entry_reason"] if test.is_late_entry else [])
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
    submission_token: uuid.UUID | None = None,
) -> AllergyTest:
    """Record the reading of a test, once, no earlier than its `read_due_at`
    (24 hours after it was entered, or after the time given if later).

    A positive reading records an allergy to every ingredient tested, in the
    same transaction. No photo file is left behind if the reading is refused.

    Arguments:
        test: the test read; read_by: the practitioner reading it.
        result: "negative" or "positive"; reaction: what was seen, required
            when positive; photo: an optional, already cleaned photo.
        now: the moment of the reading (aware), by default the server's clock.
        submission_token: the reading form's one-time token (None: no guard).

    A reading is the one change a test takes: the page's state ("not read")
    is what the refusal of a second reading checks.

    Raises:
        AlreadySubmittedError (clinic.concurrency, with `.obj`): this very
            reading form was already saved (sent twice): one reading.
        AllergyReadingRefusedError: the test was already read, or `now` is
            before `read_due_at` (the message says from when it can be read).
        ValidationError: no valid result ("result"); positive without a
            description ("reaction").
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
                submission_token=submission_token,
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
    submission_token: uuid.UUID | None,
) -> AllergyTest:
    # First the token: a second post of the same form waits here for the first.
    submission_check(AllergyTest, submission_token, by=read_by, find=lambda _e: test)
    # Lock the row: two practitioners reading at once must not both succeed.
    # Its patient first, then the row alone, then read with the patient
    # (patients.locking): a merge of the record finishes first, or waits, and
    # the allergies found go to the record the test is on.
    patient_row_lock(AllergyTest, test.pk, patient_id=test.patient_id)
    current = AllergyTest.objects.select_related("patient").get(pk=test.pk)
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
        changed_fields=[*changed, *submission_marks(submission_token)],
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

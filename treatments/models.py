"""The product catalogue (ingredients, products, batches), protocols, aftercare
sheets, allergy tests and the allergies they reveal.

Bookings, courses and session records arrive with their own issue and build on
these: a cocktail line names a batch, a course follows a protocol.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import (
    ArrayField,
    DateTimeRangeField,
    RangeBoundary,
    RangeOperators,
)
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Greatest, Lower
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from patients.models import TreatmentArea

if TYPE_CHECKING:
    from django.utils.functional import _StrOrPromise as StrOrPromise

ALLERGY_READING_DELAY = timedelta(hours=24)
# A test entered more than this after the time given was given on paper and
# entered late: it needs a reason, and the wait still runs from the entry.
ALLERGY_LATE_ENTRY_AFTER = timedelta(minutes=15)
# How far the time given may lie after the entry (clocks differ) or before it.
ALLERGY_GIVEN_AT_GRACE = timedelta(minutes=1)
ALLERGY_GIVEN_AT_MAX_AGE = timedelta(days=7)
# What a stored token digest looks like: the SHA-256 of the token, in hex.
SHA256_HEX = r"^[0-9a-f]{64}$"


class IngredientCategory(models.TextChoices):
    VITAMIN = "vitamin", _("Vitamin")
    MINERAL = "mineral", _("Mineral")
    AMINO_ACID = "amino_acid", _("Amino acid")
    HYALURONIC_ACID = "hyaluronic_acid", _("Hyaluronic acid")
    ENZYME = "enzyme", _("Enzyme")
    PLANT_EXTRACT = "plant_extract", _("Plant extract")
    NUCLEOTIDE = "nucleotide", _("Nucleotide")
    COENZYME = "coenzyme", _("Coenzyme")
    ANTIOXIDANT = "antioxidant", _("Antioxidant")
    PRP = "prp", _("Platelet-rich plasma (PRP)")
    MEDICINE = "medicine", _("Medicine")
    OTHER = "other", _("Other")


class Ingredient(models.Model):
    """An active substance that goes into products (vitamin C, hyaluronic acid...).
    Allergy tests and allergies are per ingredient."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(_("name"), max_length=120)
    category = models.CharField(_("category"), max_length=20, choices=IngredientCategory.choices)
    active = models.BooleanField(_("in use"), default=True)
    # Raised by every save of the services: an edit opened at an older version
    # is refused (clinic.concurrency), never applied over someone else's.
    version = models.PositiveIntegerField(_("record version"), default=1, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name = _("ingredient")
        verbose_name_plural = _("ingredients")
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                name="ingredient_name_unique_ci",
                violation_error_message=_("An ingredient with this name already exists."),
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    """A product the clinic buys (a vial of a branded cocktail, say), made of
    one or more ingredients."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(_("name"), max_length=150)
    maker = models.CharField(_("maker"), max_length=150)
    concentration = models.CharField(
        _("concentration"), max_length=100, blank=True, help_text=_("For example 20 mg/mL.")
    )
    ingredients = models.ManyToManyField(
        Ingredient, related_name="products", verbose_name=_("ingredients")
    )
    notes = models.TextField(_("notes"), blank=True, max_length=2000)
    active = models.BooleanField(_("in use"), default=True)
    # Raised by every save of the services: an edit opened at an older version
    # is refused (clinic.concurrency), never applied over someone else's.
    version = models.PositiveIntegerField(_("record version"), default=1, editable=False)

    class Meta:
        ordering = ["name", "maker"]
        verbose_name = _("product")
        verbose_name_plural = _("products")
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                Lower("maker"),
                name="product_name_maker_unique_ci",
                violation_error_message=_("This maker already has a product with this name."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.maker})"

    def get_absolute_url(self) -> str:
        return reverse("treatments:product_detail", kwargs={"product": self.uuid})


class BatchStatus(models.TextChoices):
    IN_STOCK = "in_stock", _("In stock")
    RECALLED = "recalled", _("Recalled")


class Batch(models.Model):
    """One lot of a product, with its expiry. An expired or recalled batch can
    never be chosen for a patient."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="batches")
    lot_number = models.CharField(_("lot number"), max_length=60)
    expiry_date = models.DateField(_("expiry date"))
    quantity_received = models.PositiveIntegerField(
        _("quantity received"), help_text=_("Number of vials or units.")
    )
    received_on = models.DateField(_("received on"))
    status = models.CharField(
        _("status"), max_length=10, choices=BatchStatus.choices, default=BatchStatus.IN_STOCK
    )
    recalled_at = models.DateTimeField(null=True, blank=True, editable=False)
    recalled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
        editable=False,
    )
    recall_reason = models.TextField(_("reason for the recall"), blank=True, max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["product__name", "expiry_date", "lot_number"]
        verbose_name = _("batch")
        verbose_name_plural = _("batches")
        indexes = [models.Index(fields=["status", "expiry_date"], name="batch_usable_idx")]
        constraints = [
            models.UniqueConstraint(
                "product",
                Lower("lot_number"),
                name="batch_lot_unique_per_product",
                violation_error_message=_("This product already has a batch with this lot number."),
            ),
            models.CheckConstraint(
                condition=Q(expiry_date__gt=F("received_on")),
                name="batch_expires_after_receipt",
                violation_error_message=_("The expiry date must be after the date received."),
            ),
            models.CheckConstraint(
                condition=Q(quantity_received__gt=0),
                name="batch_quantity_positive",
                violation_error_message=_("The quantity received must be at least 1."),
            ),
            # A recall records when, by whom and why; stock carries none of it.
            models.CheckConstraint(
                condition=(
                    Q(status="in_stock", recalled_at__isnull=True, recalled_by__isnull=True)
                    | (
                        Q(status="recalled", recalled_at__isnull=False, recalled_by__isnull=False)
                        & ~Q(recall_reason="")
                    )
                ),
                name="batch_recall_recorded",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product.name} lot {self.lot_number}"

    def get_absolute_url(self) -> str:
        return reverse("treatments:batch_detail", kwargs={"batch": self.uuid})

    def is_usable_on(self, day: date) -> bool:
        """May this batch be given to a patient on `day` (a local date)? Gate 5 decides."""
        from treatments.gates import gate_batches  # the gates import the models

        return not gate_batches(batches=[self], on=day)


class Interval(models.TextChoices):
    WEEKLY = "weekly", _("Every week")
    FORTNIGHTLY = "fortnightly", _("Every two weeks")
    MONTHLY = "monthly", _("Every month")


class AftercareSheet(models.Model):
    """The advice a patient takes home after a session of a protocol. The PDF
    given to the patient is rendered from it (clinic details, patient, areas
    treated and next session are added at rendering)."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    title = models.CharField(_("title"), max_length=150, unique=True)
    introduction = models.TextField(_("introduction"), max_length=2000)
    do_advice = models.TextField(
        _("what to do"), max_length=4000, help_text=_("One piece of advice per line.")
    )
    avoid_advice = models.TextField(
        _("what to avoid, and for how long"),
        max_length=4000,
        help_text=_("One piece of advice per line."),
    )
    warning_signs = models.TextField(
        _("warning signs: when to call the clinic or seek urgent care"),
        max_length=4000,
        help_text=_("One per line."),
    )
    updated_at = models.DateTimeField(auto_now=True)
    # Raised by every save of the services: an edit opened at an older version
    # is refused (clinic.concurrency), never applied over someone else's.
    version = models.PositiveIntegerField(_("record version"), default=1, editable=False)

    class Meta:
        ordering = ["title"]
        verbose_name = _("aftercare sheet")
        verbose_name_plural = _("aftercare sheets")

    def __str__(self) -> str:
        return self.title

    @staticmethod
    def _lines(text: str) -> list[str]:
        return [line.strip() for line in text.splitlines() if line.strip()]

    @property
    def do_lines(self) -> list[str]:
        return self._lines(self.do_advice)

    @property
    def avoid_lines(self) -> list[str]:
        return self._lines(self.avoid_advice)

    @property
    def warning_lines(self) -> list[str]:
        return self._lines(self.warning_signs)


class Protocol(models.Model):
    """A named treatment plan: what it treats, where, how many sessions how
    often, the default cocktail, the consent it requires and the aftercare
    sheet it uses."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(_("name"), max_length=150, unique=True)
    indication = models.TextField(_("indication"), max_length=2000)
    default_areas = ArrayField(
        models.CharField(max_length=20, choices=TreatmentArea.choices),
        verbose_name=_("default areas"),
    )
    default_sessions = models.PositiveSmallIntegerField(_("number of sessions"))
    interval = models.CharField(_("interval"), max_length=12, choices=Interval.choices)
    session_minutes = models.PositiveSmallIntegerField(_("session length (minutes)"), default=45)
    maintenance_months = models.PositiveSmallIntegerField(
        _("maintenance every (months)"),
        help_text=_("After the course: 6 for twice a year, 12 for once a year."),
    )
    consent_form = models.ForeignKey(
        "consent.ConsentForm",
        on_delete=models.PROTECT,
        related_name="protocols",
        verbose_name=_("consent form required"),
    )
    aftercare_sheet = models.ForeignKey(
        AftercareSheet,
        on_delete=models.PROTECT,
        related_name="protocols",
        verbose_name=_("aftercare sheet"),
    )
    active = models.BooleanField(_("in use"), default=True)
    # Raised by every save of the services: an edit opened at an older version
    # is refused (clinic.concurrency), never applied over someone else's.
    version = models.PositiveIntegerField(_("record version"), default=1, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name = _("protocol")
        verbose_name_plural = _("protocols")
        constraints = [
            models.CheckConstraint(
                condition=Q(default_sessions__gte=1, default_sessions__lte=20),
                name="protocol_sessions_range",
                violation_error_message=_("A course has between 1 and 20 sessions."),
            ),
            models.CheckConstraint(
                condition=Q(session_minutes__gte=10, session_minutes__lte=240),
                name="protocol_session_minutes_range",
                violation_error_message=_("A session lasts between 10 and 240 minutes."),
            ),
            models.CheckConstraint(
                condition=Q(maintenance_months__gte=1, maintenance_months__lte=24),
                name="protocol_maintenance_range",
                violation_error_message=_("Maintenance is every 1 to 24 months."),
            ),
            models.CheckConstraint(
                condition=Q(default_areas__len__gte=1),
                name="protocol_has_areas",
                violation_error_message=_("Choose at least one area."),
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("treatments:protocol_detail", kwargs={"protocol": self.uuid})


class Unit(models.TextChoices):
    ML = "ml", _("mL")
    MG = "mg", _("mg")


class ProtocolCocktailLine(models.Model):
    """One product of a protocol's default cocktail, with its usual amount."""

    protocol = models.ForeignKey(Protocol, on_delete=models.CASCADE, related_name="cocktail")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    amount = models.DecimalField(_("amount"), max_digits=6, decimal_places=2)
    unit = models.CharField(_("unit"), max_length=4, choices=Unit.choices, default=Unit.ML)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["protocol", "position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["protocol", "product"], name="protocol_cocktail_product_once"
            ),
            models.CheckConstraint(
                condition=Q(amount__gt=0), name="protocol_cocktail_amount_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product.name} {self.amount} {self.unit}"


class AllergyResult(models.TextChoices):
    NEGATIVE = "negative", _("Negative: no reaction")
    POSITIVE = "positive", _("Positive: reaction")


def _allergy_photo_path(instance: AllergyTest, filename: str) -> str:
    return f"allergy/{instance.uuid}.jpg"


class AllergyTest(models.Model):
    """A test micro-injection of the ingredients to be used, read 24 hours later.

    The row is written twice: when the test is given, then once when it is
    read. The database holds the rules: the 24-hour wait runs from the later of
    the time given and the time the test was entered (`read_due_at` =
    max(given, entered) + 24 h), so typing an earlier time given never
    shortens it; a test entered more than 15 minutes after it was given is a
    late entry and carries a reason; the reading cannot come before
    `read_due_at`; a positive result needs a description; what was given is
    never changed and a read test is never changed at all (trigger,
    migrations 0002 and 0006).
    """

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, related_name="allergy_tests"
    )
    ingredients = models.ManyToManyField(
        Ingredient, related_name="allergy_tests", verbose_name=_("ingredients tested")
    )
    products = models.ManyToManyField(
        Product, related_name="allergy_tests", blank=True, verbose_name=_("products tested")
    )
    batch = models.ForeignKey(
        Batch,
        on_delete=models.PROTECT,
        related_name="allergy_tests",
        null=True,
        blank=True,
        verbose_name=_("batch of the test substance"),
    )
    site = models.CharField(
        _("site"), max_length=100, help_text=_("For example: inner left forearm.")
    )
    given_at = models.DateTimeField(_("given at"))
    given_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", editable=False
    )
    # When the test was entered here, by the server's clock: never typed.
    entered_at = models.DateTimeField(_("entered at"), editable=False)
    late_entry_reason = models.CharField(
        _("reason for the late entry"),
        max_length=300,
        blank=True,
        help_text=_("Why the test is entered more than 15 minutes after it was given."),
    )
    read_due_at = models.DateTimeField(editable=False)

    result = models.CharField(_("result"), max_length=10, choices=AllergyResult.choices, blank=True)
    reaction = models.TextField(_("description of the reaction"), blank=True, max_length=2000)
    photo = models.FileField(upload_to=_allergy_photo_path, blank=True, editable=False)
    read_at = models.DateTimeField(null=True, blank=True, editable=False)
    read_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
        editable=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # The one-time token of the form that created this row: the same form sent
    # twice (a double click, a resent request) finds it instead of a second row.
    submission_token = models.UUIDField(null=True, blank=True, unique=True, editable=False)

    class Meta:
        ordering = ["-given_at", "-id"]
        verbose_name = _("allergy test")
        verbose_name_plural = _("allergy tests")
        indexes = [
            models.Index(fields=["patient", "-given_at"], name="allergy_patient_idx"),
            models.Index(
                fields=["read_due_at"], condition=Q(read_at__isnull=True), name="allergy_due_idx"
            ),
        ]
        constraints = [
            # The wait runs from the entry, or from the time given if later:
            # an earlier time typed never brings the reading forward.
            models.CheckConstraint(
                condition=Q(
                    read_due_at=Greatest(F("given_at"), F("entered_at")) + ALLERGY_READING_DELAY
                ),
                name="allergy_read_due_24h_after_entry",
            ),
            models.CheckConstraint(
                condition=Q(
                    given_at__lte=F("entered_at") + ALLERGY_GIVEN_AT_GRACE,
                    given_at__gte=F("entered_at") - ALLERGY_GIVEN_AT_MAX_AGE,
                ),
                name="allergy_given_within_week_before_entry",
                violation_error_message=_(
                    "The time given cannot be in the future or more than 7 days ago."
                ),
            ),
            # A late entry says why; a test entered on time has no reason.
            models.CheckConstraint(
                condition=(
                    Q(given_at__lt=F("entered_at") - ALLERGY_LATE_ENTRY_AFTER)
                    & ~Q(late_entry_reason="")
                )
                | (
                    Q(given_at__gte=F("entered_at") - ALLERGY_LATE_ENTRY_AFTER)
                    & Q(late_entry_reason="")
                ),
                name="allergy_late_entry_has_reason",
                violation_error_message=_(
                    "A test entered more than 15 minutes after it was given needs a reason."
                ),
            ),
            models.CheckConstraint(
                condition=Q(read_at__isnull=True) | Q(read_at__gte=F("read_due_at")),
                name="allergy_read_after_24h",
                violation_error_message=_("An allergy test is read 24 hours after it is given."),
            ),
            # Unread: no result. Read: a result, who and when.
            models.CheckConstraint(
                condition=Q(read_at__isnull=True, read_by__isnull=True, result="")
                | (Q(read_at__isnull=False, read_by__isnull=False) & ~Q(result="")),
                name="allergy_reading_complete",
            ),
            models.CheckConstraint(
                condition=~Q(result="positive") | ~Q(reaction=""),
                name="allergy_positive_described",
                violation_error_message=_("Describe the reaction seen."),
            ),
        ]

    def __str__(self) -> str:
        return f"Allergy test {self.uuid}"

    def get_absolute_url(self) -> str:
        return reverse(
            "treatments:allergy_test_detail",
            kwargs={"patient": self.patient.uuid, "test": self.uuid},
        )

    @property
    def is_read(self) -> bool:
        return self.read_at is not None

    @property
    def is_late_entry(self) -> bool:
        """Entered more than 15 minutes after it was given (given on paper)."""
        return self.given_at < self.entered_at - ALLERGY_LATE_ENTRY_AFTER


class PatientAllergy(models.Model):
    """An ingredient this patient must never be given. Made by a positive
    allergy test (or recorded from the history); blocks every later cocktail
    containing it."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, related_name="allergies"
    )
    ingredient = models.ForeignKey(
        Ingredient, on_delete=models.PROTECT, related_name="patient_allergies"
    )
    source_test = models.ForeignKey(
        AllergyTest,
        on_delete=models.PROTECT,
        related_name="allergies_found",
        null=True,
        blank=True,
        editable=False,
    )
    notes = models.TextField(_("notes"), blank=True, max_length=2000)
    recorded_at = models.DateTimeField(auto_now_add=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", editable=False
    )

    class Meta:
        ordering = ["ingredient__name"]
        verbose_name = _("allergy")
        verbose_name_plural = _("allergies")
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "ingredient"], name="allergy_once_per_ingredient"
            ),
        ]

    def __str__(self) -> str:
        return f"Allergy of {self.patient_id} to {self.ingredient_id}"


# --- Rooms, working hours and closures -----------------------------------------------


class Room(models.Model):
    """A treatment room: a booking holds one, and a room holds one booking at a time."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(_("name"), max_length=80, unique=True)
    active = models.BooleanField(_("in use"), default=True)
    # Raised by every save of the services: an edit opened at an older version
    # is refused (clinic.concurrency), never applied over someone else's.
    version = models.PositiveIntegerField(_("record version"), default=1, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name = _("room")
        verbose_name_plural = _("rooms")

    def __str__(self) -> str:
        return self.name


class WorkingHours(models.Model):
    """When a practitioner works on a weekday, in the clinic's local time."""

    practitioner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="working_hours"
    )
    weekday = models.PositiveSmallIntegerField(
        _("weekday"), help_text=_("0 is Monday, 6 is Sunday.")
    )
    starts = models.TimeField(_("from"))
    ends = models.TimeField(_("until"))

    class Meta:
        ordering = ["practitioner", "weekday", "starts"]
        verbose_name = _("working hours")
        verbose_name_plural = _("working hours")
        constraints = [
            models.CheckConstraint(condition=Q(weekday__lte=6), name="hours_weekday_range"),
            models.CheckConstraint(
                condition=Q(ends__gt=F("starts")),
                name="hours_end_after_start",
                violation_error_message=_("The end must be after the start."),
            ),
            models.UniqueConstraint(
                fields=["practitioner", "weekday", "starts"], name="hours_once_per_start"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.practitioner_id} day {self.weekday} {self.starts}-{self.ends}"


class ClinicClosure(models.Model):
    """Days the clinic is closed (bank holidays, training days): nothing is booked.

    How far back and ahead a closure may lie depends on the day it is set
    (treatments.services.booking.closure_dates_problem); its length does not,
    so the database holds that: a year at most."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    starts_on = models.DateField(_("first day closed"))
    ends_on = models.DateField(_("last day closed"))
    reason = models.CharField(_("reason"), max_length=150)
    # Raised by every save of the services: an edit opened at an older version
    # is refused (clinic.concurrency), never applied over someone else's.
    version = models.PositiveIntegerField(_("record version"), default=1, editable=False)

    class Meta:
        ordering = ["starts_on"]
        verbose_name = _("clinic closure")
        verbose_name_plural = _("clinic closures")
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_on__gte=F("starts_on")),
                name="closure_ends_after_start",
                violation_error_message=_("The last day must not be before the first."),
            ),
            # 366 days with both ends included (migration 0010 checks new rows only).
            models.CheckConstraint(
                condition=Q(ends_on__lte=F("starts_on") + timedelta(days=365)),
                name="closure_at_most_a_year",
                violation_error_message=_("A closure lasts at most a year (366 days)."),
            ),
        ]

    def __str__(self) -> str:
        return f"Closed {self.starts_on} to {self.ends_on}: {self.reason}"

    def get_absolute_url(self) -> str:
        return reverse("treatments:closure_edit", kwargs={"closure": self.uuid})


# --- Courses and bookings --------------------------------------------------------------


class CourseStatus(models.TextChoices):
    ACTIVE = "active", _("In progress")
    COMPLETED = "completed", _("Completed")
    STOPPED = "stopped", _("Stopped")


class TreatmentCourse(models.Model):
    """A series of sessions of one protocol for one patient."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, related_name="courses"
    )
    protocol = models.ForeignKey(Protocol, on_delete=models.PROTECT, related_name="courses")
    planned_sessions = models.PositiveSmallIntegerField(_("sessions planned"))
    interval = models.CharField(_("interval"), max_length=12, choices=Interval.choices)
    status = models.CharField(
        _("status"), max_length=10, choices=CourseStatus.choices, default=CourseStatus.ACTIVE
    )
    # Set when the last session is completed: the protocol's maintenance interval later.
    maintenance_due_on = models.DateField(_("maintenance due"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", editable=False
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("treatment course")
        verbose_name_plural = _("treatment courses")
        constraints = [
            models.CheckConstraint(
                condition=Q(planned_sessions__gte=1, planned_sessions__lte=20),
                name="course_sessions_range",
                violation_error_message=_("A course has between 1 and 20 sessions."),
            ),
        ]

    def __str__(self) -> str:
        return f"Course {self.uuid}"

    def get_absolute_url(self) -> str:
        return reverse(
            "treatments:course_detail", kwargs={"patient": self.patient.uuid, "course": self.uuid}
        )


class BookingStatus(models.TextChoices):
    BOOKED = "booked", _("Booked")
    ARRIVED = "arrived", _("Arrived")
    COMPLETED = "completed", _("Completed")
    CANCELLED = "cancelled", _("Cancelled")
    NO_SHOW = "no_show", _("Did not come")


# The one table of legal moves; Booking.transition_to enforces it.
BOOKING_TRANSITIONS: dict[str, frozenset[str]] = {
    BookingStatus.BOOKED: frozenset(
        {BookingStatus.ARRIVED, BookingStatus.CANCELLED, BookingStatus.NO_SHOW}
    ),
    BookingStatus.ARRIVED: frozenset(
        {BookingStatus.COMPLETED, BookingStatus.CANCELLED, BookingStatus.BOOKED}
    ),
    BookingStatus.COMPLETED: frozenset(),
    BookingStatus.CANCELLED: frozenset(),
    BookingStatus.NO_SHOW: frozenset(),
}

# Bookings in these states hold their time: practitioner, room and patient
# cannot be double-booked over them.
HOLDING_STATUSES = (BookingStatus.BOOKED, BookingStatus.ARRIVED, BookingStatus.COMPLETED)


class IllegalTransitionError(Exception):
    """A booking cannot move from its status to the one asked for."""


class TsTzRange(models.Func):
    function = "TSTZRANGE"
    output_field = DateTimeRangeField()


def _no_overlap(field: str, name: str) -> ExclusionConstraint:
    return ExclusionConstraint(
        name=name,
        expressions=[
            (TsTzRange("starts_at", "ends_at", RangeBoundary()), RangeOperators.OVERLAPS),
            (field, RangeOperators.EQUAL),
        ],
        condition=Q(status__in=HOLDING_STATUSES),
        violation_error_code="slot_taken",
        violation_error_message=_("This slot was just taken. Choose another time."),
    )


class Booking(models.Model):
    """A treatment session in the calendar: patient, practitioner, room, time.

    Times are stored in UTC and shown in the clinic's zone. PostgreSQL refuses
    overlapping bookings that hold their time for the same practitioner, room
    or patient (exclusion constraints), so two receptionists can never take
    the same slot, whatever the timing.
    """

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, related_name="bookings"
    )
    practitioner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="bookings"
    )
    room = models.ForeignKey(Room, on_delete=models.PROTECT, related_name="bookings")
    protocol = models.ForeignKey(Protocol, on_delete=models.PROTECT, related_name="bookings")
    course = models.ForeignKey(
        TreatmentCourse,
        on_delete=models.PROTECT,
        related_name="bookings",
        null=True,
        blank=True,
    )
    starts_at = models.DateTimeField(_("starts"))
    ends_at = models.DateTimeField(_("ends"))
    status = models.CharField(
        _("status"), max_length=10, choices=BookingStatus.choices, default=BookingStatus.BOOKED
    )
    cancel_reason = models.CharField(_("reason for cancelling"), max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", editable=False
    )
    updated_at = models.DateTimeField(auto_now=True)
    # Raised by every save of the services: an edit opened at an older version
    # is refused (clinic.concurrency), never applied over someone else's.
    version = models.PositiveIntegerField(_("record version"), default=1, editable=False)
    # The one-time token of the form that created this row: the same form sent
    # twice (a double click, a resent request) finds it instead of a second row.
    submission_token = models.UUIDField(null=True, blank=True, unique=True, editable=False)

    class Meta:
        ordering = ["starts_at", "id"]
        verbose_name = _("booking")
        verbose_name_plural = _("bookings")
        indexes = [
            models.Index(fields=["starts_at"], name="booking_starts_idx"),
            models.Index(fields=["patient", "starts_at"], name="booking_patient_idx"),
            models.Index(fields=["course", "starts_at"], name="booking_course_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")),
                name="booking_ends_after_start",
                violation_error_message=_("The end must be after the start."),
            ),
            models.CheckConstraint(
                condition=~Q(status="cancelled") | ~Q(cancel_reason=""),
                name="booking_cancel_has_reason",
                violation_error_message=_("Say why the booking is cancelled."),
            ),
            _no_overlap("practitioner", "booking_no_overlap_practitioner"),
            _no_overlap("room", "booking_no_overlap_room"),
            _no_overlap("patient", "booking_no_overlap_patient"),
        ]

    def __str__(self) -> str:
        return f"Booking {self.uuid}"

    def get_absolute_url(self) -> str:
        return reverse("treatments:booking_detail", kwargs={"booking": self.uuid})

    def transition_to(self, status: str) -> None:
        """Move to `status` if the transition table allows it."""
        if status not in BOOKING_TRANSITIONS[self.status]:
            raise IllegalTransitionError(
                _("A booking that is “%(current)s” cannot become “%(new)s”.")
                % {
                    "current": BookingStatus(self.status).label,
                    "new": BookingStatus(status).label,
                }
            )
        self.status = status


class BookingEventKind(models.TextChoices):
    CREATED = "created", _("booked")
    MOVED = "moved", _("moved")
    CANCELLED = "cancelled", _("cancelled")
    ARRIVED = "arrived", _("marked arrived")
    NO_SHOW = "no_show", _("marked as not come")
    COMPLETED = "completed", _("completed")
    REOPENED = "reopened", _("set back to booked")


class BookingEvent(models.Model):
    """One change in a booking's history: who did what, when, from and to."""

    booking = models.ForeignKey(Booking, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=12, choices=BookingEventKind.choices)
    at = models.DateTimeField(auto_now_add=True)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # For moves: where it was; for every event: a short detail (the reason).
    previous_starts_at = models.DateTimeField(null=True, blank=True)
    previous_practitioner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True
    )
    previous_room = models.ForeignKey(Room, on_delete=models.PROTECT, related_name="+", null=True)
    detail = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["at", "id"]
        verbose_name = _("booking change")
        verbose_name_plural = _("booking changes")

    def __str__(self) -> str:
        return f"{self.kind} of {self.booking_id} at {self.at:%Y-%m-%d %H:%M}"


# --- Session records -----------------------------------------------------------------


class SessionRecord(models.Model):
    """What was done at a completed session. Written once, when the session is
    completed behind the safety gates; never changed (trigger): a correction
    is a `SessionAmendment`."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    booking = models.OneToOneField(Booking, on_delete=models.PROTECT, related_name="record")
    numbing_cream = models.BooleanField(_("numbing cream used"))
    immediate_reactions = models.TextField(
        _("immediate reactions"), blank=True, max_length=2000, help_text=_("Leave empty if none.")
    )
    notes = models.TextField(_("notes"), blank=True, max_length=4000)
    completed_at = models.DateTimeField(editable=False)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", editable=False
    )

    class Meta:
        ordering = ["-completed_at", "-id"]
        verbose_name = _("session record")
        verbose_name_plural = _("session records")

    def __str__(self) -> str:
        return f"Session record {self.uuid}"


class Technique(models.TextChoices):
    NAPPAGE = "nappage", _("Nappage")
    PAPULE = "papule", _("Papule")
    POINT_BY_POINT = "point", _("Point-by-point")
    LINEAR = "linear", _("Linear threading")


class Device(models.TextChoices):
    SYRINGE = "syringe", _("Syringe")
    MESO_GUN = "meso_gun", _("Meso-gun (injector)")


class CocktailLine(models.Model):
    """One product of the cocktail given at a session: batch, amount, area, how."""

    session = models.ForeignKey(SessionRecord, on_delete=models.PROTECT, related_name="lines")
    batch = models.ForeignKey(Batch, on_delete=models.PROTECT, related_name="cocktail_lines")
    amount = models.DecimalField(_("amount"), max_digits=6, decimal_places=2)
    unit = models.CharField(_("unit"), max_length=4, choices=Unit.choices, default=Unit.ML)
    area = models.CharField(_("area"), max_length=20, choices=TreatmentArea.choices)
    technique = models.CharField(_("technique"), max_length=10, choices=Technique.choices)
    depth_mm = models.DecimalField(_("depth (mm)"), max_digits=4, decimal_places=1)
    needle_gauge = models.PositiveSmallIntegerField(_("needle (gauge)"))
    device = models.CharField(_("given with"), max_length=10, choices=Device.choices)

    class Meta:
        ordering = ["session", "id"]
        verbose_name = _("cocktail line")
        verbose_name_plural = _("cocktail lines")
        indexes = [models.Index(fields=["batch"], name="cocktail_batch_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gt=0, amount__lte=100), name="cocktail_amount_range"
            ),
            models.CheckConstraint(
                condition=Q(depth_mm__gte=Decimal("0.1"), depth_mm__lte=Decimal("13")),
                name="cocktail_depth_range",
                violation_error_message=_("Depth is between 0.1 and 13 mm."),
            ),
            models.CheckConstraint(
                condition=Q(needle_gauge__gte=18, needle_gauge__lte=34),
                name="cocktail_needle_range",
                violation_error_message=_("Needle gauge is between 18G and 34G."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.amount} {self.unit} of batch {self.batch_id}"


class AdverseEffect(models.TextChoices):
    BRUISING = "bruising", _("Bruising")
    SWELLING = "swelling", _("Swelling")
    REDNESS = "redness", _("Redness")
    BURNING = "burning", _("Burning or stinging")
    ITCHING = "itching", _("Itching")
    PAIN = "pain", _("Pain or tenderness")
    BUMPS = "bumps", _("Bumps at injection points")
    NAUSEA = "nausea", _("Nausea")
    RASH = "rash", _("Rash")
    LUMP = "lump", _("Lump")
    HYPERPIGMENTATION = "hyperpigmentation", _("Dark patches (hyperpigmentation)")
    ALLERGIC_REACTION = "allergic_reaction", _("Allergic reaction")
    INFECTION = "infection", _("Infection")
    ULCERATION = "ulceration", _("Ulceration")
    SCARRING = "scarring", _("Scarring")


class Severity(models.TextChoices):
    MILD = "mild", _("Mild")
    MODERATE = "moderate", _("Moderate")
    SEVERE = "severe", _("Severe")


class AdverseEvent(models.Model):
    """A side effect or complication, against the session (and so its batches).
    Recorded at the session or later; never changed."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    session = models.ForeignKey(
        SessionRecord, on_delete=models.PROTECT, related_name="adverse_events"
    )
    effect = models.CharField(_("effect"), max_length=20, choices=AdverseEffect.choices)
    severity = models.CharField(_("severity"), max_length=10, choices=Severity.choices)
    onset = models.DateTimeField(_("started"))
    resolved_on = models.DateField(_("resolved on"), null=True, blank=True)
    follow_up_needed = models.BooleanField(_("follow-up needed"), default=False)
    notes = models.TextField(_("notes"), blank=True, max_length=2000)
    recorded_at = models.DateTimeField(auto_now_add=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", editable=False
    )

    class Meta:
        ordering = ["onset", "id"]
        verbose_name = _("adverse event")
        verbose_name_plural = _("adverse events")

    def __str__(self) -> str:
        return f"{self.effect} ({self.severity}) at session {self.session_id}"


class SessionAmendment(models.Model):
    """A correction or addition to a completed session record: who, when, what."""

    session = models.ForeignKey(SessionRecord, on_delete=models.PROTECT, related_name="amendments")
    text = models.TextField(_("amendment"), max_length=4000)
    at = models.DateTimeField(auto_now_add=True)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", editable=False
    )

    class Meta:
        ordering = ["at", "id"]
        verbose_name = _("amendment")
        verbose_name_plural = _("amendments")
        constraints = [
            models.CheckConstraint(condition=~Q(text=""), name="amendment_not_empty"),
        ]

    def __str__(self) -> str:
        return f"Amendment of {self.session_id} at {self.at:%Y-%m-%d %H:%M}"


# The questions asked at every session, whatever the yearly history says: each
# describes the patient on the day (domain.md, contraindication screening).
# (field, question as the practitioner asks it). Gate 6 reads the answers.
DAY_OF_QUESTIONS: tuple[tuple[str, StrOrPromise], ...] = (
    ("unwell", _("Feels unwell today, even a cold")),
    ("pregnant", _("Pregnant, or could be pregnant")),
    ("breastfeeding", _("Breastfeeding")),
    ("skin_infection", _("A skin infection in or near an area to treat today")),
    ("active_acne", _("Active acne in or near an area to treat today")),
    ("cold_sore", _("A cold sore now, in or near an area to treat today")),
    (
        "new_medicine_or_allergy",
        _("A new medicine, or a new allergy, since the medical history was signed"),
    ),
)
DAY_OF_FIELDS = tuple(name for name, _label in DAY_OF_QUESTIONS)


class DayOfCheck(models.Model):
    """The patient's answers on the day of a session, asked before it is
    completed. Part of the session record: written with it, never changed
    (trigger). Every answer is a yes or a no; a blank is not a "no"."""

    session = models.OneToOneField(
        SessionRecord, on_delete=models.PROTECT, related_name="day_of_check"
    )
    unwell = models.BooleanField(_("unwell today"))
    pregnant = models.BooleanField(_("pregnant or possibly pregnant"))
    breastfeeding = models.BooleanField(_("breastfeeding"))
    skin_infection = models.BooleanField(_("skin infection in or near a treated area"))
    active_acne = models.BooleanField(_("active acne in or near a treated area"))
    cold_sore = models.BooleanField(_("cold sore in or near a treated area"))
    new_medicine_or_allergy = models.BooleanField(_("new medicine or allergy since the history"))
    asked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", editable=False
    )
    asked_at = models.DateTimeField(editable=False)

    class Meta:
        verbose_name = _("day-of-treatment check")
        verbose_name_plural = _("day-of-treatment checks")
        constraints = [
            # Only a check with every answer "no" is ever saved: a "yes" stops the session.
            models.CheckConstraint(
                condition=Q(
                    unwell=False,
                    pregnant=False,
                    breastfeeding=False,
                    skin_infection=False,
                    active_acne=False,
                    cold_sore=False,
                    new_medicine_or_allergy=False,
                ),
                name="day_of_check_all_clear",
            ),
        ]

    def __str__(self) -> str:
        return f"Day-of check of session {self.session_id}"

    def answers(self) -> list[tuple[str, bool]]:
        """(question, answer) in the order asked."""
        return [(str(label), getattr(self, name)) for name, label in DAY_OF_QUESTIONS]


class CautionAcknowledgement(models.Model):
    """A caution from the medical history that applied to the areas treated,
    acknowledged by the practitioner before completing the session. The exact
    wording shown is kept. Part of the session record (trigger: never changed)."""

    session = models.ForeignKey(
        SessionRecord, on_delete=models.PROTECT, related_name="caution_acknowledgements"
    )
    code = models.CharField(max_length=40)  # patients.screening rule code
    wording = models.TextField(max_length=1000)
    areas = ArrayField(
        models.CharField(max_length=20, choices=TreatmentArea.choices),
        blank=True,
        help_text=_("The treated areas the caution concerns; empty: every area."),
    )
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", editable=False
    )
    acknowledged_at = models.DateTimeField(editable=False)

    class Meta:
        ordering = ["session", "id"]
        verbose_name = _("caution acknowledged")
        verbose_name_plural = _("cautions acknowledged")
        constraints = [
            models.UniqueConstraint(fields=["session", "code"], name="caution_once_per_session"),
            models.CheckConstraint(condition=~Q(wording=""), name="caution_wording_kept"),
        ]

    def __str__(self) -> str:
        return f"Caution {self.code} acknowledged for session {self.session_id}"

    def area_names(self) -> str:
        """The areas as the practitioner reads them ("Face"), or "Every area"."""
        labels = dict(TreatmentArea.choices)
        return ", ".join(str(labels.get(a, a)) for a in self.areas) or str(_("Every area"))


# --- Reminders: the outbox ---------------------------------------------------------


class ReminderKind(models.TextChoices):
    SESSION = "session", _("session reminder")
    ALLERGY_READING = "allergy_reading", _("allergy reading due")
    COURSE_NEXT = "course_next", _("next session of the course not booked")
    MAINTENANCE = "maintenance", _("maintenance session due")


class ReminderChannel(models.TextChoices):
    EMAIL = "email", _("Email")
    SMS = "sms", _("Text message")
    TASK = "task", _("Task list")


class ReminderStatus(models.TextChoices):
    PLANNED = "planned", _("Planned")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


class Reminder(models.Model):
    """One message to send at one moment: PostgreSQL is the schedule.

    Rows are written in the same transaction as the booking (or test, or
    course) they are about; a beat tick claims the due ones with SELECT ...
    FOR UPDATE SKIP LOCKED and sends them. The unique constraints make a
    second row for the same purpose impossible, so a retry or a second beat
    can never plan a duplicate. `slot_starts_at` is the session time the
    reminder was planned for: moving the booking cancels the planned rows and
    plans new ones for the new time, and the log keeps both.
    """

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=20, choices=ReminderKind.choices)
    channel = models.CharField(max_length=10, choices=ReminderChannel.choices)
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, related_name="reminders"
    )
    booking = models.ForeignKey(
        Booking, on_delete=models.PROTECT, related_name="reminders", null=True, blank=True
    )
    allergy_test = models.ForeignKey(
        AllergyTest, on_delete=models.PROTECT, related_name="reminders", null=True, blank=True
    )
    course = models.ForeignKey(
        TreatmentCourse,
        on_delete=models.PROTECT,
        related_name="reminders",
        null=True,
        blank=True,
    )
    # The staff member to tell (the practitioner, for an allergy reading).
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="reminders",
        null=True,
        blank=True,
    )
    lead_minutes = models.PositiveIntegerField(default=0)
    slot_starts_at = models.DateTimeField(null=True, blank=True)
    # When it was meant to go, and when it will go (held past quiet hours).
    intended_at = models.DateTimeField()
    due_at = models.DateTimeField()
    status = models.CharField(
        max_length=10, choices=ReminderStatus.choices, default=ReminderStatus.PLANNED
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    provider_message_id = models.CharField(max_length=200, blank=True)
    error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["due_at", "id"]
        verbose_name = _("reminder")
        verbose_name_plural = _("reminders")
        indexes = [
            models.Index(fields=["due_at"], condition=Q(status="planned"), name="reminder_due_idx"),
            models.Index(fields=["patient", "-due_at"], name="reminder_patient_idx"),
            models.Index(fields=["booking"], name="reminder_booking_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["booking", "kind", "lead_minutes", "slot_starts_at"],
                condition=Q(booking__isnull=False),
                name="reminder_once_per_booking_slot",
            ),
            models.UniqueConstraint(
                fields=["allergy_test", "kind"],
                condition=Q(allergy_test__isnull=False),
                name="reminder_once_per_allergy_test",
            ),
            models.UniqueConstraint(
                fields=["course", "kind", "intended_at"],
                condition=Q(course__isnull=False, booking__isnull=True),
                name="reminder_once_per_course_moment",
            ),
            models.CheckConstraint(
                condition=Q(due_at__gte=F("intended_at")) | Q(kind="session"),
                name="reminder_held_not_advanced",
            ),
            models.CheckConstraint(
                condition=~Q(status="sent") | Q(sent_at__isnull=False),
                name="reminder_sent_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} reminder {self.uuid} ({self.status})"


# --- Patient documents, download links and the portal ----------------------------------


class PatientDocumentStatus(models.TextChoices):
    QUEUED = "queued", _("being prepared")
    READY = "ready", _("ready")
    FAILED = "failed", _("failed")


def _document_path(instance: PatientDocument, filename: str) -> str:
    return f"documents/{instance.uuid}.pdf"


class PatientDocument(models.Model):
    """A PDF made for a patient: the aftercare sheet of a completed session.
    Regenerating replaces the file at the same path; never a second copy."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, related_name="documents"
    )
    session = models.OneToOneField(
        SessionRecord, on_delete=models.PROTECT, related_name="aftercare_document"
    )
    status = models.CharField(
        max_length=10, choices=PatientDocumentStatus.choices, default=PatientDocumentStatus.QUEUED
    )
    file = models.FileField(upload_to=_document_path, blank=True, editable=False)
    sha256 = models.CharField(max_length=64, blank=True, editable=False)
    attempts = models.PositiveIntegerField(default=0, editable=False)
    error = models.CharField(max_length=200, blank=True, editable=False)
    queued_at = models.DateTimeField(editable=False)
    generated_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-queued_at", "-id"]
        verbose_name = _("patient document")
        verbose_name_plural = _("patient documents")
        indexes = [models.Index(fields=["status", "queued_at"], name="document_status_idx")]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="ready") | (~Q(file="") & ~Q(sha256="")),
                name="document_ready_has_file",
            ),
        ]

    def __str__(self) -> str:
        return f"Aftercare sheet {self.uuid} ({self.status})"


class DownloadLink(models.Model):
    """A link emailed to a patient for one document. Only the SHA-256 of its
    random token is stored; it expires, can be revoked, and the download also
    asks for the patient's date of birth."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, related_name="download_links"
    )
    document = models.ForeignKey(PatientDocument, on_delete=models.PROTECT, related_name="links")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    downloads = models.PositiveIntegerField(default=0)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("download link")
        verbose_name_plural = _("download links")
        constraints = [
            models.CheckConstraint(
                condition=Q(token_hash__regex=SHA256_HEX), name="link_token_is_sha256"
            ),
            models.CheckConstraint(
                condition=Q(expires_at__gt=F("created_at")), name="link_expires_after_creation"
            ),
        ]

    def __str__(self) -> str:
        return f"Download link {self.uuid}"


class PortalAccount(models.Model):
    """A patient's sign-in to the portal: a user with no staff role, tied to
    one patient record. Sign-in is by a one-time link sent by email."""

    patient = models.OneToOneField(
        "patients.Patient", on_delete=models.PROTECT, related_name="portal_account"
    )
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="portal_account"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("portal account")
        verbose_name_plural = _("portal accounts")

    def __str__(self) -> str:
        return f"Portal account of {self.patient_id}"


class PortalLoginToken(models.Model):
    """A one-time sign-in link for the portal (hash of the token only)."""

    account = models.ForeignKey(PortalAccount, on_delete=models.CASCADE, related_name="tokens")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("portal sign-in link")
        verbose_name_plural = _("portal sign-in links")
        constraints = [
            models.CheckConstraint(
                condition=Q(token_hash__regex=SHA256_HEX), name="portal_token_is_sha256"
            ),
        ]

    def __str__(self) -> str:
        return f"Portal sign-in link {self.pk}"


class LinkAttempt(models.Model):
    """A wrong token or date of birth at a public link page, by address:
    counted to slow down guessing (no patient data kept)."""

    ip = models.GenericIPAddressField()
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["ip", "at"], name="link_attempt_ip_idx")]

    def __str__(self) -> str:
        return f"Failed link attempt from {self.ip}"

"""The catalogue: ingredients, products and their batches (expiry, recall),
protocols with their cocktail, and the aftercare sheets patients take home.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.postgres.fields import (
    ArrayField,
)
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from patients.models import TreatmentArea
from treatments.models.injection import (
    DEPTH_MM_MAX,
    DEPTH_MM_MIN,
    DEPTH_SENTENCE,
    NEEDLE_GAUGE_MAX,
    NEEDLE_GAUGE_MIN,
    NEEDLE_SENTENCE,
    Device,
    Technique,
    depth_in_range,
    needle_in_range,
)

if TYPE_CHECKING:
    pass


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
    # How the cocktail is usually given: a session's new lines start with these
    # when the patient has no earlier session on the protocol. Each may be left
    # empty; the bounds are the cocktail line's own (treatments.models.injection).
    default_technique = models.CharField(
        _("technique"), max_length=10, choices=Technique.choices, blank=True
    )
    default_depth_mm = models.DecimalField(
        _("depth (mm)"),
        max_digits=4,
        decimal_places=1,
        null=True,
        blank=True,
        validators=[
            MinValueValidator(DEPTH_MM_MIN, message=DEPTH_SENTENCE),
            MaxValueValidator(DEPTH_MM_MAX, message=DEPTH_SENTENCE),
        ],
    )
    default_needle_gauge = models.PositiveSmallIntegerField(
        _("needle (gauge)"),
        null=True,
        blank=True,
        validators=[
            MinValueValidator(NEEDLE_GAUGE_MIN, message=NEEDLE_SENTENCE),
            MaxValueValidator(NEEDLE_GAUGE_MAX, message=NEEDLE_SENTENCE),
        ],
    )
    default_device = models.CharField(
        _("given with"), max_length=10, choices=Device.choices, blank=True
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
            models.CheckConstraint(
                condition=Q(default_depth_mm__isnull=True) | depth_in_range("default_depth_mm"),
                name="protocol_depth_range",
                violation_error_message=DEPTH_SENTENCE,
            ),
            models.CheckConstraint(
                condition=Q(default_needle_gauge__isnull=True)
                | needle_in_range("default_needle_gauge"),
                name="protocol_needle_range",
                violation_error_message=NEEDLE_SENTENCE,
            ),
            models.CheckConstraint(
                condition=Q(default_technique__in=["", *Technique.values]),
                name="protocol_known_technique",
            ),
            models.CheckConstraint(
                condition=Q(default_device__in=["", *Device.values]),
                name="protocol_known_device",
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

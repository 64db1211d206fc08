"""Session records: the cocktail given (and where on the diagram), adverse
events and their follow-ups, amendments, the day-of checks and acknowledged
cautions.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.postgres.fields import (
    ArrayField,
)
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from patients.models import TreatmentArea
from treatments.models.booking import Booking
from treatments.models.catalogue import Batch, Unit
from treatments.models.injection import (
    DEPTH_SENTENCE,
    NEEDLE_SENTENCE,
    Device,
    Technique,
    depth_in_range,
    needle_in_range,
)

if TYPE_CHECKING:
    from django.utils.functional import _StrOrPromise as StrOrPromise


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
                condition=depth_in_range("depth_mm"),
                name="cocktail_depth_range",
                violation_error_message=DEPTH_SENTENCE,
            ),
            models.CheckConstraint(
                condition=needle_in_range("needle_gauge"),
                name="cocktail_needle_range",
                violation_error_message=NEEDLE_SENTENCE,
            ),
        ]

    def __str__(self) -> str:
        return f"{self.amount} {self.unit} of batch {self.batch_id}"


class MapView(models.TextChoices):
    """The views of the diagram a point is tapped on (treatments.needle_map)."""

    FACE = "face", _("Face")
    BODY_FRONT = "body_front", _("Body, front")
    BODY_BACK = "body_back", _("Body, back")
    SCALP = "scalp", _("Scalp, from above")


# Points tapped for one cocktail line at most: a line of nappage over a face is
# shaded as an area, not tapped needle by needle.
MAX_POINTS_PER_LINE = 200


class InjectionPoint(models.Model):
    """Where on the diagram a line's product went, for the point techniques
    (papules, point by point): the view it was tapped on and its place as a
    fraction of the view's width (`x`) and height (`y`), 0 at the top left.
    Written with the line, in the order tapped (`position`); never changed
    (trigger). The line's area says which area it is."""

    line = models.ForeignKey(CocktailLine, on_delete=models.PROTECT, related_name="points")
    position = models.PositiveSmallIntegerField()
    view = models.CharField(_("view"), max_length=12, choices=MapView.choices)
    x = models.DecimalField(max_digits=5, decimal_places=4)
    y = models.DecimalField(max_digits=5, decimal_places=4)

    class Meta:
        ordering = ["line", "position"]
        verbose_name = _("injection point")
        verbose_name_plural = _("injection points")
        constraints = [
            models.UniqueConstraint(fields=["line", "position"], name="injection_point_once"),
            models.CheckConstraint(
                condition=Q(position__lt=MAX_POINTS_PER_LINE),
                name="injection_points_per_line",
            ),
            models.CheckConstraint(
                condition=Q(x__gte=0, x__lte=1, y__gte=0, y__lte=1),
                name="injection_point_on_the_view",
            ),
            models.CheckConstraint(
                condition=Q(view__in=MapView.values), name="injection_point_known_view"
            ),
        ]

    def __str__(self) -> str:
        return f"Point {self.position} of cocktail line {self.line_id} ({self.view})"


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


class AdverseEventFollowUp(models.Model):
    """A later word on an adverse event: how it is going, and whether it is
    now resolved, with who wrote it and when. The event itself is never
    changed: its follow-ups are added below it and, like it, never changed
    (trigger). An event takes no follow-up once resolved (one resolving
    follow-up at most: constraint); one that comes back is a new event."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    event = models.ForeignKey(AdverseEvent, on_delete=models.PROTECT, related_name="follow_ups")
    note = models.TextField(_("follow-up"), max_length=2000)
    resolved = models.BooleanField(_("resolved"), default=False)
    recorded_at = models.DateTimeField(editable=False)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", editable=False
    )

    class Meta:
        ordering = ["recorded_at", "id"]
        verbose_name = _("adverse event follow-up")
        verbose_name_plural = _("adverse event follow-ups")
        constraints = [
            models.CheckConstraint(condition=~Q(note=""), name="follow_up_note_written"),
            models.UniqueConstraint(
                fields=["event"], condition=Q(resolved=True), name="follow_up_resolves_once"
            ),
        ]

    def __str__(self) -> str:
        return f"Follow-up of adverse event {self.event_id} at {self.recorded_at:%Y-%m-%d %H:%M}"


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

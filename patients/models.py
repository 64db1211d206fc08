"""The patient register: identity, contact details, messaging preferences."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models.functions import Upper
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from phonenumber_field.modelfields import PhoneNumberField

from clinic.names import nfc, person_name


class ReminderChannel(models.TextChoices):
    EMAIL = "email", _("Email")
    SMS = "sms", _("Text message (SMS)")
    NONE = "none", _("No reminders")


# What registration and the contact-details form may set; nothing else.
PATIENT_EDITABLE_FIELDS = (
    "first_name",
    "last_name",
    "date_of_birth",
    "email",
    "phone",
    "address",
    "postcode",
    "emergency_contact_name",
    "emergency_contact_phone",
    "gp_details",
    "reminder_channel",
    "consents_to_messages",
)


# Short texts that name a person: stored in Unicode NFC (clinic.names).
PERSON_TEXT_FIELDS = ("first_name", "last_name", "emergency_contact_name", "gp_details")


class Patient(models.Model):
    """A person the clinic treats. URLs carry `uuid`, never the sequential key."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    first_name = models.CharField(_("first name"), max_length=100)
    last_name = models.CharField(_("last name"), max_length=100)
    date_of_birth = models.DateField(_("date of birth"))
    email = models.EmailField(_("email"), blank=True)
    phone = PhoneNumberField(_("mobile phone"), blank=True)
    address = models.TextField(_("address"), blank=True, max_length=500)
    postcode = models.CharField(_("postcode"), max_length=12, blank=True)
    emergency_contact_name = models.CharField(_("emergency contact"), max_length=150, blank=True)
    emergency_contact_phone = PhoneNumberField(_("emergency contact phone"), blank=True)
    gp_details = models.CharField(
        _("GP (doctor) and practice"), max_length=200, blank=True, help_text=_("Optional.")
    )
    reminder_channel = models.CharField(
        _("reminders by"),
        max_length=10,
        choices=ReminderChannel.choices,
        default=ReminderChannel.EMAIL,
    )
    consents_to_messages = models.BooleanField(
        _("agrees to receive reminders and aftercare messages"), default=False
    )
    # Name and email folded (accents, case, apostrophes: patients.folding),
    # phone digits and birth date, kept by the services, so that one
    # trigram-indexed column answers the search box.
    search_text = models.TextField(editable=False, default="")
    # The one-time token of the registration form that created this record:
    # the same form sent twice (a double click, a resent request) finds it here
    # instead of registering the person twice.
    registration_token = models.UUIDField(null=True, blank=True, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Raised by every save of the services: an edit opened at an older version
    # is refused (clinic.concurrency), never applied over someone else's.
    version = models.PositiveIntegerField(_("record version"), default=1, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
        editable=False,
    )
    # Set when this record was found to be a second record of the same person
    # and merged into `merged_into` (treatments.services.merge): its clinical
    # rows moved there; the row stays, hidden from search and lists, and its
    # pages redirect to the survivor's.
    merged_into = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        related_name="merged_records",
        null=True,
        blank=True,
        editable=False,
    )
    merged_at = models.DateTimeField(null=True, blank=True, editable=False)
    merged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
        editable=False,
    )
    # Set when the retention period ended and the record was anonymised
    # (treatments.services.data_rights.patient_anonymise): its names, date of
    # birth and contact details are placeholders or blank from then on, and
    # pages show them as removed, never as if they were the person's.
    anonymised_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["last_name", "first_name", "id"]
        indexes = [
            models.Index(fields=["last_name", "first_name"], name="patient_name_idx"),
            # The duplicate check, run under a lock at each registration.
            models.Index(fields=["date_of_birth"], name="patient_birth_date_idx"),
            models.Index(Upper("email"), name="patient_email_ci_idx"),
            models.Index(fields=["phone"], name="patient_phone_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(date_of_birth__gte="1900-01-01"),
                name="patient_born_after_1900",
                violation_error_message=_("Check the year: the date of birth is before 1900."),
            ),
            # A reminder channel needs the matching contact detail.
            models.CheckConstraint(
                condition=~models.Q(reminder_channel="sms") | ~models.Q(phone=""),
                name="patient_sms_needs_phone",
                violation_error_message=_("Text-message reminders need a mobile number."),
            ),
            models.CheckConstraint(
                condition=~models.Q(reminder_channel="email") | ~models.Q(email=""),
                name="patient_email_needs_address",
                violation_error_message=_("Email reminders need an email address."),
            ),
            # A merge records when and by whom, or nothing at all.
            models.CheckConstraint(
                condition=models.Q(
                    merged_into__isnull=True, merged_at__isnull=True, merged_by__isnull=True
                )
                | models.Q(
                    merged_into__isnull=False, merged_at__isnull=False, merged_by__isnull=False
                ),
                name="patient_merge_recorded",
            ),
            models.CheckConstraint(
                condition=~models.Q(merged_into=models.F("pk")),
                name="patient_not_merged_into_itself",
                violation_error_message=_("A record cannot be merged into itself."),
            ),
        ]

    def __str__(self) -> str:
        return self.full_name

    def get_absolute_url(self) -> str:
        return reverse("patients:detail", kwargs={"patient": self.uuid})

    def clean(self) -> None:
        # Names, and the other short texts naming a person, stored composed
        # (NFC): one spelling of a name, however it was typed or pasted.
        for name in PERSON_TEXT_FIELDS:
            setattr(self, name, nfc(getattr(self, name)))

    @property
    def full_name(self) -> str:
        """The name as pages and documents show it (`clinic.names.person_name`)."""
        return person_name(self.first_name, self.last_name)

    @property
    def is_anonymised(self) -> bool:
        """The record was anonymised: who it was, and how to reach them, are gone."""
        return self.anonymised_at is not None


class PatientSearchWord(models.Model):
    """One word of a patient's `search_text` (a folded name, the email, the
    phone's digits, the birth date), for the search box's ordered look-ups:
    the patients whose words start with what was typed, a page at a time, in
    word order, without reading every match (patients.selectors.patient_search).

    Kept by PostgreSQL triggers on `patients_patient` (migration 0014), from
    whatever writes `search_text`: never written by the application. The
    primary key is the index the search walks; `patient_id` is a plain
    number, not a relation, so that merges, deletions and every form of the
    register leave this table to the triggers.
    """

    pk = models.CompositePrimaryKey("word", "patient_id")
    # Byte order ("C"): a prefix is one range of the index, and the order of
    # the results is the same on every server, whatever its locale.
    word = models.TextField(db_collation="C")
    patient_id = models.BigIntegerField()

    class Meta:
        verbose_name = _("patient search word")

    def __str__(self) -> str:
        return self.word


class TreatmentArea(models.TextChoices):
    FACE = "face", _("Face")
    UNDER_EYE = "under_eye", _("Under-eye")
    NECK = "neck", _("Neck")
    DECOLLETAGE = "decolletage", _("Décolletage")
    HANDS = "hands", _("Hands")
    SCALP = "scalp", _("Scalp")
    ABDOMEN = "abdomen", _("Abdomen")
    FLANKS = "flanks", _("Flanks and hips")
    THIGHS = "thighs", _("Thighs")
    BUTTOCKS = "buttocks", _("Buttocks")
    ARMS = "arms", _("Arms")
    LEGS = "legs", _("Legs")


# The yes/no questions of the questionnaire, in the order they are asked,
# grouped as on paper. Every one must be answered: a blank is not a "no".
HISTORY_QUESTIONS: tuple[tuple[Any, tuple[tuple[str, Any], ...]], ...] = (
    (
        _("Conditions"),
        (
            ("diabetes", _("Diabetes")),
            ("cancer_history", _("Cancer, now or in the past")),
            ("autoimmune_disease", _("An autoimmune disease (lupus, rheumatoid arthritis...)")),
            ("cardiac_disease", _("A heart condition")),
            ("bleeding_disorder", _("A bleeding or clotting disorder")),
            ("epilepsy", _("Epilepsy")),
            ("keloid_scarring", _("Keloid or raised scars")),
            ("scleroderma", _("Scleroderma")),
            (
                "chronic_condition_uncontrolled",
                _("Another long-term condition that is poorly controlled or slows healing"),
            ),
        ),
    ),
    (
        _("Medicines"),
        (
            ("anticoagulants", _("Aspirin, warfarin or another blood thinner")),
            ("steroids", _("Steroids (tablets or injections)")),
            (
                "bruising_supplements",
                _("Supplements or remedies that increase bruising (fish oil, ginkgo...)"),
            ),
        ),
    ),
    (
        _("Allergies"),
        (("allergy_local_anaesthetic", _("Allergy to local anaesthetic or numbing cream")),),
    ),
    (
        _("Pregnancy"),
        (
            ("pregnant", _("Pregnant, or could be")),
            ("breastfeeding", _("Breastfeeding")),
        ),
    ),
    (
        _("Today"),
        (
            ("skin_infection", _("A skin infection in or near the area to treat")),
            ("active_acne", _("Active acne")),
            ("cold_sores_history", _("Has had cold sores")),
            ("unwell_today", _("Feels unwell today, even a cold")),
            ("important_event_soon", _("An important event in the next two weeks")),
            ("alcohol_around_session", _("Alcohol the day before or after the session")),
        ),
    ),
)
HISTORY_BOOLEAN_FIELDS = tuple(name for _group, qs in HISTORY_QUESTIONS for name, _label in qs)


class MedicalHistory(models.Model):
    """One completed questionnaire, signed by the practitioner.

    Never edited: a new questionnaire supersedes it, and the database refuses
    UPDATE and DELETE on this table (migration 0004). The patient's current
    history is the most recently signed one.
    """

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="histories")
    signed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", editable=False
    )
    signed_at = models.DateTimeField(editable=False)

    diabetes = models.BooleanField()
    cancer_history = models.BooleanField()
    autoimmune_disease = models.BooleanField()
    cardiac_disease = models.BooleanField()
    bleeding_disorder = models.BooleanField()
    epilepsy = models.BooleanField()
    keloid_scarring = models.BooleanField()
    scleroderma = models.BooleanField()
    chronic_condition_uncontrolled = models.BooleanField()
    chronic_condition_details = models.TextField(
        _("details of long-term conditions"), blank=True, max_length=1000
    )

    anticoagulants = models.BooleanField()
    steroids = models.BooleanField()
    isotretinoin_last_dose = models.DateField(
        _("last dose of isotretinoin (Roaccutane)"),
        null=True,
        blank=True,
        help_text=_("Leave empty if never taken."),
    )
    bruising_supplements = models.BooleanField()
    medicines_other = models.TextField(_("other medicines"), blank=True, max_length=1000)

    allergy_ingredients = models.TextField(
        _("known allergies to ingredients"),
        blank=True,
        max_length=500,
        help_text=_("For example hyaluronic acid, vitamin C, lidocaine. Leave empty if none."),
    )
    allergy_local_anaesthetic = models.BooleanField()
    allergy_other = models.TextField(_("other allergies"), blank=True, max_length=500)

    pregnant = models.BooleanField()
    breastfeeding = models.BooleanField()

    skin_infection = models.BooleanField()
    active_acne = models.BooleanField()
    cold_sores_history = models.BooleanField()
    implant_areas = ArrayField(
        models.CharField(max_length=20, choices=TreatmentArea.choices),
        default=list,
        blank=True,
        verbose_name=_("permanent injectable implants (fillers, threads) in"),
    )
    unwell_today = models.BooleanField()
    important_event_soon = models.BooleanField()
    alcohol_around_session = models.BooleanField()

    notes = models.TextField(_("notes"), blank=True, max_length=2000)
    # The one-time token of the form that signed it (clinic.concurrency): the
    # same form sent twice (a double click) signs one history.
    submission_token = models.UUIDField(null=True, blank=True, unique=True, editable=False)

    class Meta:
        ordering = ["-signed_at", "-id"]
        indexes = [models.Index(fields=["patient", "-signed_at"], name="history_current_idx")]
        verbose_name = _("medical history")
        verbose_name_plural = _("medical histories")

    def __str__(self) -> str:
        return f"Medical history of {self.patient_id} signed {self.signed_at:%Y-%m-%d}"

    @property
    def implant_area_labels(self) -> list[str]:
        labels = dict(TreatmentArea.choices)
        return [str(labels.get(area, area)) for area in self.implant_areas]


class Fitzpatrick(models.TextChoices):
    I = "I", _("I: always burns, never tans")  # noqa: E741
    II = "II", _("II: usually burns, tans minimally")
    III = "III", _("III: sometimes burns, tans gradually")
    IV = "IV", _("IV: rarely burns, tans easily")
    V = "V", _("V: very rarely burns, tans very easily")
    VI = "VI", _("VI: never burns")


class Concern(models.TextChoices):
    REJUVENATION = "rejuvenation", _("Facial rejuvenation")
    LINES = "lines", _("Fine lines and wrinkles")
    LAXITY = "laxity", _("Loose or sagging skin")
    DULL = "dull", _("Dull or dehydrated skin")
    SUN_DAMAGE = "sun_damage", _("Sun damage")
    PIGMENTATION = "pigmentation", _("Pigmentation and dark patches")
    DARK_CIRCLES = "dark_circles", _("Dark circles under the eyes")
    SCARS = "scars", _("Scars")
    CELLULITE = "cellulite", _("Cellulite")
    LOCAL_FAT = "local_fat", _("Small local fat deposits")
    HAIR_LOSS = "hair_loss", _("Hair loss or thinning")


class Consultation(models.Model):
    """What was discussed before a course is planned. Kept as written: a later
    consultation adds to the record rather than changing this one."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="consultations")
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", editable=False
    )
    recorded_at = models.DateTimeField(auto_now_add=True)
    skin_type = models.CharField(
        _("Fitzpatrick skin type"), max_length=3, choices=Fitzpatrick.choices
    )
    concerns = ArrayField(
        models.CharField(max_length=20, choices=Concern.choices), verbose_name=_("concerns")
    )
    areas = ArrayField(
        models.CharField(max_length=20, choices=TreatmentArea.choices), verbose_name=_("areas")
    )
    goals = models.TextField(_("the patient's goals"), max_length=2000)
    expectations_discussed = models.BooleanField(
        _("realistic results, number of sessions and how long results last were discussed")
    )
    risks_discussed = models.BooleanField(
        _("benefits, common side effects and rare risks were explained")
    )
    alternatives_discussed = models.TextField(
        _("alternatives discussed"),
        max_length=1000,
        help_text=_("For example peels, microneedling, no treatment."),
    )
    recommended_protocol = models.CharField(_("recommended protocol"), max_length=200)
    notes = models.TextField(_("notes"), blank=True, max_length=4000)
    # The one-time token of the form that recorded it (clinic.concurrency).
    submission_token = models.UUIDField(null=True, blank=True, unique=True, editable=False)

    class Meta:
        ordering = ["-recorded_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(expectations_discussed=True, risks_discussed=True),
                name="consultation_discussed_before_recording",
                violation_error_message=_("Expectations and risks must be discussed first."),
            ),
        ]

    def __str__(self) -> str:
        return f"Consultation {self.uuid} of {self.patient_id}"

    @property
    def concern_labels(self) -> list[str]:
        labels = dict(Concern.choices)
        return [str(labels.get(c, c)) for c in self.concerns]

    @property
    def area_labels(self) -> list[str]:
        labels = dict(TreatmentArea.choices)
        return [str(labels.get(a, a)) for a in self.areas]


class PhotoKind(models.TextChoices):
    BEFORE = "before", _("Before")
    AFTER = "after", _("After")
    PROGRESS = "progress", _("During the course")


def _photo_path(instance: Photo, filename: str) -> str:
    # A random name: nothing about the patient or the original file in the path.
    return f"photos/{instance.uuid}.jpg"


class Photo(models.Model):
    """A clinical photograph, re-encoded on upload with all metadata removed."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="photos")
    area = models.CharField(_("area"), max_length=20, choices=TreatmentArea.choices)
    kind = models.CharField(_("when"), max_length=10, choices=PhotoKind.choices)
    taken_on = models.DateField(_("taken on"))
    image = models.FileField(upload_to=_photo_path, editable=False)
    width = models.PositiveIntegerField(editable=False)
    height = models.PositiveIntegerField(editable=False)
    sha256 = models.CharField(max_length=64, editable=False)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", editable=False
    )
    uploaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["area", "taken_on", "id"]
        indexes = [
            models.Index(fields=["patient", "area", "taken_on"], name="photo_patient_area_idx")
        ]

    def __str__(self) -> str:
        return f"Photo {self.uuid}"


# --- Changes of a patient's email or mobile number --------------------------------


class ContactField(models.TextChoices):
    EMAIL = "email", _("email address")
    PHONE = "phone", _("mobile number")


class ContactNoticeStatus(models.TextChoices):
    PENDING = "pending", _("to be sent")
    SENDING = "sending", _("being sent")
    SENT = "sent", _("sent")
    FAILED = "failed", _("could not be sent")
    NONE = "none", _("nobody to tell")


class ContactChange(models.Model):
    """A patient's email or mobile number changed: which, from what, by whom,
    and whether the person who changed it may open the patient's clinical
    documents (clinic.roles.CLINICAL_DOCUMENT_ROLES).

    The previous address is told of the change (the notice, sent in the
    background by treatments.services.contact_notices), so a patient whose
    details were changed by someone else hears of it where they still read.
    While an email changed by someone who cannot open clinical documents is
    recent, nothing that opens them (a portal invitation or sign-in link, an
    aftercare link) is sent to it (patients.contact_changes.email_hold).
    """

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="contact_changes")
    field = models.CharField(_("changed"), max_length=10, choices=ContactField.choices)
    # Where the notice goes: the address or number before the change ("" when
    # there was none). Kept for the notice only, never shown on a page.
    previous = models.CharField(_("previous address"), max_length=254, blank=True)
    changed_at = models.DateTimeField(_("changed at"), db_index=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
    )
    by_clinical_role = models.BooleanField(
        _("changed by someone who may open clinical documents"), default=False
    )
    notice_status = models.CharField(
        _("notice"),
        max_length=10,
        choices=ContactNoticeStatus.choices,
        default=ContactNoticeStatus.PENDING,
    )
    notice_attempts = models.PositiveSmallIntegerField(default=0)
    # Pending: not before this (a retry's back-off, the end of quiet hours;
    # empty: at once). Sending: the end of the dispatch tick's lease.
    notice_due_at = models.DateTimeField(null=True, blank=True)
    notice_sent_at = models.DateTimeField(null=True, blank=True)
    notice_error = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-changed_at", "-id"]
        indexes = [
            models.Index(
                fields=["patient", "field", "-changed_at"], name="contact_change_patient_idx"
            ),
            models.Index(
                fields=["changed_at"],
                name="contact_notice_pending_idx",
                condition=models.Q(notice_status="pending"),
            ),
        ]
        constraints = [
            # Nobody to tell without a previous address, and a notice owed with one.
            models.CheckConstraint(
                condition=models.Q(previous="", notice_status="none")
                | (~models.Q(previous="") & ~models.Q(notice_status="none")),
                name="contact_change_notice_has_address",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.field} changed at {self.changed_at:%Y-%m-%d %H:%M}"


class PatientImportStatus(models.TextChoices):
    UPLOADED = "uploaded", _("Columns to match")
    PREVIEW = "preview", _("Ready to check")
    QUEUED = "queued", _("Waiting to start")
    RUNNING = "running", _("Importing")
    DONE = "done", _("Imported")
    FAILED = "failed", _("Stopped, nothing imported")
    CANCELLED = "cancelled", _("Discarded")


# Every move an import may make (patients.imports enforces it): the columns
# are matched and rows fixed or left out until it is confirmed; it then runs
# once, and either imports every row or stops with a reason, to be fixed and
# confirmed again.
PATIENT_IMPORT_MOVES: dict[str, frozenset[str]] = {
    PatientImportStatus.UPLOADED: frozenset({"preview", "cancelled"}),
    PatientImportStatus.PREVIEW: frozenset({"preview", "queued", "cancelled"}),
    PatientImportStatus.QUEUED: frozenset({"running"}),
    PatientImportStatus.RUNNING: frozenset({"running", "done", "failed"}),
    PatientImportStatus.FAILED: frozenset({"preview", "queued", "cancelled"}),
    PatientImportStatus.DONE: frozenset(),
    PatientImportStatus.CANCELLED: frozenset(),
}


class PatientImport(models.Model):
    """A patient list brought from another system (patients.imports): the
    file's rows as text, how its columns match the register's fields, each
    row's problems, and the state of the import, which creates every patient
    in one transaction or none. The rows are cleared once the import is done
    or discarded: the register then holds what counts."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    file_name = models.CharField(max_length=200)
    # SHA-256 of the file's bytes: the same file is never imported twice.
    file_sha256 = models.CharField(max_length=64)
    status = models.CharField(
        max_length=10, choices=PatientImportStatus.choices, default=PatientImportStatus.UPLOADED
    )
    # The header row, and every other row as a list of texts of its width.
    headers = models.JSONField(default=list)
    rows = models.JSONField(default=list, blank=True)
    row_count = models.PositiveIntegerField(default=0)
    # Register field name -> column position (0-based).
    mapping = models.JSONField(default=dict, blank=True)
    # Positions (0-based) of rows left out by the manager.
    dropped = models.JSONField(default=list, blank=True)
    # Row position (as text) -> sentences naming what is wrong with it.
    problems = models.JSONField(default=dict, blank=True)
    imported_count = models.PositiveIntegerField(default=0)
    # Why the last run stopped (status failed), in words for the manager.
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Raised by every change: a page confirming an older state is refused.
    version = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One file, one import: a second upload of it finds the first.
            models.UniqueConstraint(
                fields=["file_sha256"],
                condition=~models.Q(status="cancelled"),
                name="patient_import_file_once",
            ),
            models.CheckConstraint(
                condition=~models.Q(status="done") | models.Q(finished_at__isnull=False),
                name="patient_import_done_has_time",
            ),
        ]

    def __str__(self) -> str:
        return self.file_name

    def get_absolute_url(self) -> str:
        return reverse("patients:import_detail", kwargs={"job": self.uuid})

    @property
    def is_running(self) -> bool:
        return self.status in {PatientImportStatus.QUEUED, PatientImportStatus.RUNNING}

    @property
    def can_change(self) -> bool:
        """Whether columns and rows may still be changed (before it runs, or after it stopped)."""
        return self.status in {
            PatientImportStatus.UPLOADED,
            PatientImportStatus.PREVIEW,
            PatientImportStatus.FAILED,
        }

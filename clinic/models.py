"""Staff accounts, the audit trail and the background heartbeats."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.contrib.auth.models import AbstractUser
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models.functions import Lower, Mod, Upper
from django.db.models.lookups import Exact
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from phonenumber_field.modelfields import PhoneNumberField

from clinic.names import nfc, person_name
from clinic.roles import Role
from clinic.usernames import username_skeleton

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

# Named: the service that makes accounts tells this refusal from a name taken.
USERNAME_SKELETON_CONSTRAINT = "clinic_user_username_skeleton_unique"


class User(AbstractUser):
    """A person who signs in: staff (roles are groups) or, later, a patient."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # The username as compared for look-alikes (clinic.usernames), unique:
    # two names that read alike cannot both be taken, even by two people
    # joining at the same instant (the second insert waits for the first and
    # is refused). Set by `save` for a new account and a renamed one; empty
    # only for an account named before it was kept whose look-alike was
    # there first (migrations 0017, 0018).
    username_skeleton = models.CharField(max_length=600, blank=True, default="", editable=False)

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")
        constraints = [
            models.UniqueConstraint(
                fields=["username_skeleton"],
                condition=~models.Q(username_skeleton=""),
                name=USERNAME_SKELETON_CONSTRAINT,
            ),
        ]

    def __str__(self) -> str:
        return self.get_full_name() or self.username

    def save(self, *args: Any, **kwargs: Any) -> None:
        update_fields = kwargs.get("update_fields")
        # A saved account with no skeleton is a legacy look-alike: left so.
        keeps_one = self._state.adding or bool(self.username_skeleton)
        if keeps_one and (update_fields is None or "username" in update_fields):
            self.username_skeleton = username_skeleton(self.username)
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, "username_skeleton"}
        super().save(*args, **kwargs)

    def clean(self) -> None:
        super().clean()
        # Names stored composed (NFC), like patients' (clinic.names).
        self.first_name, self.last_name = nfc(self.first_name), nfc(self.last_name)

    def get_full_name(self) -> str:
        """The name as pages and documents show it (`clinic.names.person_name`)."""
        return person_name(self.first_name, self.last_name)

    @property
    def roles(self) -> frozenset[Role]:
        """The roles this user holds (cached for the life of the object)."""
        cached: frozenset[Role] | None = getattr(self, "_roles_cache", None)
        if cached is None:
            if not self.is_active:
                cached = frozenset()
            else:
                names = {g.name for g in self.groups.all()}
                cached = frozenset(r for r in Role if r.value in names)
            self._roles_cache = cached
        return cached

    @property
    def is_clinic_staff(self) -> bool:
        return bool(self.roles)

    def has_any_role(self, roles: Iterable[Role]) -> bool:
        return not self.roles.isdisjoint(roles)

    @property
    def is_portal_patient(self) -> bool:
        """A patient signed in to the portal: no staff role, a portal account
        (the reverse relation of the portal's model, found by name)."""
        return self.is_active and not self.is_clinic_staff and hasattr(self, "portal_account")


class AuditAction(models.TextChoices):
    CREATE = "create", _("created")
    UPDATE = "update", _("changed")
    DELETE = "delete", _("deleted")
    VIEW = "view", _("viewed")
    DOWNLOAD = "download", _("downloaded")
    DENIED = "denied", _("was refused access to")
    LOGIN = "login", _("signed in")
    LOGIN_FAILED = "login_failed", _("failed to sign in")
    LOGOUT = "logout", _("signed out")
    TWO_FACTOR_ENROLLED = "2fa_enrolled", _("set up two-factor authentication")
    # A sign-in lock lifted before its time: by a manager, or by a password reset.
    SIGN_IN_UNLOCKED = "unlocked", _("lifted the sign-in lock of")
    # Clinical events named for what they are, so the trail reads plainly.
    PUBLISHED = "published", _("published")
    SIGNED = "signed", _("signed")
    WITHDRAWN = "withdrawn", _("withdrew")
    TEST_GIVEN = "test_given", _("gave the allergy test")
    TEST_READ = "test_read", _("read the allergy test")
    RECALLED = "recalled", _("recalled")
    COMPLETED = "completed", _("completed")
    AMENDED = "amended", _("amended")
    # The staff page (clinic/staff.py): the object is the account ("auth.account",
    # its username) or the invitation ("auth.invitation", the address it went to).
    INVITATION_SENT = "invite_sent", _("sent")
    INVITATION_RESENT = "invite_resent", _("sent again")
    INVITATION_CANCELLED = "invite_cancelled", _("cancelled")
    INVITATION_ACCEPTED = "invite_accepted", _("accepted")
    ROLE_GIVEN = "role_given", _("gave a role to")
    ROLE_TAKEN = "role_taken", _("took a role from")
    DEACTIVATED = "deactivated", _("deactivated")
    REACTIVATED = "reactivated", _("reactivated")
    TWO_FACTOR_RESET = "2fa_reset", _("reset the authenticator of")
    BACKUP_CODES_MADE = "backup_codes", _("made new backup codes for")
    # Before changing a second factor or roles (clinic/stepup.py): the
    # password (and code) asked again; refused ones are "login_failed".
    REAUTHENTICATED = "reauthenticated", _("confirmed their password again for")


class AuditEvent(models.Model):
    """One row per thing someone did or saw. Rows are only ever appended.

    The database refuses UPDATE and DELETE on this table (trigger in migration
    0002), so not even a bug in the application can rewrite history.
    """

    id = models.BigAutoField(primary_key=True)
    at = models.DateTimeField(auto_now_add=True)
    actor = models.ForeignKey(
        "clinic.User",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    # A copy of the username at the time, so the trail survives renames.
    actor_label = models.CharField(max_length=150, blank=True)
    roles = models.CharField(max_length=100, blank=True)
    action = models.CharField(max_length=20, choices=AuditAction.choices)
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    # The patient the object belongs to; no foreign key, so the trail outlives the record.
    patient_ref = models.UUIDField(null=True, blank=True)
    # Names of the fields changed, never their values (they may be health data).
    changed_fields = models.JSONField(default=list, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        # The trail is read newest first in (at, id) order, a page at a time from
        # a cursor (clinic/selectors.py): each filter of the audit log has an
        # index ending in (at, id), so a page is one short index range whatever
        # the trail's size. A BRIN on `at` would be smaller but cannot give rows
        # in order, which every read here needs.
        indexes = [
            models.Index(fields=["at", "id"], name="audit_at_id_idx"),
            models.Index(fields=["action", "at", "id"], name="audit_action_idx"),
            # The user filter ignores case (the label as typed at the time).
            models.Index(Upper("actor_label"), "at", "id", name="audit_actor_label_idx"),
            models.Index(fields=["patient_ref", "-at"], name="audit_patient_idx"),
            models.Index(fields=["actor", "-at"], name="audit_actor_idx"),
            # The dashboard's "previous sign-in": a few rows a staff member,
            # not every page they opened since.
            models.Index(
                fields=["actor", "at"],
                condition=models.Q(action="login"),
                name="audit_actor_login_idx",
            ),
            # One object's history: a stale edit's refusal names who saved
            # it since, and a double submission finds the first one.
            models.Index(fields=["object_type", "object_id", "at", "id"], name="audit_object_idx"),
        ]
        permissions = [
            ("view_patient_access_history", "Can see who opened a patient's record"),
        ]

    def __str__(self) -> str:
        who = self.actor_label or "anonymous"
        return f"{self.at:%Y-%m-%d %H:%M:%S} {who} {self.action} {self.object_type}"

    @property
    def object_label(self) -> str:
        """What the event was about, in words: the model's name, "page", "sign-in"."""
        special = {"route": _("page"), "auth": _("sign-in"), "": "—"}
        if self.object_type in special:
            return str(special[self.object_type])
        # A sign-in lock names what it held: the account's name, the address.
        named = {
            "auth.account": _("account %(name)s"),
            "auth.address": _("connection %(name)s"),
            "auth.invitation": _("invitation to %(name)s"),
        }
        if self.object_type in named:
            return str(named[self.object_type] % {"name": self.object_id})
        try:
            return str(apps.get_model(self.object_type)._meta.verbose_name)
        except (LookupError, ValueError):
            return self.object_type

    @property
    def role_labels(self) -> str:
        names = [n for n in self.roles.split(",") if n]
        return ", ".join(str(Role(n).label) if n in Role.values else n for n in names)


class AuditSeal(models.Model):
    """One link of the hash chain over the audit trail: one row per sealed event.

    `event_hash` is the SHA-256 of the event's content (clinic/auditchain.py);
    `chain_hash` is the SHA-256 of the previous link's `chain_hash` followed by
    `event_hash`. Links are made in `seq` order by one sealer at a time, a
    minute or so after the events commit, so writing the trail never waits on
    the chain. Changing, deleting or slipping in an event then breaks the chain
    at that event, which `manage.py audit_verify` names. Append-only in the
    database, like the events.
    """

    seq = models.BigAutoField(primary_key=True)
    event = models.OneToOneField(
        AuditEvent,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="seal",
    )
    event_hash = models.CharField(max_length=64)
    chain_hash = models.CharField(max_length=64, unique=True)
    sealed_at = models.DateTimeField()

    class Meta:
        ordering = ["seq"]

    def __str__(self) -> str:
        return f"seal {self.seq} of event {self.event_id}"


class Heartbeat(models.Model):
    """Last sign of life of a background process (beat, worker)."""

    name = models.CharField(max_length=20, primary_key=True)
    at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} at {self.at:%Y-%m-%d %H:%M:%S}"


class SignInMailKind(models.TextChoices):
    PASSWORD_RESET = "password_reset", _("Password reset")
    PORTAL_SIGN_IN = "portal_sign_in", _("Portal sign-in link")


class SignInMailRequest(models.Model):
    """A sign-in email asked for on a public page (password reset, portal link),
    owed until a worker has handled it (clinic/sign_in_mail.py).

    The request page writes one row whether or not the address is known, so
    both take the same path and time; the worker looks the address up. The
    row is deleted once handled: the address typed is kept no longer."""

    kind = models.CharField(max_length=20, choices=SignInMailKind.choices)
    email = models.EmailField(max_length=254)
    requested_at = models.DateTimeField(default=timezone.now)
    # When its task was last queued: a row still here two minutes later lost it.
    queued_at = models.DateTimeField(default=timezone.now, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["requested_at"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} email requested at {self.requested_at:%Y-%m-%d %H:%M}"


class StaffInvitation(models.Model):
    """A member of staff invited by a manager, by email, until they join.

    The email carries a signed link (clinic/staff.py: Django's signing, with
    this row's `uuid` and `link_number`). It works once, until `expires_at`:
    joining sets `accepted_at` and makes the account (`user`) with `roles`;
    sending again makes a new link and the older ones stop working;
    cancelling sets `cancelled_at`. One invitation at a time waits for an
    address (any letter case)."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    email = models.EmailField(_("email"), max_length=254)
    first_name = models.CharField(_("first name"), max_length=150)
    last_name = models.CharField(_("last name"), max_length=150, blank=True)
    roles = ArrayField(models.CharField(max_length=20, choices=Role.choices))
    # None: from the server's command line (`manage.py staff_invite`), for the first manager.
    invited_by = models.ForeignKey(
        User,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("invited by"),
    )
    created_at = models.DateTimeField(default=timezone.now)
    # The newest link: when it was made, which one it is, until when it works.
    sent_at = models.DateTimeField(default=timezone.now)
    link_number = models.PositiveIntegerField(default=1)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    user = models.OneToOneField(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="staff_invitation"
    )
    cancelled_at = models.DateTimeField(null=True, blank=True)
    # The invitation form's one-time token: the form sent twice invites once.
    submission_token = models.UUIDField(null=True, blank=True, unique=True, editable=False)

    class Meta:
        verbose_name = _("staff invitation")
        verbose_name_plural = _("staff invitations")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                Lower("email"),
                condition=models.Q(accepted_at__isnull=True, cancelled_at__isnull=True),
                name="staffinvitation_one_waiting_per_email",
            ),
        ]

    def __str__(self) -> str:
        return f"invitation to {self.email}"

    @property
    def waiting(self) -> bool:
        """Neither accepted nor cancelled (it may have expired)."""
        return self.accepted_at is None and self.cancelled_at is None

    def expired_at(self, now: datetime) -> bool:
        """Whether its link no longer works at `now` for lack of time."""
        return self.expires_at <= now

    @property
    def role_labels(self) -> list[str]:
        return [str(Role(r).label) for r in Role if r.value in self.roles]


def _settings_constraints() -> list[models.BaseConstraint]:
    """The check constraints of ClinicSettings, from clinic/clinic_settings_rules.py."""
    from django.db.models import F, Q

    from clinic.clinic_settings_rules import (
        BOUNDS,
        QUIET_END_EARLIEST,
        QUIET_END_LATEST,
        QUIET_START_EARLIEST,
        QUIET_START_LATEST,
        WEEKDAYS,
    )

    checks: list[models.BaseConstraint] = []
    for name in (
        "medical_history_valid_days",
        "allergy_test_valid_months",
        "default_session_minutes",
        "adult_record_retention_years",
        "child_record_retention_until_age",
    ):
        bound = BOUNDS[name]
        checks.append(
            models.CheckConstraint(
                condition=Q(**{f"{name}__gte": bound.minimum, f"{name}__lte": bound.maximum}),
                name=f"clinicsettings_{name}_range",
            )
        )
    checks.append(
        models.CheckConstraint(
            condition=Exact(
                Mod("default_session_minutes", BOUNDS["default_session_minutes"].step), 0
            ),
            name="clinicsettings_session_minutes_step",
        )
    )
    hours = BOUNDS["reminder_hours"]
    in_range = {"gte": hours.minimum, "lte": hours.maximum}
    checks.append(
        models.CheckConstraint(
            condition=Q(**{f"reminder_first_hours__{k}": v for k, v in in_range.items()})
            & (
                Q(reminder_second_hours__isnull=True, reminder_third_hours__isnull=True)
                | Q(
                    reminder_second_hours__isnull=False,
                    reminder_second_hours__gte=hours.minimum,
                    reminder_second_hours__lt=F("reminder_first_hours"),
                    reminder_third_hours__isnull=True,
                )
                | Q(
                    reminder_second_hours__isnull=False,
                    reminder_third_hours__isnull=False,
                    reminder_second_hours__gte=hours.minimum,
                    reminder_second_hours__lt=F("reminder_first_hours"),
                    reminder_third_hours__gte=hours.minimum,
                    reminder_third_hours__lt=F("reminder_second_hours"),
                )
            ),
            name="clinicsettings_reminders_ordered_in_range",
        )
    )
    checks.append(
        models.CheckConstraint(
            condition=~Q(quiet_hours_start=F("quiet_hours_end")),
            name="clinicsettings_quiet_hours_differ",
        )
    )
    for day in WEEKDAYS:
        checks.append(
            models.CheckConstraint(
                condition=Q(**{f"{day}_opens__isnull": True, f"{day}_closes__isnull": True})
                | Q(
                    **{
                        f"{day}_opens__isnull": False,
                        f"{day}_closes__isnull": False,
                        f"{day}_closes__gt": F(f"{day}_opens"),
                    }
                ),
                name=f"clinicsettings_{day}_closes_after_opens",
            )
        )
    checks.append(
        models.CheckConstraint(
            condition=~Q(clinic_name=""), name="clinicsettings_clinic_name_given"
        )
    )
    checks.append(
        models.CheckConstraint(
            condition=Q(
                quiet_hours_start__gte=QUIET_START_EARLIEST,
                quiet_hours_start__lte=QUIET_START_LATEST,
                quiet_hours_end__gte=QUIET_END_EARLIEST,
                quiet_hours_end__lte=QUIET_END_LATEST,
            ),
            name="clinicsettings_quiet_hours_overnight",
        )
    )
    return checks


class ClinicSettings(models.Model):
    """One version of what a clinic changes without a deployment.

    Append-only: each save by a manager inserts a row (who, when, why) and
    the newest row is the clinic's settings (read through
    clinic/clinic_settings.py `current()`); the database refuses UPDATE,
    DELETE and TRUNCATE. The first row is the migration's, from the defaults
    and the environment values of before. Bounds and their reasons:
    clinic/clinic_settings_rules.py.
    """

    created_at = models.DateTimeField(_("changed at"), default=timezone.now)
    # None: the first row, written by the migration.
    changed_by = models.ForeignKey(
        User,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("changed by"),
    )
    reason = models.CharField(_("reason for the change"), max_length=300, blank=True)

    clinic_name = models.CharField(_("clinic name"), max_length=100)
    clinic_address = models.TextField(_("address"), max_length=300, blank=True)
    clinic_phone = PhoneNumberField(_("phone"), blank=True)
    clinic_email = models.EmailField(_("email"), blank=True)

    monday_opens = models.TimeField(_("Monday opens"), null=True, blank=True)
    monday_closes = models.TimeField(_("Monday closes"), null=True, blank=True)
    tuesday_opens = models.TimeField(_("Tuesday opens"), null=True, blank=True)
    tuesday_closes = models.TimeField(_("Tuesday closes"), null=True, blank=True)
    wednesday_opens = models.TimeField(_("Wednesday opens"), null=True, blank=True)
    wednesday_closes = models.TimeField(_("Wednesday closes"), null=True, blank=True)
    thursday_opens = models.TimeField(_("Thursday opens"), null=True, blank=True)
    thursday_closes = models.TimeField(_("Thursday closes"), null=True, blank=True)
    friday_opens = models.TimeField(_("Friday opens"), null=True, blank=True)
    friday_closes = models.TimeField(_("Friday closes"), null=True, blank=True)
    saturday_opens = models.TimeField(_("Saturday opens"), null=True, blank=True)
    saturday_closes = models.TimeField(_("Saturday closes"), null=True, blank=True)
    sunday_opens = models.TimeField(_("Sunday opens"), null=True, blank=True)
    sunday_closes = models.TimeField(_("Sunday closes"), null=True, blank=True)

    # Hours before a session, first (longest) to last; the later ones optional.
    reminder_first_hours = models.PositiveSmallIntegerField(_("first reminder (hours before)"))
    reminder_second_hours = models.PositiveSmallIntegerField(
        _("second reminder (hours before)"), null=True, blank=True
    )
    reminder_third_hours = models.PositiveSmallIntegerField(
        _("third reminder (hours before)"), null=True, blank=True
    )
    quiet_hours_start = models.TimeField(_("quiet hours start"))
    quiet_hours_end = models.TimeField(_("quiet hours end"))

    medical_history_valid_days = models.PositiveSmallIntegerField(
        _("a medical history is valid for (days)")
    )
    allergy_test_valid_months = models.PositiveSmallIntegerField(
        _("a negative allergy reading is valid for (months)")
    )
    default_session_minutes = models.PositiveSmallIntegerField(
        _("default session length (minutes)")
    )

    adult_record_retention_years = models.PositiveSmallIntegerField(
        _("adult records kept after the last treatment (years)")
    )
    child_record_retention_until_age = models.PositiveSmallIntegerField(
        _("records of patients treated as children kept until age")
    )

    class Meta:
        verbose_name = _("clinic settings")
        verbose_name_plural = _("clinic settings")
        ordering = ["-id"]
        constraints = _settings_constraints()

    def __str__(self) -> str:
        return f"clinic settings #{self.pk}"

"""The staff page (clinic/staff.py): invitations to join the staff, one
waiting at a time per address (any letter case), and the audit actions of
the page (invitations, roles given and taken, deactivation, authenticators
reset, backup codes made)."""

import uuid

import django.contrib.postgres.fields
import django.db.models.deletion
import django.db.models.functions.text
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("clinic", "0012_facts_version"),
    ]

    operations = [
        migrations.AlterField(
            model_name="auditevent",
            name="action",
            field=models.CharField(
                choices=[
                    ("create", "created"),
                    ("update", "changed"),
                    ("delete", "deleted"),
                    ("view", "viewed"),
                    ("download", "downloaded"),
                    ("denied", "was refused access to"),
                    ("login", "signed in"),
                    ("login_failed", "failed to sign in"),
                    ("logout", "signed out"),
                    ("2fa_enrolled", "set up two-factor authentication"),
                    ("unlocked", "lifted the sign-in lock of"),
                    ("published", "published"),
                    ("signed", "signed"),
                    ("withdrawn", "withdrew"),
                    ("test_given", "gave the allergy test"),
                    ("test_read", "read the allergy test"),
                    ("recalled", "recalled"),
                    ("completed", "completed"),
                    ("amended", "amended"),
                    ("invite_sent", "sent"),
                    ("invite_resent", "sent again"),
                    ("invite_cancelled", "cancelled"),
                    ("invite_accepted", "accepted"),
                    ("role_given", "gave a role to"),
                    ("role_taken", "took a role from"),
                    ("deactivated", "deactivated"),
                    ("reactivated", "reactivated"),
                    ("2fa_reset", "reset the authenticator of"),
                    ("backup_codes", "made new backup codes for"),
                ],
                max_length=20,
            ),
        ),
        migrations.CreateModel(
            name="StaffInvitation",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("uuid", models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                ("email", models.EmailField(max_length=254, verbose_name="email")),
                ("first_name", models.CharField(max_length=150, verbose_name="first name")),
                (
                    "last_name",
                    models.CharField(blank=True, max_length=150, verbose_name="last name"),
                ),
                (
                    "roles",
                    django.contrib.postgres.fields.ArrayField(
                        base_field=models.CharField(
                            choices=[
                                ("receptionist", "Receptionist"),
                                ("practitioner", "Practitioner"),
                                ("manager", "Manager"),
                            ],
                            max_length=20,
                        ),
                        size=None,
                    ),
                ),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("sent_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("link_number", models.PositiveIntegerField(default=1)),
                ("expires_at", models.DateTimeField()),
                ("accepted_at", models.DateTimeField(blank=True, null=True)),
                ("cancelled_at", models.DateTimeField(blank=True, null=True)),
                (
                    "submission_token",
                    models.UUIDField(blank=True, editable=False, null=True, unique=True),
                ),
                (
                    "invited_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="invited by",
                    ),
                ),
                (
                    "user",
                    models.OneToOneField(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="staff_invitation",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "verbose_name": "staff invitation",
                "verbose_name_plural": "staff invitations",
                "ordering": ["-created_at", "-id"],
                "constraints": [
                    models.UniqueConstraint(
                        django.db.models.functions.text.Lower("email"),
                        condition=models.Q(
                            ("accepted_at__isnull", True), ("cancelled_at__isnull", True)
                        ),
                        name="staffinvitation_one_waiting_per_email",
                    )
                ],
            },
        ),
    ]

"""Each account's username skeleton (clinic.usernames), unique: two names
that read alike cannot both be taken, even at the same instant. Existing
accounts get theirs here, oldest first; an account whose look-alike was made
before it (possible before letters were restricted) keeps none, so the
migration never fails on the clinic's data; 0018 then makes them unique
(apart: an index cannot be made in the transaction that updated the rows).
And the audit action of confirming one's password again (clinic/stepup.py)."""

from typing import Any

from django.db import migrations, models

from clinic.usernames import username_skeleton


def skeletons_fill(apps: Any, schema_editor: Any) -> None:
    User = apps.get_model("clinic", "User")
    taken: set[str] = set()
    for pk, username in User.objects.order_by("pk").values_list("pk", "username").iterator():
        skeleton = username_skeleton(username)
        if skeleton in taken:
            continue
        taken.add(skeleton)
        User.objects.filter(pk=pk).update(username_skeleton=skeleton)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("clinic", "0016_clinic_settings_quiet_hours_overnight"),
    ]

    operations = [
        migrations.AddField(
            model_name="user",
            name="username_skeleton",
            field=models.CharField(blank=True, default="", editable=False, max_length=600),
        ),
        migrations.RunPython(skeletons_fill, migrations.RunPython.noop, elidable=False),
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
                    ("reauthenticated", "confirmed their password again for"),
                ],
                max_length=20,
            ),
        ),
    ]

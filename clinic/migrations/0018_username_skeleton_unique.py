"""Usernames' skeletons unique (filled by 0017): two names that read alike
cannot both be taken, even by two people joining at the same instant."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("clinic", "0017_username_skeleton"),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="user",
            constraint=models.UniqueConstraint(
                condition=models.Q(("username_skeleton", ""), _negated=True),
                fields=("username_skeleton",),
                name="clinic_user_username_skeleton_unique",
            ),
        ),
    ]

"""The password hasher of the test settings."""

from __future__ import annotations

from django.contrib.auth.hashers import Argon2PasswordHasher


class QuickArgon2PasswordHasher(Argon2PasswordHasher):
    """Argon2id, the clinic's hasher, through the same code and the same stored
    format, at the least cost argon2 accepts: the production cost (100 MiB,
    two passes) takes a fifth of a second a hash on a 2-core machine, and the
    suite makes thousands of users. tests/test_auth.py checks the clinic's own
    hashers at their own cost."""

    time_cost = 1
    memory_cost = 8  # KiB: argon2's least, 8 x parallelism
    parallelism = 1

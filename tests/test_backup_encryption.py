"""Backups are encrypted with age to public keys; only a private key kept off
the server opens them (docs/user-guide.md, "Backups").

A seeded clinic's archive shows neither the dump's magic nor a patient's name,
the standard `age` command opens it with any of its keys, and a restore with a
key it was not encrypted to, with no key, or of a changed or cut archive is
refused before anything is touched. The full round trip with the right key is
tests/test_backup.py's first test. No keys in production: no backup at all.
"""

from __future__ import annotations

import io
import re
import subprocess
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import override_settings
from pyrage import x25519

from clinic.backup import (
    ArchiveDamagedError,
    BackupError,
    _age_encrypting,
    age_identities_read,
    archive_name,
    archives,
    archives_prune,
    backup_recipients,
    restore,
)
from clinic.dbroles import application_user
from patients.models import Patient
from tests.test_backup import (  # noqa: F401 - fixtures: media_root, seeded_clinic...
    LONDON,
    NOW,
    empty_database,
    media_root,
    owner_settings,
    seeded_clinic,
    table_rows,
)
from tests.test_compose_roles import a_dot_env, compose, container_env, interpolate


def key_file(folder: Path, identity: x25519.Identity, name: str) -> Path:
    """An identity file as `age-keygen` writes it."""
    path = folder / name
    path.write_text(
        f"# created: 2026-03-12T16:30:00Z\n# public key: {identity.to_public()}\n{identity}\n"
    )
    path.chmod(0o600)
    return path


@pytest.mark.django_db(transaction=True)
def test_an_archive_reads_as_noise_and_opens_with_its_private_keys_only(
    seeded_clinic: Path,  # noqa: F811 - the fixture
    empty_database: str,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    patient = Patient.objects.order_by("pk").first()
    assert patient is not None
    name = f"{patient.first_name} {patient.last_name}"
    # A letter naming the patient in plain text: the archive's plaintext holds it.
    (seeded_clinic / "letters" / "2026" / "referral.txt").write_text(f"Re: {name}\n")
    clinic_key, spare_key, stranger = (x25519.Identity.generate() for _ in range(3))
    out = io.StringIO()
    with (
        time_machine.travel(NOW, tick=False),
        override_settings(
            BACKUP_AGE_RECIPIENTS=[str(clinic_key.to_public()), str(spare_key.to_public())],
            BACKUP_ALLOW_PLAINTEXT=False,
        ),
    ):
        call_command("backup", stdout=out)
    archive = Path(settings.BACKUP_DIR) / archive_name(NOW, encrypted=True)
    assert f"Backup written: {archive}" in out.getvalue()
    assert [path.name for path in archive.parent.iterdir() if not path.name.startswith(".")] == [
        archive.name
    ], "no plain copy beside it"

    sealed = archive.read_bytes()
    assert sealed.startswith(b"age-encryption.org/v1\n")
    assert b"PGDMP" not in sealed
    names = [f"{p.first_name} {p.last_name}".encode() for p in Patient.objects.all()]
    assert len(names) > 5
    assert not [n for n in names if n in sealed]
    assert b"manifest.json" not in sealed

    # The standard age command opens it, with either key; inside, the plain tar.
    for number, key in enumerate((clinic_key, spare_key)):
        plain = tmp_path / f"plain-{number}.tar"
        subprocess.run(
            [
                "age",
                "--decrypt",
                "--identity",
                key_file(tmp_path, key, "key.txt"),
                "--output",
                plain,
                archive,
            ],
            check=True,
            capture_output=True,
        )
        with tarfile.open(plain) as tar:
            dump = tar.extractfile("database.dump").read()  # type: ignore[union-attr]
            letter = tar.extractfile("media/letters/2026/referral.txt").read()  # type: ignore[union-attr]
        assert dump.startswith(b"PGDMP")
        assert name.encode() in letter

    restored_media = tmp_path / "restored-media"

    def restore_with(*keys: x25519.Identity, source: Path = archive) -> None:
        restore(
            archive=source,
            database=owner_settings(empty_database),
            media_root=restored_media,
            application_role=application_user(),
            audit_head_file=None,
            identities=keys,
        )

    def nothing_touched() -> None:
        assert table_rows(empty_database) == {}
        assert not restored_media.exists() or not any(restored_media.iterdir())

    # A key it was not encrypted to: said so, naming that key's public half,
    # before the database or the media folder is looked at.
    with pytest.raises(BackupError, match=r"The private key given does not open") as refused:
        restore_with(stranger)
    assert str(stranger.to_public()) in str(refused.value)
    assert str(stranger) not in str(refused.value)
    assert not restored_media.exists()
    nothing_touched()
    wrong = key_file(tmp_path, stranger, "wrong.txt")
    with pytest.raises(CommandError, match="does not open"):
        call_command("restore", str(archive), "--check", "--identity", str(wrong))
    with pytest.raises(CommandError, match=re.escape("is encrypted (age): give its private key")):
        call_command("restore", str(archive), "--check")
    nothing_touched()

    # Changed or cut short: age's authentication refuses it, before anything is touched.
    changed = tmp_path / "changed.tar.age"
    flipped = bytearray(sealed)
    flipped[len(flipped) // 2] ^= 0x01
    changed.write_bytes(bytes(flipped))
    cut = tmp_path / "cut.tar.age"
    cut.write_bytes(sealed[: len(sealed) - 1000])
    for damaged in (changed, cut):
        with pytest.raises(ArchiveDamagedError, match="does not decrypt whole"):
            restore_with(clinic_key, source=damaged)
        nothing_touched()

    # The right key: intact (the restore itself: tests/test_backup.py).
    intact = io.StringIO()
    right = key_file(tmp_path, spare_key, "right.txt")
    call_command("restore", str(archive), "--check", "--identity", str(right), stdout=intact)
    assert "is intact" in intact.getvalue()


def test_with_no_keys_in_production_no_backup_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backups = tmp_path / "backups"

    def no_waiting(seconds: float) -> None:
        raise AssertionError("the schedule started")

    monkeypatch.setattr("clinic.management.commands.backup.time.sleep", no_waiting)
    with override_settings(
        DEBUG=False,
        BACKUP_DIR=str(backups),
        BACKUP_AGE_RECIPIENTS=[],
        BACKUP_ALLOW_PLAINTEXT=False,
    ):
        for args in ((), ("--daily-at", "02:30")):
            with pytest.raises(CommandError, match="No backup written: BACKUP_AGE_RECIPIENTS"):
                call_command("backup", *args)
        assert not backups.exists()

        secret = x25519.Identity.generate()
        with override_settings(BACKUP_AGE_RECIPIENTS=[str(secret)]):
            with pytest.raises(CommandError, match="holds a private key") as refused:
                call_command("backup")
            assert str(secret) not in str(refused.value)
        with (
            override_settings(BACKUP_AGE_RECIPIENTS=["age1notakey"]),
            pytest.raises(CommandError, match="is not an age public key"),
        ):
            call_command("backup")
        assert not backups.exists()

        # Plain archives only where asked for (a demo, the tests) or in development.
        with override_settings(BACKUP_ALLOW_PLAINTEXT=True):
            assert backup_recipients() == []
        with override_settings(DEBUG=True):
            assert backup_recipients() == []
        keys = [x25519.Identity.generate().to_public() for _ in range(2)]
        with override_settings(BACKUP_AGE_RECIPIENTS=[f" {keys[0]}", str(keys[1]), ""]):
            assert [str(key) for key in backup_recipients()] == [str(k) for k in keys]


def test_an_identity_file_as_age_keygen_writes_it_and_what_is_not_one(tmp_path: Path) -> None:
    made = tmp_path / "made.txt"
    subprocess.run(["age-keygen", "-o", made], check=True, capture_output=True)
    public = next(
        line.split(": ")[1] for line in made.read_text().splitlines() if "public key" in line
    )
    assert [str(key.to_public()) for key in age_identities_read(str(made))] == [public]
    secret = made.read_text()
    assert [str(k.to_public()) for k in age_identities_read("-", io.StringIO(secret))] == [public]

    cases = {
        "public.txt": (f"{public}\n", "line 1: a public key"),
        "empty.txt": ("# nothing here\n\n", "holds no age private key"),
        "other.txt": ("-----BEGIN OPENSSH PRIVATE KEY-----\n", "line 1: not an age private key"),
        "broken.txt": ("AGE-SECRET-KEY-1NOTAKEY\n", "line 1: not a valid age private key"),
        "sealed.txt": ("age-encryption.org/v1\n-> scrypt x 18\n", "is itself encrypted"),
    }
    for file_name, (text, message) in cases.items():
        (tmp_path / file_name).write_text(text)
        with pytest.raises(BackupError, match=re.escape(message)) as refused:
            age_identities_read(str(tmp_path / file_name))
        assert "AGE-SECRET-KEY-1NOTAKEY" not in str(refused.value), "a key line is never shown"
    (tmp_path / "binary.bin").write_bytes(b"\xff\xfe\x00" * 10)
    with pytest.raises(BackupError, match="is not an age identity file"):
        age_identities_read(str(tmp_path / "binary.bin"))
    with pytest.raises(BackupError, match="Could not read the identity file"):
        age_identities_read(str(tmp_path / "missing.txt"))


def test_a_write_that_fails_at_the_end_of_the_encryption_fails_the_backup() -> None:
    """pyrage's last write (its buffer, flushed as it is dropped) reports no
    error of its own: a full disk there must not leave a cut archive."""
    recipient = x25519.Identity.generate().to_public()
    with (
        open("/dev/full", "wb", buffering=0) as full,
        pytest.raises(BackupError, match=r"Encrypting the archive failed: .*No space left"),
        _age_encrypting(full, [recipient]) as sink,
    ):
        sink.write(b"a small archive")


def test_retention_counts_encrypted_and_plain_archives_alike(tmp_path: Path) -> None:
    for days_ago in range(40):
        at = datetime(2026, 3, 12, 2, 30, tzinfo=UTC) - timedelta(days=days_ago)
        # Plain archives from before the keys were set, encrypted ones since.
        (tmp_path / archive_name(at, encrypted=days_ago < 20)).touch()
    (tmp_path / "clinic-backup-20260312T023000Z.tar.age.partial").touch()
    found = archives(tmp_path)
    assert len(found) == 40
    removed = archives_prune(tmp_path, now=NOW, zone=LONDON, keep_daily=14, keep_weekly=8)
    assert len(removed) == 40 - len(archives(tmp_path))
    assert {p.name for p in removed} >= {archive_name(datetime(2026, 2, 14, 2, 30, tzinfo=UTC))}
    kept = {a.path.name for a in archives(tmp_path)}
    assert archive_name(datetime(2026, 3, 12, 2, 30, tzinfo=UTC), encrypted=True) in kept
    assert archive_name(datetime(2026, 2, 15, 2, 30, tzinfo=UTC)) in kept, "a plain Sunday"
    assert (tmp_path / "clinic-backup-20260312T023000Z.tar.age.partial").exists()
    with override_settings(BACKUP_DIR=str(tmp_path)), time_machine.travel(NOW, tick=False):
        out = io.StringIO()
        call_command("backup", "--newest-within", "24", stdout=out)
        assert "clinic-backup-20260312T023000Z.tar.age" in out.getvalue()


def test_compose_backs_up_encrypted_only_and_restores_with_a_mounted_key_file() -> None:
    dot_env = a_dot_env()
    services = compose()["services"]
    backup = container_env(services["backup"], dot_env)
    assert backup["BACKUP_AGE_RECIPIENTS"] == dot_env["BACKUP_AGE_RECIPIENTS"]
    assert backup["BACKUP_ALLOW_PLAINTEXT"] == "False", ".env cannot turn encryption off"
    assert backup["DEBUG"] == "False"

    restore_service = services["restore"]
    env = container_env(restore_service, dot_env)
    assert not [name for name in env if "IDENTITY" in name or "PRIVATE" in name]
    key_mount = next(v for v in restore_service["volumes"] if isinstance(v, dict))
    assert key_mount["type"] == "bind"
    assert key_mount["target"] == "/run/secrets/backup-identity"
    assert key_mount["read_only"] is True
    assert key_mount["bind"]["create_host_path"] is False
    assert interpolate(key_mount["source"], {}) == "./backup-identity.txt"
    assert interpolate(key_mount["source"], {"BACKUP_IDENTITY_FILE": "/k.txt"}) == "/k.txt"
    # The identity file is nowhere near the backup service.
    assert "backup-identity" not in str(services["backup"])

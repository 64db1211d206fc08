"""Backup and restore: the database and the media folder, all of it, or nothing.

A seeded clinic with a photo, signatures and a PDF is backed up with
`manage.py backup` (pg_dump of the real PostgreSQL, as the application role,
encrypted to an age key), restored into a second, empty database and an empty
media folder with the private key, and every row of every table, every
sequence and every file is compared. The tests that take an archive apart
write plain ones (BACKUP_ALLOW_PLAINTEXT); tests/test_backup_encryption.py
covers the encryption itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import tarfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
import time_machine
from django.apps import apps
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, connections
from django.test import override_settings
from PIL import Image
from psycopg import sql
from psycopg.conninfo import make_conninfo
from pyrage import x25519

from clinic.auditchain import audit_seal
from clinic.backup import (
    MANIFEST_MEMBER,
    MANIFEST_SUM_MEMBER,
    ArchiveDamagedError,
    BackupError,
    _database_load,
    archive_name,
    archive_verify,
    archives,
    archives_prune,
    archives_to_keep,
    connection_params,
    next_run,
    restore,
)
from clinic.dbroles import application_user, owner_credentials
from clinic.models import AuditSeal, User
from consent.models import SignedConsent
from consent.services import consent_pdf_render_now
from patients.images import clean_photo
from patients.models import Patient
from patients.services import photo_add
from tests.factories import PatientFactory
from tests.test_compose_roles import a_dot_env, compose, container_env, interpolate

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 3, 12, 16, 30, tzinfo=LONDON)


# --- Helpers -------------------------------------------------------------------------


def owner_settings(name: str | None = None) -> dict[str, Any]:
    """The test database's settings as the owner role, or another database's."""
    database = dict(connection.settings_dict)
    database.update(owner_credentials() or {})
    if name is not None:
        database["NAME"] = name
    return database


def owner_connect(name: str | None = None) -> psycopg.Connection[Any]:
    params = connection_params(owner_settings(name))
    return psycopg.connect(make_conninfo("", **params), autocommit=True)


@contextlib.contextmanager
def on_database(name: str) -> Iterator[None]:
    """The clinic's own connection (the application role) on database `name`."""
    default = connections["default"]
    saved = default.settings_dict["NAME"]
    default.close()
    default.settings_dict["NAME"] = name
    try:
        yield
    finally:
        default.close()
        default.settings_dict["NAME"] = saved


def table_rows(name: str | None = None) -> dict[str, list[str]]:
    """Every row of every table of the schema, as JSON text, sorted: its content.
    Returns once its own session has left the server, so that a restore run
    next does not count it as the clinic still connected."""
    with owner_connect(name) as conn:
        (pid,) = conn.execute("SELECT pg_backend_pid()").fetchone() or (None,)
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            ).fetchall()
        ]
        rows = {
            table: sorted(
                row[0]
                for row in conn.execute(
                    sql.SQL("SELECT row_to_json(t)::text FROM {} t").format(sql.Identifier(table))
                ).fetchall()
            )
            for table in tables
        }
    _session_gone(pid)
    return rows


def _session_gone(pid: int | None) -> None:
    """Wait until the server process of a closed session has exited: it
    leaves a moment after its client, longer on a busy machine."""
    with owner_connect("postgres") as conn:
        for _try in range(200):
            row = conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
            if row is None:
                return
            time.sleep(0.05)
    pytest.fail(f"The session of server process {pid} was closed and is still connected")


def sequence_values(name: str | None = None) -> dict[str, Any]:
    with owner_connect(name) as conn:
        rows = conn.execute(
            "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'public'"
        ).fetchall()
    return dict(rows)


def file_sums(root: Path) -> dict[str, str]:
    if not root.exists():
        return {}
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 90)).save(buffer, "JPEG")
    return buffer.getvalue()


def archive_rewrite(source: Path, target: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """A copy of `source` whose manifest `change` edits, with a matching
    checksum: an archive consistent with itself that lies about its content."""
    with tarfile.open(source) as tar, tarfile.open(target, "w") as out:
        manifest = json.loads(tar.extractfile(MANIFEST_MEMBER).read())  # type: ignore[union-attr]
        change(manifest)
        body = json.dumps(manifest).encode()
        for member in tar.getmembers():
            if member.name == MANIFEST_MEMBER:
                member.size = len(body)
                out.addfile(member, io.BytesIO(body))
            elif member.name == MANIFEST_SUM_MEMBER:
                digest = (hashlib.sha256(body).hexdigest() + "\n").encode()
                member.size = len(digest)
                out.addfile(member, io.BytesIO(digest))
            else:
                out.addfile(member, tar.extractfile(member))


def byte_flipped(source: Path, target: Path, member_name: str) -> None:
    """A copy of `source` with one byte changed in the middle of a member."""
    with tarfile.open(source) as tar:
        member = tar.getmember(member_name)
    data = bytearray(source.read_bytes())
    data[member.offset_data + member.size // 2] ^= 0xFF
    target.write_bytes(bytes(data))


# --- Fixtures ------------------------------------------------------------------------


@pytest.fixture
def no_stray_sessions(transactional_db: None) -> None:
    """End connections that earlier tests' threads left open to the test
    database (a live server's, a race's): a restore counts every other
    session as the clinic still running, and these tests hold their own."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (own,) = cursor.fetchone()
    # The owner does not see the backend type of the application role's
    # sessions (NULL): count those as clients, as the restore does.
    others = (
        "FROM pg_stat_activity WHERE datname = %s AND pid <> %s"
        " AND coalesce(backend_type, 'client backend') = 'client backend'"
    )
    name = connection.settings_dict["NAME"]
    with owner_connect("postgres") as conn:
        conn.execute(f"SELECT pg_terminate_backend(pid) {others}", [name, own])
        # A terminated backend leaves a moment later: wait until it has.
        for _try in range(100):
            row = conn.execute(f"SELECT count(*) {others}", [name, own]).fetchone()
            if row is None or row[0] == 0:
                return
            time.sleep(0.05)
        left = conn.execute(f"SELECT usename, application_name {others}", [name, own]).fetchall()
    pytest.fail(f"Sessions still connected to {name} after being ended: {left}")


@pytest.fixture
def media_root(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "media"
    storages = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root)},
        },
    }
    with override_settings(
        STORAGES=storages,
        MEDIA_ROOT=str(root),
        BACKUP_DIR=str(tmp_path / "backups"),
        # Plain archives, unless a test gives keys: these tests take them apart.
        BACKUP_AGE_RECIPIENTS=[],
        BACKUP_ALLOW_PLAINTEXT=True,
    ):
        yield root


@pytest.fixture
def seeded_clinic(media_root: Path) -> Path:
    """The demo clinic, plus a photo and a signed consent's PDF, its trail sealed."""
    with time_machine.travel(NOW, tick=False):
        call_command("seed_demo", "--force", stdout=io.StringIO())
        practitioner = User.objects.get(username="practitioner")
        content = jpeg()
        photo_add(
            patient=Patient.objects.order_by("pk").first(),  # type: ignore[arg-type]
            uploaded_by=practitioner,
            area="face",
            kind="before",
            taken_on=NOW.date(),
            image=clean_photo(io.BytesIO(content), size=len(content)),
        )
        signed = SignedConsent.objects.order_by("pk").first()
        assert signed is not None
        consent_pdf_render_now(signed_consent_id=signed.pk)
        while audit_seal():
            pass
    # A file no row points at is kept all the same.
    (media_root / "letters" / "2026").mkdir(parents=True)
    (media_root / "letters" / "2026" / "note.txt").write_text("kept as it is")
    files = file_sums(media_root)
    for folder in ("photos/", "consent/pdf/", "letters/"):
        assert any(name.startswith(folder) for name in files), folder
    assert any(name.endswith(".png") for name in files), "a signature"
    return media_root


@pytest.fixture
def archive(seeded_clinic: Path) -> Path:
    with time_machine.travel(NOW, tick=False):
        call_command("backup", stdout=io.StringIO())
    return Path(settings.BACKUP_DIR) / archive_name(NOW)


@pytest.fixture
def empty_database() -> Iterator[str]:
    """A second database, new and empty, made by the owner role."""
    name = f"{connection.settings_dict['NAME']}_restored"[:63]
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with owner_connect("postgres") as conn:
        conn.execute(drop)
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield name
    with owner_connect("postgres") as conn:
        conn.execute(drop)


# --- Backup and restore ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_restore_into_an_empty_database_and_media_folder_loses_nothing(
    seeded_clinic: Path, empty_database: str, tmp_path: Path
) -> None:
    backups = Path(settings.BACKUP_DIR)
    backups.mkdir()
    too_old = backups / archive_name(NOW - timedelta(days=200), encrypted=True)
    too_old.write_bytes(b"")
    key = x25519.Identity.generate()
    out = io.StringIO()
    with (
        time_machine.travel(NOW, tick=False),
        override_settings(BACKUP_AGE_RECIPIENTS=[str(key.to_public())]),
    ):
        call_command("backup", stdout=out)
    archive = backups / archive_name(NOW, encrypted=True)
    assert archive.name.endswith(".tar.age")
    assert f"Backup written: {archive}" in out.getvalue()
    assert f"encrypted to {key.to_public()}" in out.getvalue()
    assert not too_old.exists(), "pruned by the same run"
    # Taken as the application role: the backup needs no owner's password.
    assert connection.settings_dict["USER"] == application_user()
    assert connection.settings_dict["USER"] != (owner_credentials() or {}).get("USER")

    source_rows = table_rows()
    source_sequences = sequence_values()
    source_files = file_sums(seeded_clinic)
    restored_media = tmp_path / "restored-media"
    head_file = tmp_path / "audit" / "chain-head"
    with time_machine.travel(NOW, tick=False):
        result = restore(
            archive=archive,
            database=owner_settings(empty_database),
            media_root=restored_media,
            application_role=application_user(),
            audit_head_file=str(head_file),
            identities=[key],
        )

    restored_rows = table_rows(empty_database)
    every_model = {model._meta.db_table for model in apps.get_models(include_auto_created=True)}
    assert every_model | {"django_migrations"} <= set(source_rows)
    assert sum(len(rows) for rows in source_rows.values()) > 100
    assert restored_rows.keys() == source_rows.keys()
    for table, rows in source_rows.items():
        assert restored_rows[table] == rows, table
    assert sequence_values(empty_database) == source_sequences
    assert file_sums(restored_media) == source_files
    assert result.media_files == len(source_files)
    assert sorted(p.name for p in restored_media.iterdir()) == sorted(
        p.name for p in seeded_clinic.iterdir()
    ), "no staging folder left behind"

    # The chain head outside the database is the archive's, and the trail verifies.
    last = AuditSeal.objects.order_by("-seq").first()
    assert last is not None
    assert head_file.read_text().split() == [str(last.seq), last.chain_hash]
    with (
        on_database(empty_database),
        override_settings(AUDIT_CHAIN_HEAD_FILE=str(head_file)),
        time_machine.travel(NOW + timedelta(minutes=5), tick=False),
    ):
        verified = io.StringIO()
        call_command("audit_verify", stdout=verified)
        assert f"{last.seq} links" in verified.getvalue()
        assert "intact" in verified.getvalue()
        # The application role has its rights back, and no more.
        PatientFactory(first_name="After the restore")
        assert Patient.objects.filter(first_name="After the restore").count() == 1
        with pytest.raises(DatabaseError, match="permission denied"), connection.cursor() as c:
            c.execute("DELETE FROM clinic_auditevent")


@pytest.mark.django_db(transaction=True)
def test_a_damaged_archive_is_refused_and_nothing_is_restored(
    archive: Path, empty_database: str, tmp_path: Path
) -> None:
    with tarfile.open(archive) as tar:
        photo = next(name for name in tar.getnames() if name.startswith("media/photos/"))
    intact = io.StringIO()
    call_command("restore", str(archive), "--check", stdout=intact)
    assert "is intact" in intact.getvalue()

    restored_media = tmp_path / "restored-media"
    for member in (photo, "database.dump"):
        damaged = tmp_path / "damaged.tar"
        byte_flipped(archive, damaged, member)
        expected = re.escape(f"{member} does not match its checksum")
        with pytest.raises(CommandError, match=expected):
            call_command("restore", str(damaged), "--check")
        with pytest.raises(ArchiveDamagedError, match=expected):
            restore(
                archive=damaged,
                database=owner_settings(empty_database),
                media_root=restored_media,
                application_role=application_user(),
                audit_head_file=None,
            )
        assert table_rows(empty_database) == {}
        assert file_sums(restored_media) == {}

    cut = tmp_path / "cut.tar"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(CommandError, match="damaged or not a clinic backup"):
        call_command("restore", str(cut), "--check")
    with pytest.raises(CommandError, match="No archive at"):
        call_command("restore", str(tmp_path / "missing.tar"))


@pytest.mark.django_db(transaction=True)
def test_a_restore_that_fails_midway_leaves_the_database_and_media_as_they_were(
    archive: Path, empty_database: str, tmp_path: Path
) -> None:
    """The dump loads in one transaction, checked at its end against the
    manifest's row counts: here the manifest promises a row the dump lacks."""

    def one_row_more(manifest: dict[str, Any]) -> None:
        manifest["database"]["tables"]["patients_patient"] += 1

    lying = tmp_path / "lying.tar"
    archive_rewrite(archive, lying, one_row_more)
    restored_media = tmp_path / "restored-media"
    with pytest.raises(
        BackupError, match=r"(?s)table patients_patient has \d+ rows.*Nothing was changed"
    ):
        restore(
            archive=lying,
            database=owner_settings(empty_database),
            media_root=restored_media,
            application_role=application_user(),
            audit_head_file=None,
        )
    assert table_rows(empty_database) == {}
    assert file_sums(restored_media) == {}


@pytest.mark.django_db(transaction=True)
def test_a_restore_over_a_database_or_media_that_is_not_empty_needs_force(
    archive: Path,
    seeded_clinic: Path,
    empty_database: str,
    no_stray_sessions: None,
) -> None:
    before = table_rows()
    files = file_sums(seeded_clinic)
    with pytest.raises(CommandError, match=r"is not empty: it has \d+ tables.*--force"):
        call_command("restore", str(archive))
    assert table_rows() == before
    with pytest.raises(BackupError, match=r"media folder .* is not empty.*--force"):
        restore(
            archive=archive,
            database=owner_settings(empty_database),
            media_root=seeded_clinic,
            application_role=application_user(),
            audit_head_file=None,
        )
    assert table_rows(empty_database) == {}
    assert file_sums(seeded_clinic) == files

    # What came after the backup goes; the archive's content comes back exactly.
    PatientFactory(first_name="Afterwards")
    (seeded_clinic / "photos" / "afterwards.jpg").write_bytes(jpeg())
    out = io.StringIO()
    call_command("restore", str(archive), "--force", stdout=out)
    assert "Restored" in out.getvalue()
    assert table_rows() == before
    assert file_sums(seeded_clinic) == files
    # Read through the clinic's own connection: the application role's rights are back.
    assert not Patient.objects.filter(first_name="Afterwards").exists()
    assert Patient.objects.count() == len(before["patients_patient"])


@contextlib.contextmanager
def a_lock_held(
    settings_dict: dict[str, Any], application_name: str = "clinic-web"
) -> Iterator[psycopg.Connection[Any]]:
    """A session of the running clinic, its transaction left open on a read of
    patients_patient. Should a restore wait for it anyway, it is ended after
    30 seconds, and the restore then goes through: the test fails, not hangs."""
    params = connection_params(settings_dict)
    with psycopg.connect(
        make_conninfo("", **params), application_name=application_name, autocommit=True
    ) as holder:
        holder.execute("SET idle_in_transaction_session_timeout = '30s'")
        holder.execute("BEGIN")
        holder.execute("SELECT 1 FROM patients_patient LIMIT 1")
        yield holder


@pytest.mark.django_db(transaction=True)
def test_a_restore_while_the_clinic_is_connected_is_refused_and_changes_nothing(
    archive: Path,
    seeded_clinic: Path,
    no_stray_sessions: None,
) -> None:
    before = table_rows()
    files = file_sums(seeded_clinic)
    app_role = application_user()
    with a_lock_held(connection.settings_dict) as holder:
        with pytest.raises(CommandError) as refused:
            call_command("restore", str(archive), "--force", stdout=io.StringIO())
        message = str(refused.value)
        assert "1 other session connected to the database" in message
        assert f"{app_role} (clinic-web, " in message
        assert "docker compose stop web worker beat" in message
        assert "--force-disconnect" in message
        assert "SELECT" not in message, "never the session's query"
        # The clinic's session goes on as it was.
        assert holder.execute("SELECT count(*) FROM patients_patient").fetchone() == (
            len(before["patients_patient"]),
        )
        holder.execute("COMMIT")
    assert table_rows() == before
    assert file_sums(seeded_clinic) == files


@pytest.mark.django_db(transaction=True)
def test_the_restore_counts_other_sessions_on_the_connection_it_looked_with(
    archive: Path,
    seeded_clinic: Path,
    no_stray_sessions: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server process of a connection just closed stays listed for a
    moment: a restore that closed one of its own before counting the other
    sessions would take it for the clinic still running, and refuse."""
    from clinic import backup

    opened: list[psycopg.Connection[Any]] = []
    closed_before_counting: list[psycopg.Connection[Any]] = []
    real_connect, real_other_sessions = backup._connect, backup.other_sessions

    def connect(params: dict[str, str], **options: Any) -> psycopg.Connection[Any]:
        conn = real_connect(params, **options)
        opened.append(conn)
        return conn

    def other_sessions(conn: psycopg.Connection[Any]) -> list[Any]:
        closed_before_counting.extend(c for c in opened if c.closed)
        return real_other_sessions(conn)

    monkeypatch.setattr(backup, "_connect", connect)
    monkeypatch.setattr(backup, "other_sessions", other_sessions)
    call_command("restore", str(archive), "--force", stdout=io.StringIO())
    assert opened
    assert closed_before_counting == []


@pytest.mark.django_db(transaction=True)
def test_the_restore_command_does_not_count_its_own_closed_connection(
    archive: Path,
    seeded_clinic: Path,
    no_stray_sessions: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The command closes its Django connection before the restore; the server
    process of that connection stays listed for a moment after the close and
    once refused a restore as '1 other session' of the clinic's."""
    from clinic import backup

    connection.ensure_connection()
    own_pid = connection.connection.info.backend_pid
    given: list[Sequence[int]] = []
    real_restore = backup.restore

    def restore_recorded(**options: Any) -> backup.RestoreResult:
        given.append(options["closed_own"])
        return real_restore(**options)

    monkeypatch.setattr("clinic.management.commands.restore.restore", restore_recorded)
    call_command("restore", str(archive), "--force", stdout=io.StringIO())
    assert given == [[own_pid]]


@pytest.mark.django_db(transaction=True)
def test_a_process_of_our_own_still_listed_is_waited_for_and_never_counted(
    archive: Path,
    seeded_clinic: Path,
    no_stray_sessions: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A connection the caller closed whose server process has not left yet
    (here one still open, the longest such a process could stay): the restore
    waits for it at most CLOSED_OWN_WAIT seconds, then goes on without it;
    the clinic's own sessions are still refused."""
    monkeypatch.setattr("clinic.backup.CLOSED_OWN_WAIT", 0.3)
    params = connection_params(connection.settings_dict)
    with psycopg.connect(make_conninfo("", **params), autocommit=True) as lingering:
        pid = lingering.info.backend_pid
        connection.close()
        result = restore(
            archive=archive,
            database=owner_settings(),
            media_root=seeded_clinic,
            application_role=application_user(),
            audit_head_file=None,
            force=True,
            closed_own=[pid],
        )
        assert result.tables > 0
        with (
            a_lock_held(connection.settings_dict),
            pytest.raises(BackupError, match=r"^1 other session connected"),
        ):
            restore(
                archive=archive,
                database=owner_settings(),
                media_root=seeded_clinic,
                application_role=application_user(),
                audit_head_file=None,
                force=True,
                closed_own=[pid],
            )


@pytest.mark.django_db(transaction=True)
def test_force_disconnect_ends_the_clinics_sessions_and_restores(
    archive: Path,
    seeded_clinic: Path,
    no_stray_sessions: None,
) -> None:
    before = table_rows()
    PatientFactory(first_name="Afterwards")
    with a_lock_held(connection.settings_dict) as holder:
        out = io.StringIO()
        call_command("restore", str(archive), "--force", "--force-disconnect", stdout=out)
        assert "Ended 1 other session connected to the database" in out.getvalue()
        assert "Restored" in out.getvalue()
        with pytest.raises(psycopg.OperationalError):
            holder.execute("SELECT 1")
    assert table_rows() == before


@pytest.mark.django_db(transaction=True)
def test_force_disconnect_refuses_sessions_the_role_may_not_end(
    archive: Path,
    empty_database: str,
    tmp_path: Path,
    no_stray_sessions: None,
) -> None:
    """The application role may not end the owner's sessions (nor may, in
    production, the owner role end the application role's)."""
    app_settings = dict(connection.settings_dict, NAME=empty_database)
    with owner_connect(empty_database) as holder:
        holder.execute("SET application_name = 'psql'")
        with pytest.raises(BackupError, match=r"(?s)may not end 1 of them.*pg_signal_backend"):
            restore(
                archive=archive,
                database=app_settings,
                media_root=tmp_path / "restored-media",
                application_role=None,
                audit_head_file=None,
                disconnect=True,
            )
        assert holder.execute("SELECT 1").fetchone() == (1,), "still connected"
    assert table_rows(empty_database) == {}
    assert file_sums(tmp_path / "restored-media") == {}


@pytest.mark.django_db(transaction=True)
def test_a_lock_taken_after_the_check_ends_the_load_and_rolls_it_back(
    archive: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_stray_sessions: None,
) -> None:
    """A session that connects between the check and the load: the load's
    lock timeout ends it with a message, never a silent wait."""
    monkeypatch.setattr("clinic.backup.RESTORE_LOCK_TIMEOUT", "1s")
    before = table_rows()
    dump = tmp_path / "database.dump"
    manifest = archive_verify(archive, dump_to=dump, media_to=tmp_path / "staged")
    work = tmp_path / "work"
    work.mkdir()
    params = connection_params(owner_settings())
    with (
        a_lock_held(connection.settings_dict),
        pytest.raises(
            BackupError,
            match=r"(?s)holds a lock on a table.*waited 1s.*Nothing was changed.*"
            r"docker compose stop web worker beat",
        ),
    ):
        _database_load(params, dump, manifest, work, replace=True)
    assert table_rows() == before


# --- Retention and schedule -------------------------------------------------------------


def test_retention_keeps_a_fortnight_of_days_and_eight_weeks_of_sundays(tmp_path: Path) -> None:
    """Daily at 02:30 UTC since December, and once more in the afternoon of the 11th."""
    day = date(2025, 12, 1)
    while day <= NOW.date():
        (tmp_path / archive_name(datetime(day.year, day.month, day.day, 2, 30, tzinfo=UTC))).touch()
        day += timedelta(days=1)
    (tmp_path / archive_name(datetime(2026, 3, 11, 14, 0, tzinfo=UTC))).touch()
    (tmp_path / "notes.txt").touch()

    found = archives(tmp_path)
    kept = archives_to_keep(found, now=NOW, zone=LONDON, keep_daily=14, keep_weekly=8)
    kept_at = sorted(a.at for a in found if a.path in kept)
    daily = [datetime(2026, 2, 27, 2, 30, tzinfo=UTC) + timedelta(days=n) for n in range(14)]
    daily[12] = datetime(2026, 3, 11, 14, 0, tzinfo=UTC)  # the newest of the 11th
    # Sundays (each week's newest) of the eight weeks back to Monday 19 January.
    sundays = [datetime(2026, 1, 25, 2, 30, tzinfo=UTC) + timedelta(weeks=n) for n in range(5)]
    assert kept_at == sorted(sundays + daily)

    with override_settings(BACKUP_DIR=str(tmp_path)), time_machine.travel(NOW, tick=False):
        # Pruning deletes exactly the others, and nothing but archives.
        removed = archives_prune(tmp_path, now=NOW, zone=LONDON, keep_daily=14, keep_weekly=8)
        assert len(removed) == len(found) - len(kept)
        assert {a.path for a in archives(tmp_path)} == kept
        assert (tmp_path / "notes.txt").exists()
        out = io.StringIO()
        call_command("backup", "--newest-within", "24", stdout=out)
        assert archive_name(NOW.replace(hour=2, minute=30).astimezone(UTC)) in out.getvalue()
        with pytest.raises(CommandError, match=r"is 14\.0 hours old \(more than 12\)"):
            call_command("backup", "--newest-within", "12")


def test_retention_always_keeps_the_newest_archive_however_old(tmp_path: Path) -> None:
    old = datetime(2025, 1, 6, 2, 30, tzinfo=UTC)
    (tmp_path / archive_name(old)).touch()
    (tmp_path / archive_name(old - timedelta(days=1))).touch()
    found = archives(tmp_path)
    kept = archives_to_keep(found, now=NOW, zone=LONDON, keep_daily=14, keep_weekly=8)
    assert kept == {tmp_path / archive_name(old)}


def test_the_daily_backup_keeps_its_clinic_time_across_the_change_of_clock() -> None:
    before_change = datetime(2026, 3, 28, 3, 0, tzinfo=LONDON)
    assert next_run(before_change, "02:30", LONDON) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert next_run(NOW, "02:30", LONDON) == datetime(2026, 3, 13, 2, 30, tzinfo=UTC)
    morning = datetime(2026, 3, 13, 1, 0, tzinfo=LONDON)
    assert next_run(morning, "02:30", LONDON) == datetime(2026, 3, 13, 2, 30, tzinfo=UTC)


# --- docker compose ----------------------------------------------------------------------


def test_the_compose_backup_service_reads_as_the_application_role_on_a_schedule() -> None:
    dot_env = a_dot_env()
    backup = compose()["services"]["backup"]
    env = container_env(backup, dot_env)
    assert env["DATABASE_URL"].startswith("postgres://clinic_app:")
    assert env["DATABASE_OWNER_URL"] == ""
    assert env["AUDIT_CHAIN_KEY"] == ""
    for secret in ("CLINIC_DB_OWNER_PASSWORD", "POSTGRES_PASSWORD"):
        assert dot_env[secret] not in " ".join(env.values()), secret
    assert backup["command"][:4] == ["python", "manage.py", "backup", "--daily-at"]
    assert "--newest-within" in backup["healthcheck"]["test"]
    volumes = [interpolate(volume, {}) for volume in backup["volumes"]]
    mounts = {volume.split(":")[1]: volume for volume in volumes}
    assert mounts[env["MEDIA_ROOT"]].endswith(":ro"), "the backup only reads the media"
    assert mounts[env["BACKUP_DIR"]] == "backups:/srv/clinic/backups"
    assert backup["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


def test_the_compose_restore_service_runs_by_hand_as_the_owner_before_migrating() -> None:
    dot_env = a_dot_env()
    spec = compose()
    restore_service = spec["services"]["restore"]
    env = container_env(restore_service, dot_env)
    assert restore_service["profiles"] == ["restore"], "`up` never starts it"
    assert restore_service["entrypoint"] == ["python", "manage.py", "restore"]
    assert env["DATABASE_OWNER_URL"].startswith("postgres://clinic_owner:")
    assert dot_env["CLINIC_DB_OWNER_PASSWORD"] in env["DATABASE_OWNER_URL"]
    assert env["AUDIT_CHAIN_KEY"] == ""
    assert dot_env["POSTGRES_PASSWORD"] not in " ".join(env.values())
    # The database must still be empty: it does not wait for the migrate step.
    assert set(restore_service["depends_on"]) == {"db"}
    volumes = [interpolate(v, {}) for v in restore_service["volumes"] if isinstance(v, str)]
    mounts = {volume.split(":")[1]: volume for volume in volumes}
    assert mounts["/srv/clinic/media"] == "media:/srv/clinic/media"
    assert env["AUDIT_CHAIN_HEAD_FILE"].startswith("/srv/clinic/audit/")
    assert mounts["/srv/clinic/audit"] == "audithead:/srv/clinic/audit"
    assert mounts[env["BACKUP_DIR"]].endswith(":ro")
    assert "backups" in spec["volumes"]

"""Backups of the clinic: the database and the media folder in one verifiable archive.

One archive per run in ``BACKUP_DIR``: ``clinic-backup-YYYYMMDDTHHMMSSZ.tar.age``,
a tar encrypted with age (https://age-encryption.org/v1) to the public keys
of ``BACKUP_AGE_RECIPIENTS``, whose private keys are kept off the server; or,
where plaintext is allowed (``DEBUG``, or ``BACKUP_ALLOW_PLAINTEXT`` for a demo),
the plain ``clinic-backup-YYYYMMDDTHHMMSSZ.tar``. The tar holds:

- ``database.dump``: ``pg_dump --format=custom`` of the whole database, taken
  as the application role (it may SELECT every table, the audit trail
  included, so the backup needs no owner's password) inside one snapshot;
- ``media/...``: every file under ``MEDIA_ROOT`` (photos, signatures, PDFs);
- ``manifest.json``: the SHA-256 and size of the dump and of every media file,
  the row count of every table and the audit chain's head, both read in the
  dump's own snapshot, and the PostgreSQL versions;
- ``manifest.sha256``: the SHA-256 of ``manifest.json``.

The tar is encrypted as it is written (pyrage, the Python binding of rage:
age's X25519 recipients, ChaCha20-Poly1305 in 64 KiB chunks), so no plaintext
copy of the media is made; the dump alone is on disk, unencrypted, while the
run lasts, in a folder of ``BACKUP_DIR`` readable by the clinic's user only.
The standard ``age`` command decrypts an archive: ``age -d -i key.txt``.

Restoring decrypts as it reads (the private key from a file, or standard
input: never from the server's settings), checks every checksum before
touching anything, refuses a database or media folder that is not empty
unless forced, refuses a database other sessions are connected to (the clinic
still running) unless told to end them, and loads the dump as the owner role
in one transaction (``psql --single-transaction``, with a lock timeout: a lock
held elsewhere ends it rather than stalls it) that ends by checking each
table's row count against the manifest: on any error nothing is changed. It then grants the
application role its rights (clinic/dbroles.py), puts the media files in
place and writes the audit chain's head (``AUDIT_CHAIN_HEAD_FILE``) as it was
in the archive's snapshot, so that ``manage.py audit_verify`` checks the
restored trail.

pg_dump, pg_restore and psql come from the PostgreSQL client of the server's
major version: ``POSTGRES_BIN_DIR`` when set, else the one shipped with the
embedded server (pgserver), /usr/lib/postgresql/N/bin, or the PATH.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import hashlib
import importlib.util
import io
import json
import logging
import os
import re
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path, PurePosixPath
from typing import IO, Any

import psycopg
import pyrage
from django.conf import settings
from psycopg.conninfo import make_conninfo
from pyrage import x25519

logger = logging.getLogger(__name__)

FORMAT = "clinic-backup"
FORMAT_VERSION = 1
ARCHIVE_PREFIX = "clinic-backup-"
ARCHIVE_SUFFIX = ".tar"
# An encrypted archive's name ends so, as the `age` command's output does.
ENCRYPTED_SUFFIX = ".age"
ARCHIVE_NAME = re.compile(r"^clinic-backup-(\d{8}T\d{6}Z)\.tar(?:\.age)?$")
# How an age file begins: binary (as written here), or ASCII-armoured (age -a).
_AGE_MAGIC = b"age-encryption.org/v1\n"
_AGE_ARMOR_MAGIC = b"-----BEGIN AGE ENCRYPTED FILE-----"
# An identity file holds a few keys and comments: anything larger is not one.
_IDENTITY_MAX_BYTES = 64 * 1024
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
DUMP_MEMBER = "database.dump"
MANIFEST_MEMBER = "manifest.json"
MANIFEST_SUM_MEMBER = "manifest.sha256"
MEDIA_MEMBER_PREFIX = "media/"
# Folders a restore stages media in (inside MEDIA_ROOT, so that moving the files
# into place is a rename); never backed up, and removed when a restore ends.
RESTORE_STAGING_PREFIX = ".clinic-restore-"
_CHUNK = 1024 * 1024
_MANIFEST_MAX_BYTES = 256 * 1024 * 1024
_HEX64 = re.compile(r"[0-9a-f]{64}")
# How long, in seconds, a restore waits for the server processes of the
# connections its caller closed just before to leave (they exit a moment after).
CLOSED_OWN_WAIT = 2.0

# How long the restore's transaction waits for a lock another session holds
# before it gives up and rolls back: it never waits without a word, and while
# it waits the clinic's own queries on that table queue behind it.
RESTORE_LOCK_TIMEOUT = "10s"
# How long a restore with --force-disconnect waits for the sessions it ended to go.
_SESSIONS_END_WAIT_SECONDS = 10.0
# What the operator stops before a restore (docs/user-guide.md).
_STOP_THE_CLINIC = "docker compose stop web worker beat"

# Libpq's connection keywords, as Django's OPTIONS may carry them, and the
# environment variable each program of the PostgreSQL client reads it from.
# The password goes through the environment, never on a command line.
_LIBPQ_ENVIRONMENT = {
    "host": "PGHOST",
    "port": "PGPORT",
    "dbname": "PGDATABASE",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
}


class BackupError(Exception):
    """A backup or restore that could not be done; the message says why and what to do."""


class ArchiveDamagedError(BackupError):
    """The archive does not match its manifest (or has none): it is not restored."""


# --- Connections -----------------------------------------------------------------


def connection_params(settings_dict: dict[str, Any]) -> dict[str, str]:
    """Libpq keywords for a Django database settings dict (NAME, USER, ..., OPTIONS)."""
    params = {
        "dbname": settings_dict.get("NAME"),
        "user": settings_dict.get("USER"),
        "password": settings_dict.get("PASSWORD"),
        "host": settings_dict.get("HOST"),
        "port": settings_dict.get("PORT"),
    }
    for key, value in (settings_dict.get("OPTIONS") or {}).items():
        if key in _LIBPQ_ENVIRONMENT:
            params[key] = value
    return {key: str(value) for key, value in params.items() if value not in (None, "")}


def _client_environment(params: dict[str, str]) -> dict[str, str]:
    """The environment for pg_dump, pg_restore and psql: ours, with the
    connection in PG* variables and no PG* variable of the caller's."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    for key, value in params.items():
        env[_LIBPQ_ENVIRONMENT[key]] = value
    env["PGAPPNAME"] = "clinic-backup"
    return env


def _connect(params: dict[str, str], **options: Any) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(make_conninfo("", **params), **options)
    except psycopg.OperationalError as error:
        where = params.get("dbname", "?")
        raise BackupError(
            f"Could not connect to the database {where} as {params.get('user', '?')}: "
            f"{str(error).strip()}"
        ) from error


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# The schema's own relations: not those of an extension (btree_gist, pg_trgm).
_OWN_RELATIONS = """
    SELECT c.relname FROM pg_class c
    WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
      AND NOT EXISTS (
          SELECT 1 FROM pg_depend d
          WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
      )
    ORDER BY c.relname
"""


def _tables(conn: psycopg.Connection[Any]) -> list[str]:
    return [row[0] for row in conn.execute(_OWN_RELATIONS).fetchall()]


def _row_count(conn: psycopg.Connection[Any], table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM public.{_quote_ident(table)}").fetchone()  # noqa: S608
    return int(row[0]) if row else 0


# --- The PostgreSQL client programs ----------------------------------------------


def _program_major(program: Path) -> int | None:
    """The major version of a client program, e.g. 15 from "pg_dump (PostgreSQL) 15.20"."""
    try:
        out = subprocess.run(  # noqa: S603
            [str(program), "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"\)\s+(\d+)", out)
    return int(match.group(1)) if match else None


def _candidate_bin_dirs() -> list[Path]:
    configured = str(getattr(settings, "POSTGRES_BIN_DIR", "") or "").strip()
    if configured:
        return [Path(configured)]
    found: list[Path] = []
    # The embedded server's own client (make run, make test); found without
    # importing pgserver, which would set up its runtime folder.
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.origin:
        found.append(Path(spec.origin).parent / "pginstall" / "bin")
    # Debian and Ubuntu keep each major version's programs apart.
    found.extend(
        sorted(
            Path("/usr/lib/postgresql").glob("*/bin"),
            key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
            reverse=True,
        )
    )
    on_path = shutil.which("pg_dump")
    if on_path:
        found.append(Path(on_path).resolve().parent)
    return found


def client_bin_dir(server_major: int, programs: Iterable[str]) -> Path:
    """The folder of the client programs for a PostgreSQL `server_major` server:
    the same major version, else the nearest newer one (pg_dump refuses a newer
    server; pg_restore reads the archives of older ones)."""
    programs = tuple(programs)
    seen: list[str] = []
    usable: list[tuple[int, Path]] = []
    for folder in _candidate_bin_dirs():
        paths = [folder / name for name in programs]
        if not all(path.is_file() and os.access(path, os.X_OK) for path in paths):
            continue
        majors = {_program_major(path) for path in paths}
        if len(majors) != 1 or None in majors:
            continue
        major = majors.pop()
        assert major is not None
        seen.append(f"{major} in {folder}")
        if major >= server_major:
            usable.append((major, folder))
    if usable:
        return min(usable)[1]
    names = ", ".join(programs)
    found = "; found " + ", ".join(seen) if seen else "; found none"
    raise BackupError(
        f"The database server is PostgreSQL {server_major}, and {names} of version "
        f"{server_major} (or newer) are needed{found}. Install postgresql-client-"
        f"{server_major}, or set POSTGRES_BIN_DIR to the folder holding them."
    )


def _run(command: list[str], env: dict[str, str], what: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        detail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise BackupError(f"{what} failed (exit status {result.returncode}):\n{detail}")
    return result


# --- Files -------------------------------------------------------------------------


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class _HashingReader:
    """Reads a file for tarfile while hashing what it reads."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.digest.update(data)
        return data


def media_files(media_root: Path) -> list[str]:
    """Every regular file under `media_root`, relative, in POSIX form, sorted.
    Symbolic links are not followed; a restore's staging folder is left out."""
    if not media_root.is_dir():
        return []
    found: list[str] = []
    for folder, dirs, files in os.walk(media_root):
        here = Path(folder)
        if here == media_root:
            dirs[:] = [d for d in dirs if not d.startswith(RESTORE_STAGING_PREFIX)]
        for name in files:
            path = here / name
            if path.is_file() and not path.is_symlink():
                found.append(path.relative_to(media_root).as_posix())
    return sorted(found)


@contextlib.contextmanager
def _exclusive(backup_dir: Path) -> Iterator[None]:
    """One backup at a time in a folder (a second waits for none: it fails)."""
    with (backup_dir / ".lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise BackupError(f"Another backup is being written to {backup_dir}.") from error
        yield


def _tarinfo(name: str, size: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = int(mtime)
    info.mode = 0o600
    return info


# --- Encryption (age) ----------------------------------------------------------------


def age_recipients(keys: Iterable[str]) -> list[x25519.Recipient]:
    """The age public keys (``age1...``) of `keys`, blanks left out."""
    recipients = []
    for raw in keys:
        key = raw.strip()
        if not key:
            continue
        if key.upper().startswith("AGE-SECRET-KEY-"):
            raise BackupError(
                "BACKUP_AGE_RECIPIENTS holds a private key (AGE-SECRET-KEY-...): only public "
                "keys (age1...) belong on the server. Put the public key there instead "
                "(`age-keygen -y key.txt` prints it), and since this private key has been on "
                "the server, make a new key pair and keep its private key elsewhere."
            )
        try:
            recipients.append(x25519.Recipient.from_str(key))
        except pyrage.RecipientError as error:
            raise BackupError(
                f"BACKUP_AGE_RECIPIENTS: {key[:16]!r}... is not an age public key "
                f"(age1..., as `age-keygen` prints it): {error}."
            ) from error
    return recipients


def backup_recipients() -> list[x25519.Recipient]:
    """The keys the archives are encrypted to (``BACKUP_AGE_RECIPIENTS``).

    None configured: an empty list (plaintext archives) where that is allowed,
    with ``DEBUG`` or ``BACKUP_ALLOW_PLAINTEXT``; otherwise refused, since the
    archives hold health records.
    """
    configured = settings.BACKUP_AGE_RECIPIENTS
    if isinstance(configured, str):
        configured = configured.split(",")
    recipients = age_recipients(configured)
    if recipients or settings.DEBUG or settings.BACKUP_ALLOW_PLAINTEXT:
        return recipients
    raise BackupError(
        "No backup written: BACKUP_AGE_RECIPIENTS is not set, and the archives hold health "
        "records, which leave the clinic's software encrypted only. On a computer other than "
        "the server, make a key pair (`age-keygen -o clinic-backup-key.txt`), keep that file "
        "off the server (it is the only way to read the backups), and set "
        "BACKUP_AGE_RECIPIENTS to the public key it prints (age1...). "
        "BACKUP_ALLOW_PLAINTEXT=True writes unencrypted archives instead: for a demo only."
    )


def age_identities(text: str, source: str) -> list[x25519.Identity]:
    """The private keys of an age identity file's text: one ``AGE-SECRET-KEY-1...``
    a line, blank lines and ``#`` comments (as `age-keygen` writes) left out.
    Messages never repeat a line of it."""
    identities = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("age-encryption.org/", "-----BEGIN AGE")):
            raise BackupError(
                f"{source} is itself encrypted with age (a key kept under a passphrase?): "
                "decrypt it first (`age -d key.txt.age > key.txt`) and give that file."
            )
        if not line.upper().startswith("AGE-SECRET-KEY-1"):
            what = "a public key" if line.startswith("age1") else "not an age private key"
            raise BackupError(
                f"{source}, line {number}: {what}. Give the private key, the file that "
                "`age-keygen` wrote (a line AGE-SECRET-KEY-1...)."
            )
        try:
            identities.append(x25519.Identity.from_str(line))
        except pyrage.IdentityError as error:
            raise BackupError(
                f"{source}, line {number}: not a valid age private key ({error})."
            ) from error
    if not identities:
        raise BackupError(f"{source} holds no age private key (a line AGE-SECRET-KEY-1...).")
    return identities


def age_identities_read(where: str, stdin: IO[str] | None = None) -> list[x25519.Identity]:
    """The private keys in the identity file `where`, or on `stdin` for ``-``
    (asked for without echo on a terminal)."""
    if where == "-":
        stdin = stdin if stdin is not None else sys.stdin
        if stdin.isatty():
            text = getpass.getpass("The backups' private key (AGE-SECRET-KEY-1...): ")
        else:
            text = stdin.read(_IDENTITY_MAX_BYTES + 1)
            if len(text) > _IDENTITY_MAX_BYTES:
                raise BackupError("Standard input is too large for an age identity file.")
        return age_identities(text, "The key on standard input")
    path = Path(where)
    try:
        with path.open("rb") as handle:
            data = handle.read(_IDENTITY_MAX_BYTES + 1)
    except OSError as error:
        raise BackupError(
            f"Could not read the identity file {path}: {error.strerror or error}."
        ) from error
    try:
        if len(data) > _IDENTITY_MAX_BYTES:
            raise ValueError
        text = data.decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise BackupError(
            f"{path} is not an age identity file (the private key that `age-keygen` wrote)."
        ) from None
    return age_identities(text, f"The identity file {path}")


def archive_encrypted(archive: Path) -> bool:
    """Whether `archive` is an age file (binary or armoured), by its first bytes."""
    try:
        with archive.open("rb") as handle:
            start = handle.read(len(_AGE_ARMOR_MAGIC))
    except OSError as error:
        raise BackupError(f"Could not read {archive}: {error.strerror or error}.") from error
    return start.startswith((_AGE_MAGIC, _AGE_ARMOR_MAGIC))


class _WriteChecked:
    """The file pyrage writes an archive to, remembering a write that failed:
    pyrage's last write (its buffer's, flushed as it is dropped) may fail
    without an error reaching the caller."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.error: BaseException | None = None

    def write(self, data: bytes) -> int:
        try:
            return self.raw.write(data)
        except BaseException as error:
            self.error = error
            raise

    def flush(self) -> None:
        try:
            self.raw.flush()
        except BaseException as error:
            self.error = error
            raise


@contextlib.contextmanager
def _age_encrypting(out: IO[bytes], recipients: Sequence[x25519.Recipient]) -> Iterator[IO[bytes]]:
    """A stream whose bytes reach `out` encrypted to `recipients`.

    The stream is a pipe, which pyrage's encrypt_io reads in a thread of its
    own (it lets go of the GIL while it encrypts): memory stays a few buffers
    whatever the archive's size. Should encrypting fail (a full disk), writing
    to the stream fails too, and its error is the one raised.
    """
    read_end, write_end = os.pipe()
    failed: list[BaseException] = []
    target = _WriteChecked(out)

    def encrypt() -> None:
        try:
            with open(read_end, "rb") as source:
                pyrage.encrypt_io(source, target, recipients)  # type: ignore[arg-type]
            if target.error is not None:
                raise target.error
        except BaseException as error:  # raised in the caller's thread
            failed.append(error)

    sink = open(write_end, "wb")  # noqa: SIM115 - closed below, before the join
    thread = threading.Thread(target=encrypt, name="clinic-backup-encrypt", daemon=True)
    thread.start()

    def finish() -> None:
        try:
            sink.close()  # the end of the plaintext: encrypt_io writes the last chunk
        except OSError as error:  # the thread stopped reading: its error says why
            if not failed:
                failed.append(error)
        thread.join()

    try:
        yield sink
    except BaseException:
        finish()
        if failed:
            raise BackupError(f"Encrypting the archive failed: {failed[0]}") from failed[0]
        raise
    finish()
    if failed:
        raise BackupError(f"Encrypting the archive failed: {failed[0]}") from failed[0]


def _decryption_failed(
    archive: Path, error: BaseException, identities: Sequence[x25519.Identity]
) -> BackupError:
    if isinstance(error, pyrage.DecryptError) and "no matching keys" in str(error).lower():
        given = ", ".join(str(identity.to_public()) for identity in identities)
        return BackupError(
            f"The private key given does not open {archive}: the archive was encrypted to "
            f"other keys (the key given is the one of {given}). Give the private key whose "
            "public key was in BACKUP_AGE_RECIPIENTS when the archive was written. "
            "Nothing was restored."
        )
    if isinstance(error, pyrage.DecryptError):
        return ArchiveDamagedError(
            f"The archive {archive} is damaged or not a clinic backup: its age header cannot "
            f"be read ({error}). Nothing was restored."
        )
    if isinstance(error, OSError) and error.errno is None:
        # age authenticates every 64 KiB chunk, and the last one as the last.
        return ArchiveDamagedError(
            f"The archive {archive} is damaged or not a clinic backup: it does not decrypt "
            f"whole ({error}: changed, or cut short). Nothing was restored; use another archive."
        )
    return BackupError(f"Could not read {archive}: {error}")


def _key_needed(archive: Path) -> BackupError:
    return BackupError(
        f"{archive} is encrypted (age): give its private key with --identity FILE, "
        "or --identity - to read it from standard input."
    )


class _FirstWrite:
    """A file that takes no byte: pyrage's first write means the key opened the
    archive's header and its first chunk decrypted."""

    opened = False

    def write(self, data: bytes) -> int:
        self.opened = True
        raise OSError("enough")

    def flush(self) -> None:
        pass


def archive_key_check(archive: Path, identities: Sequence[x25519.Identity]) -> None:
    """Raise unless `identities` open the age file `archive` (its header and
    first chunk only: a quick check before a restore touches anything)."""
    if not identities:
        raise _key_needed(archive)
    probe = _FirstWrite()
    try:
        with archive.open("rb") as handle:
            pyrage.decrypt_io(handle, probe, identities)  # type: ignore[arg-type]
    except Exception as error:
        if not probe.opened:
            raise _decryption_failed(archive, error, identities) from error


@contextlib.contextmanager
def _archive_stream(archive: Path, identities: Sequence[x25519.Identity]) -> Iterator[IO[bytes]]:
    """The archive's tar as a stream: the file itself, or, for an age file, a
    pipe into which pyrage's decrypt_io writes in a thread of its own.

    A decryption failure (a key that does not open it, a changed or cut
    chunk) is raised when the block ends, over whatever the reader raised:
    age checks the last chunk only at the end, so the reader's block must
    finish (it reads to the end) before the tar is trusted.
    """
    try:
        handle = archive.open("rb")
    except OSError as error:
        raise BackupError(f"Could not read {archive}: {error.strerror or error}.") from error
    with handle:
        start = handle.read(len(_AGE_ARMOR_MAGIC))
        handle.seek(0)
        if not start.startswith((_AGE_MAGIC, _AGE_ARMOR_MAGIC)):
            yield handle
            return
        if not identities:
            raise _key_needed(archive)
        read_end, write_end = os.pipe()
        failed: list[BaseException] = []

        def decrypt() -> None:
            try:
                with open(write_end, "wb") as sink:
                    pyrage.decrypt_io(handle, sink, identities)
            except BaseException as error:  # raised in the caller's thread
                failed.append(error)

        source = open(read_end, "rb")  # noqa: SIM115 - closed below, before the join
        thread = threading.Thread(target=decrypt, name="clinic-backup-decrypt", daemon=True)
        thread.start()

        def finish() -> None:
            source.close()  # a reader that stopped early: the writer gets EPIPE and ends
            thread.join()

        try:
            yield source
            while source.read(_CHUNK):  # the tar's padding, then age's last chunk
                pass
        except BaseException:
            finish()
            if failed and not isinstance(failed[0], BrokenPipeError):
                raise _decryption_failed(archive, failed[0], identities) from failed[0]
            raise
        finish()
        if failed:
            raise _decryption_failed(archive, failed[0], identities) from failed[0]


# --- Backup ------------------------------------------------------------------------


@dataclass(frozen=True)
class BackupResult:
    path: Path
    size: int
    tables: int
    rows: int
    media_files: int
    audit_head: tuple[int, str] | None
    # The public keys the archive is encrypted to; none: a plain tar.
    recipients: tuple[str, ...] = ()


def archive_name(at: datetime, *, encrypted: bool = False) -> str:
    suffix = ARCHIVE_SUFFIX + (ENCRYPTED_SUFFIX if encrypted else "")
    return f"{ARCHIVE_PREFIX}{at.astimezone(UTC).strftime(STAMP_FORMAT)}{suffix}"


def backup_create(
    *,
    backup_dir: Path,
    database: dict[str, Any],
    media_root: Path,
    now: datetime,
    recipients: Sequence[x25519.Recipient],
) -> BackupResult:
    """Write one archive of the database (a Django settings dict; the application
    role suffices) and of `media_root` into `backup_dir`, encrypted to
    `recipients` (none: a plain tar; see `backup_recipients`); return what it holds.

    The archive appears under its final name only once complete: a failed run
    leaves nothing but a temporary folder that the next run removes.
    """
    backup_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    final = backup_dir / archive_name(now, encrypted=bool(recipients))
    if final.exists():
        raise BackupError(f"{final} already exists.")
    params = connection_params(database)
    with _exclusive(backup_dir):
        for leftover in backup_dir.glob(".clinic-backup-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        with tempfile.TemporaryDirectory(dir=backup_dir, prefix=".clinic-backup-") as work:
            dump = Path(work) / DUMP_MEMBER
            database_info = _dump(params, dump)
            database_info["sha256"] = _sha256_file(dump)
            database_info["size"] = dump.stat().st_size
            partial = Path(work) / final.name
            try:
                with partial.open("xb") as out:
                    os.fchmod(out.fileno(), 0o600)
                    if recipients:
                        with _age_encrypting(out, recipients) as sink:
                            media = _archive_write(sink, dump, media_root, database_info, now)
                    else:
                        media = _archive_write(out, dump, media_root, database_info, now)
                    out.flush()
                    os.fsync(out.fileno())
            except OSError as error:  # a full disk, an unreadable media file
                raise BackupError(f"The archive could not be written: {error}") from error
            os.replace(partial, final)
    head = database_info["audit_chain_head"]
    tables: dict[str, int] = database_info["tables"]
    return BackupResult(
        path=final,
        size=final.stat().st_size,
        tables=len(tables),
        rows=sum(tables.values()),
        media_files=media,
        audit_head=(head["seq"], head["chain_hash"]) if head else None,
        recipients=tuple(str(recipient) for recipient in recipients),
    )


def _dump(params: dict[str, str], out: Path) -> dict[str, Any]:
    """pg_dump into `out` within one exported snapshot, in which the row counts
    and the audit chain's head are read too: all three agree."""
    with _connect(params) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        row = conn.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        snapshot = str(row[0])
        server_version = conn.info.parameter_status("server_version") or ""
        server_major = conn.info.server_version // 10000
        tables = _tables(conn)
        if "django_migrations" not in tables:
            raise BackupError(
                f"The database {params.get('dbname')} has no clinic tables: nothing to back up."
            )
        counts = {table: _row_count(conn, table) for table in tables}
        head = None
        if "clinic_auditseal" in tables:
            last = conn.execute(
                "SELECT seq, chain_hash FROM public.clinic_auditseal ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            if last is not None:
                head = {"seq": int(last[0]), "chain_hash": str(last[1])}
        bin_dir = client_bin_dir(server_major, ["pg_dump"])
        pg_dump = bin_dir / "pg_dump"
        _run(
            [
                str(pg_dump),
                "--format=custom",
                f"--snapshot={snapshot}",
                # A migration holding a table: fail, rather than wait behind it.
                "--lock-wait-timeout=120s",
                "--no-password",
                f"--file={out}",
            ],
            _client_environment(params),
            "pg_dump",
        )
        conn.rollback()
    version = subprocess.run(  # noqa: S603
        [str(pg_dump), "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "file": DUMP_MEMBER,
        "name": params.get("dbname", ""),
        "server_version": server_version,
        "server_major": server_major,
        "pg_dump": version,
        "tables": counts,
        "audit_chain_head": head,
    }


def _archive_write(
    out: IO[bytes], dump: Path, media_root: Path, database_info: dict[str, Any], now: datetime
) -> int:
    """Write the tar to the stream `out`: the dump, the media files, then the
    manifest; return the number of media files."""
    entries: list[dict[str, Any]] = []
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        with dump.open("rb") as handle:
            tar.addfile(_tarinfo(DUMP_MEMBER, dump.stat().st_size, now.timestamp()), handle)
        for relative in media_files(media_root):
            source = media_root / relative
            try:
                handle_media = source.open("rb")
            except FileNotFoundError:
                continue  # removed since the folder was listed
            with handle_media:
                stat = os.fstat(handle_media.fileno())
                reader = _HashingReader(handle_media)
                tar.addfile(
                    _tarinfo(MEDIA_MEMBER_PREFIX + relative, stat.st_size, stat.st_mtime),
                    reader,
                )
            entries.append(
                {"path": relative, "sha256": reader.digest.hexdigest(), "size": stat.st_size}
            )
        manifest = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "created_at": now.astimezone(UTC).isoformat(),
            "database": {k: v for k, v in database_info.items() if k != "audit_chain_head"},
            "audit_chain_head": database_info["audit_chain_head"],
            "media": entries,
        }
        body = json.dumps(manifest, indent=1, sort_keys=True).encode()
        for name, data in (
            (MANIFEST_MEMBER, body),
            (MANIFEST_SUM_MEMBER, (hashlib.sha256(body).hexdigest() + "\n").encode()),
        ):
            tar.addfile(_tarinfo(name, len(data), now.timestamp()), io.BytesIO(data))
    return len(entries)


# --- Reading and checking an archive -------------------------------------------------


@dataclass
class Manifest:
    created_at: str
    database: dict[str, Any]
    audit_chain_head: dict[str, Any] | None
    media: list[dict[str, Any]] = field(default_factory=list)

    @property
    def tables(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.database["tables"].items()}


def _media_member_path(name: str) -> str | None:
    """The relative media path of a member, or None when the name could escape."""
    relative = name[len(MEDIA_MEMBER_PREFIX) :]
    pure = PurePosixPath(relative)
    if not relative or pure.is_absolute() or any(part in ("", ".", "..") for part in pure.parts):
        return None
    if "\\" in relative or "\x00" in relative:
        return None
    return relative


def archive_verify(
    archive: Path,
    *,
    identities: Sequence[x25519.Identity] = (),
    dump_to: Path | None = None,
    media_to: Path | None = None,
) -> Manifest:
    """Read the whole archive, decrypting it with `identities` if it is an age
    file, and check every member against the manifest.

    With `dump_to` and `media_to` the dump and media files are written there as
    they are read. Raises `ArchiveDamagedError` naming what does not match.
    """
    damaged = f"The archive {archive} is damaged or not a clinic backup"
    found: dict[str, tuple[str, int]] = {}
    manifest_body: bytes | None = None
    manifest_sum: str | None = None
    try:
        with (
            _archive_stream(archive, identities) as stream,
            tarfile.open(fileobj=stream, mode="r|") as tar,
        ):
            for member in tar:
                name = member.name
                if not member.isfile():
                    raise ArchiveDamagedError(f"{damaged}: {name!r} is not a plain file.")
                if name in found or (name == MANIFEST_MEMBER and manifest_body is not None):
                    raise ArchiveDamagedError(f"{damaged}: {name!r} appears twice.")
                source = tar.extractfile(member)
                assert source is not None
                if name in (MANIFEST_MEMBER, MANIFEST_SUM_MEMBER):
                    if member.size > _MANIFEST_MAX_BYTES:
                        raise ArchiveDamagedError(f"{damaged}: {name} is too large.")
                    data = source.read()
                    if name == MANIFEST_MEMBER:
                        manifest_body = data
                    else:
                        manifest_sum = data.decode("ascii", "replace").strip()
                    continue
                if name == DUMP_MEMBER:
                    target = dump_to
                elif name.startswith(MEDIA_MEMBER_PREFIX):
                    relative = _media_member_path(name)
                    if relative is None:
                        raise ArchiveDamagedError(f"{damaged}: unsafe file name {name!r}.")
                    target = media_to / relative if media_to is not None else None
                else:
                    raise ArchiveDamagedError(f"{damaged}: unexpected file {name!r}.")
                found[name] = _copy_hashing(source, target)
    except (tarfile.TarError, EOFError) as error:
        raise ArchiveDamagedError(f"{damaged}: {error}. Nothing was restored.") from error
    except OSError as error:
        raise BackupError(f"Could not read {archive} or write out its files: {error}") from error
    if manifest_body is None or manifest_sum is None:
        raise ArchiveDamagedError(f"{damaged}: it has no manifest (a truncated file?).")
    if hashlib.sha256(manifest_body).hexdigest() != manifest_sum:
        raise ArchiveDamagedError(f"{damaged}: the manifest does not match its checksum.")
    try:
        document = json.loads(manifest_body)
        if document.get("format") != FORMAT:
            raise ArchiveDamagedError(f"{damaged}: not a {FORMAT} manifest.")
        if int(document.get("version", 0)) > FORMAT_VERSION:
            raise BackupError(
                f"{archive} was written by a newer version of the clinic "
                f"(archive format {document['version']}); restore it with that version."
            )
        manifest = Manifest(
            created_at=str(document["created_at"]),
            database=dict(document["database"]),
            audit_chain_head=document.get("audit_chain_head"),
            media=list(document["media"]),
        )
        manifest.tables  # noqa: B018 - the counts must be numbers
        head = manifest.audit_chain_head
        if head is not None and not (
            isinstance(head.get("seq"), int) and _HEX64.fullmatch(str(head.get("chain_hash")))
        ):
            raise ValueError("the audit chain's head is not a link number and a hash")
        expected = {DUMP_MEMBER: (str(manifest.database["sha256"]), int(manifest.database["size"]))}
        for entry in manifest.media:
            expected[MEDIA_MEMBER_PREFIX + str(entry["path"])] = (
                str(entry["sha256"]),
                int(entry["size"]),
            )
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ArchiveDamagedError(f"{damaged}: its manifest cannot be read ({error}).") from error
    for name in sorted(set(expected) | set(found)):
        if name not in found:
            raise ArchiveDamagedError(f"{damaged}: {name} is missing. Nothing was restored.")
        if name not in expected:
            raise ArchiveDamagedError(f"{damaged}: {name} is not in the manifest.")
        if found[name] != expected[name]:
            raise ArchiveDamagedError(
                f"{damaged}: {name} does not match its checksum in the manifest. "
                "Nothing was restored; use another archive."
            )
    return manifest


def _copy_hashing(source: IO[bytes], target: Path | None) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    out: IO[bytes] | None = None
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        out = target.open("xb")
    try:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if out is not None:
                out.write(chunk)
    finally:
        if out is not None:
            out.close()
    return digest.hexdigest(), size


# --- Restore -----------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreResult:
    tables: int
    rows: int
    media_files: int
    audit_head: tuple[int, str] | None
    created_at: str


def restore(
    *,
    archive: Path,
    database: dict[str, Any],
    media_root: Path,
    application_role: str | None,
    audit_head_file: str | None,
    identities: Sequence[x25519.Identity] = (),
    force: bool = False,
    disconnect: bool = False,
    closed_own: Sequence[int] = (),
    say: Callable[[str], None] = lambda message: None,
) -> RestoreResult:
    """Restore `archive` into `database` (a Django settings dict of the role that
    owns the schema) and `media_root`, decrypting it with `identities` if it is
    an age file; see the module's docstring. Other sessions connected to the
    database refuse the restore, or with `disconnect` are ended first.

    `closed_own`: the server process ids of connections the caller closed just
    before (its Django connections). Their server processes leave a moment after
    the close; they are waited for, up to `CLOSED_OWN_WAIT` seconds, and never
    counted as somebody else's."""
    if not archive.is_file():
        raise BackupError(f"No archive at {archive}.")
    if archive_encrypted(archive):
        archive_key_check(archive, identities)
    params = connection_params(database)
    name = params.get("dbname", "?")
    files_there = media_files(media_root)
    # One connection looks at the tables and at the other sessions: a backend
    # of a connection of ours just closed may still be listed for a moment,
    # and would be counted as somebody else's.
    with _connect(params, autocommit=True) as conn:
        tables_there = len(_tables(conn))
        if not force:
            if tables_there:
                raise BackupError(
                    f"The database {name} is not empty: it has {tables_there} tables. A "
                    "restore replaces everything in it; run again with --force to do so."
                )
            if files_there:
                raise BackupError(
                    f"The media folder {media_root} is not empty: it has {len(files_there)} "
                    "files. A restore replaces them; run again with --force to do so."
                )
        _closed_own_wait(conn, closed_own)
        _other_sessions_end(conn, params, disconnect=disconnect, ignore=closed_own, say=say)
    media_root.mkdir(parents=True, exist_ok=True)
    staging = media_root / f"{RESTORE_STAGING_PREFIX}{secrets.token_hex(6)}"
    staging.mkdir(mode=0o700)
    try:
        with tempfile.TemporaryDirectory(prefix="clinic-restore-") as work:
            dump = Path(work) / DUMP_MEMBER
            say(f"Checking {archive} against its manifest...")
            manifest = archive_verify(
                archive, identities=identities, dump_to=dump, media_to=staging
            )
            say(
                f"The archive of {manifest.created_at} is intact: {len(manifest.tables)} tables, "
                f"{len(manifest.media)} media files."
            )
            _database_load(params, dump, manifest, Path(work), replace=bool(tables_there))
        say(f"Database {name} restored.")
        _database_grant(params, application_role)
        _media_place(staging, media_root, replace=bool(files_there))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    head = manifest.audit_chain_head
    _audit_head_write(audit_head_file, head)
    return RestoreResult(
        tables=len(manifest.tables),
        rows=sum(manifest.tables.values()),
        media_files=len(manifest.media),
        audit_head=(int(head["seq"]), str(head["chain_hash"])) if head else None,
        created_at=manifest.created_at,
    )


@dataclass(frozen=True)
class Session:
    """Another session connected to the database: who, never what it runs."""

    pid: int
    user: str
    application: str
    address: str | None
    may_end: bool

    def __str__(self) -> str:
        return (
            f"{self.user or '?'} ({self.application or 'no application name'}, "
            f"{self.address or 'local or not shown'})"
        )


# Client sessions on the current database other than our own. A role without
# the privileges of a session's role (nor pg_read_all_stats) sees its role and
# application name but neither its address nor its backend type. `may_end`: what
# pg_terminate_backend allows, a superuser's session to a superuser only, any
# other to a member of its role or of pg_signal_backend.
_OTHER_SESSIONS_SQL = """
    SELECT a.pid, coalesce(a.usename, ''), coalesce(a.application_name, ''),
           CASE WHEN pg_has_role(a.usesysid, 'USAGE')
                     OR pg_has_role('pg_read_all_stats', 'USAGE')
                THEN host(a.client_addr) END,
           CASE WHEN r.rolsuper
                THEN (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
                ELSE pg_has_role(a.usesysid, 'USAGE') OR pg_has_role('pg_signal_backend', 'USAGE')
           END
    FROM pg_stat_activity a JOIN pg_roles r ON r.oid = a.usesysid
    WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
      AND coalesce(a.backend_type, 'client backend') = 'client backend'
    ORDER BY a.pid
"""


def other_sessions(conn: psycopg.Connection[Any]) -> list[Session]:
    """The other client sessions connected to `conn`'s database."""
    return [
        Session(pid=row[0], user=row[1], application=row[2], address=row[3], may_end=row[4])
        for row in conn.execute(_OTHER_SESSIONS_SQL).fetchall()
    ]


def _sessions_listed(sessions: Sequence[Session], most: int = 10) -> str:
    listed = "; ".join(str(session) for session in sessions[:most])
    if len(sessions) > most:
        listed += f"; and {len(sessions) - most} more"
    return listed


def _closed_own_wait(conn: psycopg.Connection[Any], pids: Sequence[int]) -> None:
    """Wait, up to CLOSED_OWN_WAIT seconds, until the server processes of our
    own connections closed just before have left pg_stat_activity."""
    if not pids:
        return
    deadline = time.monotonic() + CLOSED_OWN_WAIT
    while time.monotonic() < deadline:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [list(pids)]
        ).fetchone()
        if row is None or row[0] == 0:
            return
        time.sleep(0.05)


def _other_sessions_end(
    conn: psycopg.Connection[Any],
    params: dict[str, str],
    *,
    disconnect: bool,
    ignore: Sequence[int] = (),
    say: Callable[[str], None],
) -> None:
    """Refuse a restore while other sessions are connected to the database (the
    clinic still running: its open transactions' locks would hold the load up,
    and its queries would then queue behind the load), or, with `disconnect`,
    end them if this role may."""
    name = params.get("dbname", "?")
    role = params.get("user", "?")
    sessions = [session for session in other_sessions(conn) if session.pid not in ignore]
    if not sessions:
        return
    count = f"{len(sessions)} other session{'s' if len(sessions) != 1 else ''}"
    listed = _sessions_listed(sessions)
    stop = (
        f"Stop the clinic's web server, worker and beat first ({_STOP_THE_CLINIC}) "
        "and run the restore again"
    )
    if not disconnect:
        raise BackupError(
            f"{count} connected to the database {name}: {listed}. A restore needs the "
            f"database to itself. {stop}, or add --force-disconnect to end them. "
            "Nothing was changed."
        )
    refused = [session for session in sessions if not session.may_end]
    if refused:
        raise BackupError(
            f"{count} connected to the database {name}: {listed}. --force-disconnect "
            f"was given, but the role {role} may not end {len(refused)} of them "
            f"({_sessions_listed(refused)}): PostgreSQL lets a role end only its own "
            "role's sessions unless it is a superuser or a member of pg_signal_backend. "
            f"{stop}. Nothing was changed."
        )
    pids = [session.pid for session in sessions]
    try:
        for pid in pids:
            conn.execute("SELECT pg_terminate_backend(%s)", [pid])
    except psycopg.errors.InsufficientPrivilege as error:
        raise BackupError(
            f"--force-disconnect: the role {role} may not end the sessions connected to "
            f"the database {name} ({str(error).strip()}). {stop}. Nothing was changed."
        ) from error
    deadline = time.monotonic() + _SESSIONS_END_WAIT_SECONDS
    while True:
        left = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [pids]
        ).fetchone()
        if not left or not left[0]:
            break
        if time.monotonic() > deadline:
            raise BackupError(
                f"--force-disconnect: {left[0]} of the sessions connected to the database "
                f"{name} did not end within {_SESSIONS_END_WAIT_SECONDS:g} seconds. "
                f"{stop}. Nothing was changed."
            )
        time.sleep(0.1)
    say(
        f"Ended {count} connected to the database {name}: {listed}. If the clinic is still "
        f"running it connects again: stop it ({_STOP_THE_CLINIC})."
    )


def _lock_timeout_set(script: Path, out: Path) -> None:
    """Copy pg_restore's script, whose header turns the lock timeout off, with ours."""
    with script.open() as source, out.open("w") as target:
        for line in source:
            target.write(
                f"SET lock_timeout = '{RESTORE_LOCK_TIMEOUT}';\n"
                if line.strip() == "SET lock_timeout = 0;"
                else line
            )


# Run first in the restore's transaction with --force: everything of the
# schema's own goes (not the extensions', which the dump creates if missing).
_SCHEMA_EMPTY_SQL = r"""
DO $clinic_restore$
DECLARE
    item text;
BEGIN
    FOREACH item IN ARRAY coalesce((
        SELECT array_agg(format('DROP %s IF EXISTS %I.%I CASCADE',
               CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                              WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE'
                              ELSE 'TABLE' END,
               n.nspname, c.relname) ORDER BY c.relkind DESC)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                          AND d.objid = c.oid AND d.deptype = 'e')
    ), '{}')
    LOOP
        EXECUTE item;
    END LOOP;
    FOREACH item IN ARRAY coalesce((
        SELECT array_agg('DROP ROUTINE IF EXISTS ' || p.oid::regprocedure::text || ' CASCADE')
        FROM pg_proc p
        WHERE p.pronamespace = 'public'::regnamespace AND p.prokind IN ('f', 'p')
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                          AND d.objid = p.oid AND d.deptype = 'e')
    ), '{}')
    LOOP
        EXECUTE item;
    END LOOP;
    FOREACH item IN ARRAY coalesce((
        SELECT array_agg(format('DROP TYPE IF EXISTS %I.%I CASCADE', n.nspname, t.typname))
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd', 'r')
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                          AND d.objid = t.oid AND d.deptype = 'e')
    ), '{}')
    LOOP
        EXECUTE item;
    END LOOP;
END
$clinic_restore$;
"""


def _row_count_check_sql(tables: dict[str, int]) -> str:
    """Run last in the restore's transaction: a table with other than the
    archive's row count (or missing) aborts, and the transaction rolls back."""
    lines = ["DO $clinic_restore_check$", "DECLARE n bigint;", "BEGIN"]
    for table, expected in sorted(tables.items()):
        lines.append(f"    SELECT count(*) INTO n FROM public.{_quote_ident(table)};")  # noqa: S608
        lines.append(
            f"    IF n <> {int(expected)} THEN RAISE EXCEPTION "
            f"'restore check: table % has % rows, the archive %', "
            f"{_quote_literal(table)}, n, {int(expected)}; END IF;"
        )
    lines += ["END", "$clinic_restore_check$;", ""]
    return "\n".join(lines)


def _database_load(
    params: dict[str, str], dump: Path, manifest: Manifest, work: Path, *, replace: bool
) -> None:
    """Load the dump in one transaction: all of it, or nothing."""
    with _connect(params, autocommit=True) as conn:
        server_major = conn.info.server_version // 10000
    archive_major = int(manifest.database.get("server_major", 0))
    if server_major < archive_major:
        raise BackupError(
            f"The archive comes from PostgreSQL {archive_major}; this server is PostgreSQL "
            f"{server_major}. Restore onto PostgreSQL {archive_major} or newer."
        )
    bin_dir = client_bin_dir(max(server_major, archive_major), ["pg_restore", "psql"])
    env = _client_environment(params)
    # The comments on extensions can be set only by the extension's owner (and
    # say nothing of ours): they are left out.
    listing = _run([str(bin_dir / "pg_restore"), "--list", str(dump)], env, "pg_restore --list")
    kept = [line for line in listing.stdout.splitlines() if " COMMENT - EXTENSION " not in line]
    (work / "contents.list").write_text("\n".join(kept) + "\n")
    # As a script first, so that psql runs only a complete one.
    script = work / "restore.sql"
    _run(
        [
            str(bin_dir / "pg_restore"),
            "--no-owner",
            "--no-privileges",
            f"--use-list={work / 'contents.list'}",
            f"--file={script}",
            str(dump),
        ],
        env,
        "pg_restore",
    )
    loaded = work / "restore-timed.sql"
    _lock_timeout_set(script, loaded)
    script.unlink()
    first = work / "first.sql"
    first.write_text(
        f"SET lock_timeout = '{RESTORE_LOCK_TIMEOUT}';\n"
        + (_SCHEMA_EMPTY_SQL if replace else "SELECT 1;\n")
    )
    last = work / "last.sql"
    last.write_text(_row_count_check_sql(manifest.tables))
    try:
        _run(
            [
                str(bin_dir / "psql"),
                "--no-psqlrc",
                "--quiet",
                "--no-password",
                "--set=ON_ERROR_STOP=1",
                "--single-transaction",
                f"--file={first}",
                f"--file={loaded}",
                f"--file={last}",
            ],
            env,
            "Loading the dump",
        )
    except BackupError as error:
        if "due to lock timeout" in str(error):
            raise BackupError(
                f"Another session holds a lock on a table of the database "
                f"{params.get('dbname', '?')} (the clinic still running?): the restore waited "
                f"{RESTORE_LOCK_TIMEOUT} for it and gave up. Nothing was changed in the "
                "database (the load was rolled back) nor in the media folder. Stop the "
                f"clinic's web server, worker and beat ({_STOP_THE_CLINIC}) and run the "
                f"restore again.\n{error}"
            ) from error
        raise BackupError(
            f"{error}\nNothing was changed in the database: the restore runs in one "
            "transaction, rolled back on the first error. The media folder was not touched."
        ) from error


class _DbrolesConnection:
    """What clinic.dbroles' functions use of a Django connection (cursor,
    quote_name, the database's name), over a plain psycopg connection: the
    restored database need not be one of Django's configured databases."""

    def __init__(self, conn: psycopg.Connection[Any], name: str) -> None:
        self._conn = conn
        self.settings_dict = {"NAME": name}
        self.ops = self

    @staticmethod
    def quote_name(name: str) -> str:
        return name if name.startswith('"') else _quote_ident(name)

    def cursor(self) -> psycopg.Cursor[Any]:
        return self._conn.cursor()


def _database_grant(params: dict[str, str], application_role: str | None) -> None:
    """Give the application role its rights on the restored tables, as the
    project's migrate command does after migrating (clinic/dbroles.py)."""
    from clinic.dbroles import application_privileges_grant, database_functions_harden

    try:
        with _connect(params) as conn:  # one transaction, committed at the end
            wrapper: Any = _DbrolesConnection(conn, params.get("dbname", ""))
            database_functions_harden(wrapper)
            if application_role and application_role != params.get("user"):
                application_privileges_grant(wrapper, application_role)
    except (psycopg.Error, BackupError) as error:
        raise BackupError(
            f"The database was restored, but granting the application role its rights "
            f"failed: {error}. Run `manage.py migrate` (with DATABASE_OWNER_URL) to grant them."
        ) from error


def _media_place(staging: Path, media_root: Path, *, replace: bool) -> None:
    """Move the checked files from the staging folder into `media_root`
    (renames on one file system); with `replace`, what was there goes first."""
    try:
        if replace:
            for entry in media_root.iterdir():
                if entry == staging:
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        for entry in staging.iterdir():
            os.replace(entry, media_root / entry.name)
    except OSError as error:
        kept = media_root.parent / f"clinic-restore-media-{secrets.token_hex(4)}"
        with contextlib.suppress(OSError):
            os.replace(staging, kept)
        raise BackupError(
            f"The database was restored, but the media files could not be put in place: "
            f"{error}. The archive's files are in {kept}; move them into {media_root}."
        ) from error


def _audit_head_write(path: str | None, head: dict[str, Any] | None) -> None:
    """The chain head outside the database, as it was in the archive's snapshot."""
    if not path:
        return
    if head is None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    # As the sealer writes it (clinic/auditchain.py): whole or not at all.
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".audit-head-")
    with os.fdopen(handle, "w", encoding="ascii") as out:
        out.write(f"{int(head['seq'])} {head['chain_hash']}\n")
    os.replace(temporary, path)


# --- Retention ------------------------------------------------------------------------


@dataclass(frozen=True)
class Archive:
    path: Path
    at: datetime


def archives(backup_dir: Path) -> list[Archive]:
    """The archives in `backup_dir`, oldest first (by the time in their names)."""
    found = []
    if backup_dir.is_dir():
        for path in backup_dir.iterdir():
            match = ARCHIVE_NAME.match(path.name)
            if match and path.is_file():
                at = datetime.strptime(match.group(1), STAMP_FORMAT).replace(tzinfo=UTC)
                found.append(Archive(path, at))
    return sorted(found, key=lambda a: a.at)


def archives_to_keep(
    found: list[Archive], *, now: datetime, zone: tzinfo, keep_daily: int, keep_weekly: int
) -> set[Path]:
    """The newest archive of each of the last `keep_daily` days (today counts)
    and of each of the last `keep_weekly` weeks (Monday to Sunday, this week
    counts), days in the clinic's time zone; and always the newest archive."""
    today = now.astimezone(zone).date()
    this_week = today - timedelta(days=today.weekday())
    newest_of_day: dict[date, Archive] = {}
    newest_of_week: dict[date, Archive] = {}
    for archive in found:  # oldest first: later ones replace earlier
        day = archive.at.astimezone(zone).date()
        newest_of_day[day] = archive
        newest_of_week[day - timedelta(days=day.weekday())] = archive
    keep = {a.path for d, a in newest_of_day.items() if 0 <= (today - d).days < keep_daily}
    keep |= {
        a.path for w, a in newest_of_week.items() if 0 <= (this_week - w).days < 7 * keep_weekly
    }
    if found:
        keep.add(found[-1].path)
    return keep


def archives_prune(
    backup_dir: Path, *, now: datetime, zone: tzinfo, keep_daily: int, keep_weekly: int
) -> list[Path]:
    """Delete the archives that `archives_to_keep` does not keep; return them."""
    found = archives(backup_dir)
    keep = archives_to_keep(
        found, now=now, zone=zone, keep_daily=keep_daily, keep_weekly=keep_weekly
    )
    removed = []
    for archive in found:
        if archive.path not in keep:
            archive.path.unlink()
            removed.append(archive.path)
    return removed


def next_run(now: datetime, at: str, zone: tzinfo) -> datetime:
    """The next time of day `at` ("HH:MM", clinic time) after `now`."""
    hour, minute = (int(part) for part in at.split(":"))
    local = now.astimezone(zone)
    candidate = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if candidate <= local:
        # Wall-clock arithmetic: across a change of clock the hour stays.
        candidate = (local + timedelta(days=1)).replace(
            hour=hour, minute=minute, second=0, microsecond=0
        )
    return candidate.astimezone(UTC)

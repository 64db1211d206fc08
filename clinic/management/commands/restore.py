"""Restore an archive of `manage.py backup`: the database, the media folder, the chain head."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections
from pyrage import x25519

from clinic.backup import (
    BackupError,
    age_identities_read,
    archive_encrypted,
    archive_verify,
    restore,
)
from clinic.dbroles import application_user, owner_credentials

logger = logging.getLogger("clinic.backup")


class Command(BaseCommand):
    help = (
        "Checks an archive written by `manage.py backup` against its checksums (decrypting it "
        "with --identity, the private key, if it is encrypted), then restores "
        "it into an empty database (as the owner role, DATABASE_OWNER_URL, in one transaction) "
        "and an empty media folder, grants the application role its rights and writes the "
        "audit chain's head. Refuses a damaged archive, a database or media folder that "
        "is not empty unless --force, and a database other sessions are connected to (the "
        "clinic still running) unless --force-disconnect."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "archive", help="The archive (clinic-backup-....tar.age, or .tar) to restore."
        )
        parser.add_argument(
            "--identity",
            "-i",
            metavar="FILE",
            help=(
                "The age identity file holding the private key the archive is encrypted to "
                "(as `age-keygen` wrote it), or - to read it from standard input."
            ),
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help=(
                "Replace what the database and the media folder hold: every table, and every "
                "media file, is deleted and the archive's put in their place."
            ),
        )
        parser.add_argument(
            "--force-disconnect",
            action="store_true",
            help=(
                "End the other sessions connected to the database (the clinic's web server, "
                "worker and beat) instead of refusing; the owner role must be allowed to "
                "(a superuser, or a member of pg_signal_backend). Better: stop them first "
                "(docker compose stop web worker beat)."
            ),
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="Only check the archive against its manifest; restore nothing.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        archive = Path(options["archive"])
        try:
            if not archive.is_file():
                raise BackupError(f"No archive at {archive}.")
            identities = []
            if options["identity"]:
                identities = age_identities_read(options["identity"])
                if not archive_encrypted(archive):
                    self.stdout.write(f"{archive} is not encrypted: --identity is not needed.")
            if options["check"]:
                manifest = archive_verify(archive, identities=identities)
                self.stdout.write(
                    f"{archive} is intact: written {manifest.created_at}, "
                    f"{len(manifest.tables)} tables, {sum(manifest.tables.values())} rows, "
                    f"{len(manifest.media)} media files."
                )
                return
            self._restore(
                archive,
                identities=identities,
                force=options["force"],
                disconnect=options["force_disconnect"],
            )
        except BackupError as error:
            raise CommandError(str(error)) from error

    def _restore(
        self,
        archive: Path,
        *,
        identities: list[x25519.Identity],
        force: bool,
        disconnect: bool,
    ) -> None:
        database = dict(connections["default"].settings_dict)
        application_role = application_user()
        owner = owner_credentials()
        if owner is None:
            self.stdout.write(
                self.style.WARNING(
                    "DATABASE_OWNER_URL is not set: restoring as the application role "
                    "(DATABASE_URL), which then owns the tables (docs/architecture.md)."
                )
            )
            application_role = ""
        else:
            database.update(owner)
        # Our own connections' server processes leave a moment after the close:
        # the restore waits for them rather than take them for the clinic's.
        closed_own = [
            conn.connection.info.backend_pid
            for conn in connections.all(initialized_only=True)
            if conn.connection is not None and not conn.connection.closed
        ]
        connections.close_all()
        result = restore(
            archive=archive,
            database=database,
            media_root=Path(str(settings.MEDIA_ROOT)),
            application_role=application_role,
            audit_head_file=settings.AUDIT_CHAIN_HEAD_FILE,
            identities=identities,
            force=force,
            disconnect=disconnect,
            closed_own=closed_own,
            say=self.stdout.write,
        )
        head = (
            f"link {result.audit_head[0]} ({result.audit_head[1]})"
            if result.audit_head
            else "no links"
        )
        logger.warning(
            "Restored %s (written %s): %d tables, %d rows, %d media files; audit chain head %s",
            archive.name,
            result.created_at,
            result.tables,
            result.rows,
            result.media_files,
            head,
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Restored {archive.name} (written {result.created_at}): {result.tables} "
                f"tables, {result.rows} rows, {result.media_files} media files."
            )
        )
        where = settings.AUDIT_CHAIN_HEAD_FILE
        if not where:
            self.stdout.write("AUDIT_CHAIN_HEAD_FILE is unset: no audit chain head written.")
        elif result.audit_head:
            self.stdout.write(f"Audit chain head {head} written to {where}.")
        else:
            self.stdout.write(f"The audit trail has no links yet: {where} removed.")
        self.stdout.write(
            "Next: `manage.py migrate` (brings the schema up to this version of the clinic), "
            "`manage.py audit_verify`, then start the clinic and check /healthz."
        )

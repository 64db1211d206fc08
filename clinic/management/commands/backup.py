"""Back up the database and the media folder into one archive, then prune old archives."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections
from django.utils import timezone
from pyrage import x25519

from clinic.backup import (
    BackupError,
    archives,
    archives_prune,
    backup_create,
    backup_recipients,
    next_run,
)

logger = logging.getLogger("clinic.backup")

# After a failed scheduled backup, the next try comes this much later (or at
# the next scheduled time, if that is sooner).
RETRY_AFTER = timedelta(hours=1)


def _time_of_day(value: str) -> str:
    hour, sep, minute = value.partition(":")
    if not (sep and hour.isdigit() and minute.isdigit()) or not (
        0 <= int(hour) < 24 and 0 <= int(minute) < 60
    ):
        raise ValueError(value)
    return f"{int(hour):02d}:{int(minute):02d}"


class Command(BaseCommand):
    help = (
        "Writes one archive of the database (pg_dump, as the application role) and of the "
        "media folder into BACKUP_DIR, with a manifest of checksums, encrypted with age to the "
        "public keys of BACKUP_AGE_RECIPIENTS, then deletes the archives that the retention "
        "(BACKUP_KEEP_DAILY days, BACKUP_KEEP_WEEKLY weeks) does not keep."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--no-prune", action="store_true", help="Keep every archive; delete none."
        )
        parser.add_argument(
            "--daily-at",
            metavar="HH:MM",
            type=_time_of_day,
            help=(
                "Keep running: back up every day at this time (clinic time zone), and at once "
                "when the newest archive is more than a day old."
            ),
        )
        parser.add_argument(
            "--newest-within",
            metavar="HOURS",
            type=float,
            help=(
                "Back up nothing: exit with status 1 unless an archive newer than this "
                "exists (a health check)."
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        backup_dir = Path(str(settings.BACKUP_DIR))
        if options["newest_within"] is not None:
            self._check_recent(backup_dir, options["newest_within"])
            return
        try:
            # Settings refused at once: a schedule would only fail every night.
            recipients = backup_recipients()
            if options["daily_at"]:
                self._schedule(
                    options["daily_at"], prune=not options["no_prune"], recipients=recipients
                )
                return
            self._once(prune=not options["no_prune"], recipients=recipients)
        except BackupError as error:
            raise CommandError(str(error)) from error

    def _once(self, *, prune: bool, recipients: list[x25519.Recipient]) -> None:
        backup_dir = Path(str(settings.BACKUP_DIR))
        now = timezone.now()
        result = backup_create(
            backup_dir=backup_dir,
            database=dict(connections["default"].settings_dict),
            media_root=Path(str(settings.MEDIA_ROOT)),
            now=now,
            recipients=recipients,
        )
        head = f"link {result.audit_head[0]}" if result.audit_head else "no links yet"
        encryption = (
            f"encrypted to {', '.join(result.recipients)}" if result.recipients else "NOT encrypted"
        )
        message = (
            f"Backup written: {result.path} ({result.size / 1024 / 1024:.1f} MiB, {encryption}; "
            f"{result.tables} tables, {result.rows} rows, {result.media_files} media files; "
            f"audit chain head: {head})."
        )
        logger.info(message)
        self.stdout.write(message)
        if not result.recipients:
            self.stdout.write(
                self.style.WARNING(
                    "The archive is not encrypted (no BACKUP_AGE_RECIPIENTS): it holds health "
                    "records in plain form. Set BACKUP_AGE_RECIPIENTS for real data."
                )
            )
        if prune:
            removed = archives_prune(
                backup_dir,
                now=now,
                zone=timezone.get_default_timezone(),
                keep_daily=settings.BACKUP_KEEP_DAILY,
                keep_weekly=settings.BACKUP_KEEP_WEEKLY,
            )
            for path in removed:
                self.stdout.write(f"Old backup deleted: {path.name}")
            if removed:
                logger.info("Old backups deleted: %d", len(removed))

    def _schedule(self, at: str, *, prune: bool, recipients: list[x25519.Recipient]) -> None:
        zone = timezone.get_default_timezone()
        backup_dir = Path(str(settings.BACKUP_DIR))
        found = archives(backup_dir)
        now = timezone.now()
        due = (
            now if not found or now - found[-1].at > timedelta(days=1) else next_run(now, at, zone)
        )
        self.stdout.write(f"Backups every day at {at} ({zone}); archives in {backup_dir}.")
        while True:
            wait = (due - timezone.now()).total_seconds()
            if wait > 0:
                self.stdout.write(f"Next backup at {timezone.localtime(due):%Y-%m-%d %H:%M %Z}.")
                self.stdout.flush()
                time.sleep(wait)
            try:
                self._once(prune=prune, recipients=recipients)
                due = next_run(timezone.now(), at, zone)
            except Exception as error:
                # Kept running: a full disk or a database restarting must not end
                # the schedule. The health check sees the archives grow old.
                logger.exception("Backup failed")
                self.stderr.write(f"Backup failed: {error}")
                now = timezone.now()
                due = min(now + RETRY_AFTER, next_run(now, at, zone))
            finally:
                connections.close_all()

    def _check_recent(self, backup_dir: Path, hours: float) -> None:
        found = archives(backup_dir)
        if not found:
            raise CommandError(f"No backup in {backup_dir}.")
        age = timezone.now() - found[-1].at
        if age > timedelta(hours=hours):
            raise CommandError(
                f"The newest backup, {found[-1].path.name}, is {age.total_seconds() / 3600:.1f} "
                f"hours old (more than {hours:g})."
            )
        self.stdout.write(f"Newest backup: {found[-1].path.name}.")

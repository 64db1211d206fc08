"""Check the audit trail's hash chain; exit 1 naming the first broken link."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from clinic.auditchain import audit_chain_verify, audit_seal


class Command(BaseCommand):
    help = (
        "Seals the events not yet sealed, then checks the audit trail's hash chain from "
        "its first link. Exits with status 1 and names the first event or link that no "
        "longer matches."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--no-seal",
            action="store_true",
            help="Check only; do not seal pending events first.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["no_seal"]:
            while audit_seal():
                pass
        report = audit_chain_verify()
        if report.fault is not None:
            raise CommandError(
                f"The audit trail is broken at {report.fault} ({report.links} links checked)."
            )
        self.stdout.write(
            f"The audit trail is intact: {report.links} links, chain head {report.head}."
        )

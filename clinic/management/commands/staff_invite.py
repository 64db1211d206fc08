"""Invite a member of staff from the server's command line: the first manager
of a new installation, who then invites everyone else from the staff page."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from clinic.refusals import RefusedError
from clinic.roles import Role
from clinic.staff import staff_invitation_email, staff_invite


class Command(BaseCommand):
    help = (
        "Invite a member of staff by email (default role: manager). Prints the invitation's "
        "link, which works once, and emails it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email", help="The person's own email address.")
        parser.add_argument("--first-name", required=True)
        parser.add_argument("--last-name", default="")
        parser.add_argument(
            "--role",
            action="append",
            choices=[role.value for role in Role],
            help="A role to give (repeat for several); manager when none is given.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            issued = staff_invite(
                invited_by=None,
                email=options["email"],
                first_name=options["first_name"],
                last_name=options["last_name"],
                roles=options["role"] or [Role.MANAGER.value],
            )
        except RefusedError as refusal:
            raise CommandError(refusal.message) from refusal
        invitation = issued.invitation
        sent = staff_invitation_email(issued)
        self.stdout.write(
            f"Invitation for {invitation.email} ({', '.join(invitation.role_labels)}), "
            f"working once until {invitation.expires_at:%Y-%m-%d %H:%M} UTC:"
        )
        self.stdout.write(f"  {issued.url}")
        self.stdout.write(
            "Emailed to them." if sent else "The email could not be sent: give them the link."
        )

"""Staff roles and the permissions each one carries.

Roles are Django groups (a user may hold several). The groups are created by
migration 0003; their permissions are synchronised from ROLE_PERMISSIONS after
every migrate, so a feature app adds its permissions here and nowhere else.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    RECEPTIONIST = "receptionist", _("Receptionist")
    PRACTITIONER = "practitioner", _("Practitioner")
    MANAGER = "manager", _("Manager")


STAFF_ROLES = frozenset(Role)

# The roles that open a patient's clinical documents on staff pages (signed
# consents, aftercare sheets). Only they may route those documents to an
# address (a portal invitation): no other role can send them to itself.
# Equal to the audience of those pages (tests/treatments/test_routing.py).
CLINICAL_DOCUMENT_ROLES: frozenset[Role] = frozenset({Role.PRACTITIONER})

# "app_label.codename" for each role. Permissions that do not exist yet (an
# app not migrated) are skipped and picked up by the next migrate.
ROLE_PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.RECEPTIONIST: frozenset(),
    Role.PRACTITIONER: frozenset({"clinic.view_patient_access_history"}),
    Role.MANAGER: frozenset({"clinic.view_auditevent"}),
}

"""Template context shared by every page: clinic name and the user's navigation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from django.utils.functional import SimpleLazyObject
from django.utils.translation import gettext_lazy as _

from clinic import clinic_settings
from clinic.roles import Role


@dataclass(frozen=True)
class NavItem:
    label: Any  # lazy translation
    url_name: str
    roles: frozenset[Role]
    # In the "Manage" menu rather than the bar: pages a manager opens now and
    # then, which would otherwise push the bar onto two lines.
    in_manage_menu: bool = False

    @property
    def url(self) -> str:
        return reverse(self.url_name)


# The main navigation. An entry shows only to the roles that may open it; each
# feature adds its entries here as its routes arrive.
NAVIGATION: tuple[NavItem, ...] = (
    NavItem(_("Home"), "home", frozenset(Role)),
    NavItem(_("Calendar"), "treatments:calendar", frozenset(Role)),
    NavItem(_("Patients"), "patients:list", frozenset(Role)),
    NavItem(_("Tasks"), "treatments:tasks", frozenset({Role.PRACTITIONER})),
    NavItem(
        _("Follow-up"),
        "treatments:reminder_followups",
        frozenset({Role.RECEPTIONIST, Role.PRACTITIONER}),
    ),
    NavItem(_("Catalogue"), "treatments:catalogue", frozenset({Role.PRACTITIONER, Role.MANAGER})),
    NavItem(_("Consent forms"), "consent:form_list", frozenset({Role.PRACTITIONER, Role.MANAGER})),
    NavItem(_("Reports"), "treatments:reports", frozenset({Role.MANAGER})),
    NavItem(_("Staff"), "staff_list", frozenset({Role.MANAGER}), in_manage_menu=True),
    NavItem(
        _("Clinic settings"), "clinic_settings", frozenset({Role.MANAGER}), in_manage_menu=True
    ),
    NavItem(
        _("Import patients"), "patients:import_list", frozenset({Role.MANAGER}), in_manage_menu=True
    ),
    NavItem(_("Audit log"), "audit_log", frozenset({Role.MANAGER}), in_manage_menu=True),
)


def clinic(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    nav: list[NavItem] = []
    if user is not None and user.is_authenticated:
        nav = [item for item in NAVIGATION if user.has_any_role(item.roles)]
    return {
        "navigation_manage": [item for item in nav if item.in_manage_menu],
        # Read when a page prints it: once a request (clinic/clinic_settings.py).
        "clinic_name": SimpleLazyObject(lambda: clinic_settings.current().clinic_name),
        "navigation": [item for item in nav if not item.in_manage_menu],
        "session_idle_minutes": int(settings.SESSION_IDLE_TIMEOUT.total_seconds() // 60),
        "lockout_minutes": int(settings.AXES_COOLOFF_TIME.total_seconds() // 60),
    }

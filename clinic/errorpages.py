"""Where an error page leads, and in whose words.

Patients reach the clinic only through the portal and the links emailed to
them; an error on those pages speaks to a patient and leads to the portal's
sign-in page, never to the staff dashboard (which would ask them for a staff
password). Everywhere else the pages speak to staff.

The 413 and 500 pages are rendered without the request's session or user (the
413 before the session is loaded, the 500 when the database may be down): for
them the address alone decides, and nothing here reads the database.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _

# The patients' pages, by URL name (treatments/urls/portal.py): the portal,
# under the first, and the emailed download links, under the second's prefix.
PORTAL_ROUTE = "treatments:portal_home"
LINK_ROUTE = "treatments:link_open"
PORTAL_SIGN_IN_ROUTE = "treatments:portal_request"
_SAMPLE_LINK = "sample"


@cache
def patient_path_prefixes() -> tuple[str, ...]:
    """The path prefixes of the patients' pages: the portal's ("/treatments/portal/")
    and the emailed links' ("/treatments/d/"). Empty if those routes are absent."""
    try:
        portal = reverse(PORTAL_ROUTE)
        link = reverse(LINK_ROUTE, kwargs={"token": _SAMPLE_LINK})
    except NoReverseMatch:
        return ()
    return (portal, link[: link.index(_SAMPLE_LINK)])


def is_patient_path(path: str) -> bool:
    """Whether `path` is one of the patients' pages (the portal, an emailed link)."""
    return path.startswith(patient_path_prefixes())


def _is_staff(user: Any) -> bool:
    return bool(
        user is not None and user.is_authenticated and not getattr(user, "is_portal_patient", False)
    )


def speaks_to_patient(request: HttpRequest, *, user_known: bool = True) -> bool:
    """Whether an error on this request should speak to a patient: it is on
    one of the patients' pages and, when the user is known (`user_known`: the
    session was loaded), nobody on the staff is signed in."""
    if not is_patient_path(request.path):
        return False
    return not (user_known and _is_staff(getattr(request, "user", None)))


def way_out(request: HttpRequest, *, patient: bool) -> tuple[str, str]:
    """(address, label) of the error page's button: the portal's sign-in page
    for a patient, the dashboard for staff."""
    if patient:
        try:
            return reverse(PORTAL_SIGN_IN_ROUTE), _("Go to the portal sign-in page")
        except NoReverseMatch:
            pass
    return reverse("home"), _("Go to the dashboard")


def referring_page(request: HttpRequest) -> str | None:
    """The page the request came from (its Referer), when it is on this site:
    what "Go back" leads to. None for another site, or none given."""
    referer = request.META.get("HTTP_REFERER", "")
    if not referer:
        return None
    try:
        host = request.get_host()
    except DisallowedHost:
        return None
    if not url_has_allowed_host_and_scheme(
        referer, allowed_hosts={host}, require_https=request.is_secure()
    ):
        return None
    return referer


def error_page_context(request: HttpRequest, *, user_known: bool = True) -> dict[str, Any]:
    """What every error page needs to speak to the right person and lead them on:
    `patient_page`, `home_url` and `home_label`."""
    patient = speaks_to_patient(request, user_known=user_known)
    home_url, home_label = way_out(request, patient=patient)
    return {"patient_page": patient, "home_url": home_url, "home_label": home_label}

"""Who may open which route: one declaration per view, enforced in one place.

Every view carries an `Access` declaration, made with one of the decorators
below. `AccessPolicyMiddleware` refuses any resolved view without one (deny by
default), and the URL-walk test fails on an undeclared route, so a new route
cannot ship unclassified.

Object-level checks (is this patient visible to this user?) live in each app's
selectors; this module decides only by role.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from clinic.models import User
from clinic.roles import Role

V = TypeVar("V", bound=Callable[..., Any])


@dataclass(frozen=True)
class Access:
    """The audience of a route."""

    kind: str  # "public", "staff", "authenticated", "portal", "admin"
    roles: frozenset[Role] = frozenset()

    def allows(self, user: Any) -> bool:
        if self.kind == "public":
            return True
        if not user.is_authenticated:
            return False
        if self.kind == "authenticated":
            return True
        if self.kind == "staff":
            return bool(user.has_any_role(self.roles))
        if self.kind == "admin":
            return bool(user.is_superuser)
        if self.kind == "portal":
            # A patient: an active user with a portal account and no staff role.
            return bool(user.is_portal_patient)
        return False

    def describe(self) -> str:
        if self.kind == "staff":
            return "staff: " + ", ".join(sorted(r.value for r in self.roles))
        return self.kind


def _declare(view: V, access: Access) -> V:
    view.access = access  # type: ignore[attr-defined]
    return view


def public(view: V) -> V:
    """Anyone, signed in or not (login, password reset, health check)."""
    return _declare(login_not_required(view), Access("public"))


def authenticated(view: V) -> V:
    """Any signed-in user whatever the role (home, logout, own password)."""
    return _declare(view, Access("authenticated"))


def portal(view: V) -> V:
    """A patient signed in to the portal (never staff)."""
    return _declare(view, Access("portal"))


def staff(*roles: Role) -> Callable[[V], V]:
    """Signed-in staff holding at least one of these roles."""
    if not roles:
        raise ValueError("staff() needs at least one role")

    def decorator(view: V) -> V:
        return _declare(view, Access("staff", frozenset(roles)))

    return decorator


def refused_as(task: Any) -> Callable[[V], V]:
    """Name what a route does ("Merging records is done by a practitioner."),
    for the page that refuses it to someone whose role does not include it:
    that page then says who does it instead of a general sentence."""

    def decorator(view: V) -> V:
        view.refused_as = task  # type: ignore[attr-defined]
        return view

    return decorator


def refusal_of(view: Callable[..., Any]) -> Any:
    """What `refused_as` said a view does, or None."""
    return getattr(view, "refused_as", None) or getattr(
        getattr(view, "view_class", None), "refused_as", None
    )


# Who does what a refused page does, as the refusal names them.
ROLE_WHO = {
    Role.RECEPTIONIST: gettext_lazy("a receptionist"),
    Role.PRACTITIONER: gettext_lazy("a practitioner"),
    Role.MANAGER: gettext_lazy("a manager"),
}


def refusal_words(request: HttpRequest) -> dict[str, Any]:
    """What the "not allowed" page (403) says beyond its heading: where the
    route is for other roles, `who` does it ("a practitioner") and `task`
    what it is (`refused_as`, or a general sentence naming them), so nobody
    is sent to ask the manager for what is a practitioner's to do, least of
    all the manager (`is_manager`)."""
    user = request.user
    match = request.resolver_match
    access = access_of(match.func) if match is not None else None
    words: dict[str, Any] = {
        "who": "",
        "task": "",
        "is_manager": bool(user.is_authenticated and Role.MANAGER in getattr(user, "roles", ())),
    }
    if (
        match is None
        or access is None
        or access.kind != "staff"
        or not user.is_authenticated
        or access.allows(user)
    ):
        return words
    who = str(_(" or ").join(str(ROLE_WHO[role]) for role in Role if role in access.roles))
    named = refusal_of(match.func)
    words["who"] = who
    words["task"] = str(named) if named else _("Only %(who)s uses this page.") % {"who": who}
    return words


def signed_in_user(request: HttpRequest) -> User:
    """The user of a route that needs sign-in: the access policy has already
    refused anonymous visitors by the time a view runs."""
    user = request.user
    assert isinstance(user, User)
    return user


def access_of(view: Callable[..., Any]) -> Access | None:
    """The declaration of a view function (also for class-based views)."""
    access = getattr(view, "access", None)
    if access is None:
        view_class = getattr(view, "view_class", None)
        access = getattr(view_class, "access", None)
    return access

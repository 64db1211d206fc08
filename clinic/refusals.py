"""The one refusal type every service raises, and how a view answers it.

A service refuses by raising a `RefusedError` (or a subclass named for its area,
such as `BookingRefusedError`): a plain sentence for the person, the form
field it concerns, and a short code naming the kind of refusal. A service
never chooses an HTTP status: `refusal_status` does that here, from the
refusal's `kind`, and `RefusalMiddleware` answers any refusal a view did not
catch with that status and the sentence, so that a refusal is never a server
error.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from django.shortcuts import render
from django.utils.translation import gettext_lazy

if TYPE_CHECKING:
    from collections.abc import Callable

    from django.http import HttpRequest, HttpResponse


class RefusalKind(StrEnum):
    """Why something was refused, which decides the answer a page gives."""

    # The request itself is wrong (a value out of range, a missing line): change it and send again.
    INVALID = "invalid"
    # The record's state forbids it now (cancelled, already completed, saved by someone else).
    CONFLICT = "conflict"
    # This person may not do this to this record (a rule of roles, not of the record's state).
    FORBIDDEN = "forbidden"
    # What was asked for no longer exists or no longer works (a used or expired link).
    GONE = "gone"


STATUS_OF_KIND: dict[RefusalKind, int] = {
    RefusalKind.INVALID: 400,
    RefusalKind.FORBIDDEN: 403,
    RefusalKind.CONFLICT: 409,
    RefusalKind.GONE: 410,
}


class RefusedError(Exception):
    """A service's refusal of what it was asked.

    `message` is a plain sentence for the person using the page, shown as it
    is (no clinical detail unless the service's callers are clinical staff);
    `field` the form field it concerns (None: the whole form); `code` a short
    stable slug naming the reason, for views and tests; `kind` a
    `RefusalKind`, from which the view chooses its answer. Subclasses set a
    default `code` and `kind` of their own.
    """

    code: str = "refused"
    kind: RefusalKind = RefusalKind.INVALID
    # The sentence when the service gives none.
    default_message: object = gettext_lazy("This could not be done as asked.")

    def __init__(
        self,
        message: object = None,
        *,
        field: str | None = None,
        code: str | None = None,
        kind: RefusalKind | None = None,
    ) -> None:
        self.message = str(self.default_message if message is None else message)
        super().__init__(self.message)
        self.field = field
        if code is not None:
            self.code = code
        if kind is not None:
            self.kind = kind


def refusal_status(refusal: RefusedError) -> int:
    """The HTTP status a page answers `refusal` with: 400, 403, 409 or 410."""
    return STATUS_OF_KIND[refusal.kind]


class RefusalMiddleware:
    """Answers a `RefusedError` that a view let through with its status and its
    sentence on the refusal page, instead of a server error. Views that can
    keep what was typed catch refusals themselves and show the form again."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, RefusedError):
            return None
        status = refusal_status(exception)
        return render(
            request,
            "refusal.html",
            {"refusal": exception, "response_status": status},
            status=status,
        )

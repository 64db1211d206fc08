"""The current request's context (client IP, request id), for audit and logs.

Kept free of model imports so that logging can use it before apps load.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestContext:
    ip: str | None
    request_id: str


_request_context: ContextVar[RequestContext | None] = ContextVar("request_context", default=None)


def set_request_context(ctx: RequestContext | None) -> Token[RequestContext | None]:
    return _request_context.set(ctx)


def reset_request_context(token: Token[RequestContext | None]) -> None:
    _request_context.reset(token)


def get_request_context() -> RequestContext | None:
    return _request_context.get()


def current_request_id() -> str:
    ctx = _request_context.get()
    return ctx.request_id if ctx else "-"

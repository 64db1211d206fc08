"""Reading what a browser posted: JSON carried in a form field.

A posted value is whatever the sender chose to send. `json.loads` raises
`ValueError` for text that is not JSON, but `RecursionError` for text nested
deeper than the interpreter's recursion limit (``[[[[...]]]]``), which no
`except ValueError` catches: every form field holding JSON reads it here.
"""

from __future__ import annotations

import json
from typing import Any


class UnreadablePostError(ValueError):
    """The posted text is not JSON this product can read."""


def json_from_post(text: str, *, max_depth: int = 8) -> Any:
    """The JSON value in `text`, posted by a browser.

    Raises `UnreadablePostError` (a `ValueError`) when the text is not JSON, nests
    arrays or objects more than `max_depth` levels deep, or holds a number
    Python refuses (an integer of more than 4,300 digits). Nothing a sender
    posts makes it raise anything else.
    """
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise UnreadablePostError(text[:40]) from None
    if _depth(value, max_depth) > max_depth:
        raise UnreadablePostError(text[:40])
    return value


def _depth(value: Any, limit: int) -> int:
    """How deep `value` nests, counting no further than `limit` + 1."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, list | dict):
            level += 1
            deepest = max(deepest, level)
            if level > limit:
                return level
            stack.extend(
                (child, level) for child in (item.values() if isinstance(item, dict) else item)
            )
    return deepest

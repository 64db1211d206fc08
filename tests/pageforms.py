"""A page's form as a browser sends it (no tests here): every field the form
holds, with the value shown, so a test types over what a person would see and
posts the rest untouched, hidden fields included. Text areas come back with
"\\r\\n" line endings, as browsers send them."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any


class _FormReader(HTMLParser):
    def __init__(self, action: str | None) -> None:
        super().__init__(convert_charrefs=True)
        self.action = action
        self.depth = 0  # inside the wanted form while > 0
        self.done = False
        self.fields: list[tuple[str, str]] = []
        self._select: str | None = None
        self._select_values: list[str] = []
        self._select_first: str | None = None
        self._option: str | None = None
        self._textarea: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "form" and not self.done and self.depth == 0:
            # Without an action asked for: the page's own form (posted to the page).
            wanted = found.get("action", "") == (self.action or "")
            if wanted and found.get("method", "get").lower() == "post":
                self.depth = 1
            return
        if not self.depth:
            return
        name = found.get("name")
        if tag == "input" and name:
            kind = found.get("type", "text")
            if kind in ("checkbox", "radio"):
                if "checked" in found:
                    self.fields.append((name, found.get("value", "on")))
            elif kind not in ("submit", "button", "file", "image", "reset"):
                self.fields.append((name, found.get("value", "")))
        elif tag == "select" and name:
            self._select, self._select_values, self._select_first = name, [], None
        elif tag == "option" and self._select is not None:
            self._option = found.get("value", "")
            if self._select_first is None:
                self._select_first = self._option
            if "selected" in found:
                self._select_values.append(self._option)
        elif tag == "textarea" and name:
            self._textarea, self._text = name, []

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if not self.depth:
            return
        if tag == "form":
            self.depth, self.done = 0, True
        elif tag == "select" and self._select is not None:
            values = self._select_values or (
                [self._select_first] if self._select_first is not None else []
            )
            self.fields.extend((self._select, v) for v in values)
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            # A browser reads every line ending as "\n", drops one leading
            # newline, and sends every line ending as "\r\n".
            text = "".join(self._text).replace("\r\n", "\n").replace("\r", "\n")
            text = text[1:] if text.startswith("\n") else text
            self.fields.append((self._textarea, text.replace("\n", "\r\n")))
            self._textarea = None


def form_data(page: str, *, action: str | None = None, **typed: Any) -> dict[str, Any]:
    """The first POST form of `page` that posts to `action` (by default, to
    the page itself: no action attribute) as a browser would send it, with
    `typed` values typed over it (a list for several choices; None to untick
    or clear). Raises AssertionError when the page has no such form."""
    reader = _FormReader(action)
    reader.feed(page)
    assert reader.done, f"no post form {action or ''} on the page"
    data: dict[str, Any] = {}
    for name, value in reader.fields:
        if name in data:
            previous = data[name]
            data[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            data[name] = value
    for name, value in typed.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value.replace("\n", "\r\n") if isinstance(value, str) else value
    return data

"""The docs' pictures: every picture a page of docs/ shows is there, and every
picture in docs/images/ is shown by a page (no stale one left behind when a
screen's picture is renamed or dropped; `make guide-screens` re-takes them)."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"
# Markdown's picture: ![what it shows](images/name.png)
PICTURE = re.compile(r"!\[([^\]]*)\]\((images/[^)\s]+)\)")


def _pictures() -> list[tuple[Path, str, str]]:
    found = []
    for page in sorted(DOCS.glob("*.md")):
        for alt, target in PICTURE.findall(page.read_text(encoding="utf-8")):
            found.append((page, alt, target))
    return found


def test_every_picture_shown_in_the_docs_exists_and_says_what_it_shows() -> None:
    pictures = _pictures()
    assert pictures, "the user guide shows its screens"
    missing = [
        f"{page.name}: {target}" for page, _alt, target in pictures if not (DOCS / target).is_file()
    ]
    assert missing == []
    # A screen reader reads the alt text instead: a sentence, not a file name.
    too_short = [target for _page, alt, target in pictures if len(alt.split()) < 8]
    assert too_short == []


def test_every_picture_in_docs_images_is_shown_by_a_page() -> None:
    shown = {target for _page, _alt, target in _pictures()}
    stored = {f"images/{path.name}" for path in (DOCS / "images").iterdir()}
    assert sorted(stored - shown) == []

"""One phrase for one state: a booking whose records are in place is "ready
to treat" (and "Not ready" otherwise) on every page, message, email and in
the user's documents. The desk's flag says the paperwork is in place (history,
consent, allergy reading), not that the patient is safe: the practitioner
still asks the day-of-treatment questions (design.md, gate 6). "Safe to
treat" must not come back beside it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ("clinic", "patients", "consent", "treatments")
OTHER = re.compile(r"safe[\s-]+to[\s-]+treat|ready\s+for\s+treatment", re.IGNORECASE)
GETTEXT = {"_", "gettext", "gettext_lazy", "ngettext", "ngettext_lazy", "pgettext", "pgettext_lazy"}


def _translatable_strings(path: Path) -> list[str]:
    """The strings a person reads: those passed to gettext and its kin."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
        if name in GETTEXT:
            found += [
                arg.value
                for arg in node.args
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            ]
    return found


def test_no_page_message_or_email_says_safe_to_treat() -> None:
    said = []
    for template in sorted((ROOT / "templates").rglob("*")):
        if template.suffix not in {".html", ".txt"}:
            continue
        # Test ids are for the browser tests, never read by a person.
        words = re.sub(r'data-testid="[^"]*"', "", template.read_text())
        if OTHER.search(words):
            said.append(str(template.relative_to(ROOT)))
    for app in APPS:
        for source in sorted((ROOT / app).rglob("*.py")):
            if "migrations" in source.parts:
                continue
            if any(OTHER.search(text) for text in _translatable_strings(source)):
                said.append(str(source.relative_to(ROOT)))
    assert said == []


def test_the_users_documents_say_ready_to_treat() -> None:
    for doc in (ROOT / "README.md", ROOT / "docs" / "user-guide.md"):
        text = doc.read_text()
        # Image files keep their names; what a person reads does not say it.
        words = re.sub(r"\(images/[^)]*\)", "", text)
        assert not OTHER.search(words), doc.name
        assert "ready to treat" in words.lower(), doc.name

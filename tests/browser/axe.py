"""Run axe-core (node_modules/axe-core, from the npm registry) in a Playwright page.

The script is evaluated in the page through the browser's debugging protocol,
the way a developer pastes a script into the console: the page's own Content
Security Policy, which refuses inline scripts, stays exactly as the clinic
serves it. A <script> tag added to the page would be refused by it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from django.conf import settings
from playwright.sync_api import Page

AXE_SCRIPT = Path(settings.BASE_DIR) / "node_modules" / "axe-core" / "axe.min.js"

# WCAG 2.0, 2.1 and 2.2, levels A and AA: the rules axe tags with these.
WCAG_AA_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa")

_RUN = """async ([within, runOnly]) => {
  const results = await axe.run(within || document, {runOnly, resultTypes: ["violations"]});
  return results.violations.map((v) => ({
    id: v.id,
    impact: v.impact,
    help: v.help,
    helpUrl: v.helpUrl,
    nodes: v.nodes.map((n) => ({
      target: n.target.map((t) => Array.isArray(t) ? t.join(" >>> ") : t).join(" "),
      summary: n.failureSummary || "",
    })),
  }));
}"""


@cache
def _axe_source() -> str:
    if not AXE_SCRIPT.exists():
        raise FileNotFoundError(f"{AXE_SCRIPT} is missing: run `npm ci` (make test does)")
    # Wrapped in a function so that evaluate() runs it as a statement, whatever
    # the minified file starts with.
    return "() => {\n" + AXE_SCRIPT.read_text(encoding="utf-8") + "\n}"


def axe_violations(
    page: Page, *, within: str | None = None, rules: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """The WCAG 2.2 AA violations axe finds in the page as it is now, each with
    its rule id, impact, help text and URL, and the nodes as CSS selectors.
    `within` (a CSS selector) checks only that part of the page, `rules` only
    those rules (axe's ids, say "color-contrast")."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(_axe_source())
    run_only = (
        {"type": "rule", "values": list(rules)}
        if rules
        else {"type": "tag", "values": list(WCAG_AA_TAGS)}
    )
    violations: list[dict[str, Any]] = page.evaluate(_RUN, [within, run_only])
    return violations


def describe(where: str, violations: list[dict[str, Any]]) -> list[str]:
    """One readable block per violation: where, the rule, its impact, each node's
    selector and what to fix, and the rule's help page."""
    lines = []
    for violation in violations:
        lines.append(
            f"{where}: {violation['id']} ({violation['impact']}): {violation['help']}"
            f"\n    {violation['helpUrl']}"
        )
        for node in violation["nodes"]:
            summary = " ".join(node["summary"].split())
            lines.append(f"    - {node['target']}: {summary}")
    return lines

"""Browser-test harness: one headless Chromium per session, one fresh page per test.

Playwright drives Debian's Chromium (/usr/bin/chromium); `playwright install`
is never needed. Every page collects console errors, uncaught exceptions and
Content-Security-Policy violations, so a test can assert that none happened.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.db import connections
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

# Playwright's sync API runs an event loop in the main thread; without this the
# test's own ORM calls (creating personas, reading devices) would raise
# SynchronousOnlyOperation. The live server answers from its own thread.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

VIEWPORTS: dict[str, dict[str, int]] = {
    "desktop": {"width": 1366, "height": 900},
    "tablet": {"width": 768, "height": 1024},
}

SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"

# Milliseconds: the live server is local, so anything slower than this is a hang.
TIMEOUT_MS = 10_000

# A page listener cannot see CSP reports directly, so a tiny script (injected by
# Playwright, outside the page's CSP) turns each violation into a console error.
_CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"}`);
});
"""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/browser/ is a browser test."""
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.browser)


@dataclass
class BrowserPage:
    """A Playwright page plus everything the browser complained about on it."""

    page: Page
    viewport: str
    errors: list[str] = field(default_factory=list)

    def errors_except(self, *urls: str) -> list[str]:
        """The errors, ignoring 'failed to load' reports for the given URLs (say, a 404 page)."""
        return [e for e in self.errors if not any(e.endswith(f"<{url}>") for url in urls)]


# The pages name their icon (static/favicon.svg), so no request may 404.
IGNORED_URL_SUFFIXES: tuple[str, ...] = ()


def _console_error(message: ConsoleMessage) -> str | None:
    if message.type != "error":
        return None
    url = message.location.get("url", "") if message.location else ""
    if url.endswith(IGNORED_URL_SUFFIXES):
        return None
    return f"console: {message.text} <{url}>"


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    # Playwright's sync API leaves its event loop marked as running in this
    # thread, and from then on Django keeps database connections per async
    # context rather than per thread: the thread's connection would be left
    # open, unseen, for the rest of the run (a restore test counts it as the
    # clinic still connected). Close it first, and the context's at the end.
    connections.close_all()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()
            connections.close_all()


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Callable[[str], BrowserPage]]:
    """Factory: `new_page("desktop")` or `new_page("tablet")`, each in a fresh context."""
    contexts = []

    def make(viewport: str = "desktop") -> BrowserPage:
        context = browser.new_context(viewport=VIEWPORTS[viewport], locale="en-GB")
        context.set_default_timeout(TIMEOUT_MS)
        context.add_init_script(_CSP_LISTENER)
        contexts.append(context)
        page = context.new_page()
        tab = BrowserPage(page=page, viewport=viewport)

        def on_console(message: ConsoleMessage) -> None:
            if (error := _console_error(message)) is not None:
                tab.errors.append(error)

        page.on("console", on_console)
        page.on("pageerror", lambda exc: tab.errors.append(f"pageerror: {exc}"))
        return tab

    yield make
    for context in contexts:
        context.close()


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page PNG under tests/artifacts/screenshots/ (git-ignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), full_page=True)
    return path

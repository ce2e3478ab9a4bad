"""Drive Debian's chromium with Playwright, and keep screenshots as test artefacts."""

from __future__ import annotations

import os
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.e2e.server import ROOT

CHROMIUM = "/usr/bin/chromium"
# Headless, and nothing that would reach the network behind the test's back.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = ROOT / "test-artifacts"
_opened: list[BrowserContext] = []  # every page's context, until close_pages


def launch(*extra_args: str):
    """Start Playwright and chromium (with ``extra_args``); return both, to be closed by the caller."""
    if not os.access(CHROMIUM, os.X_OK):
        raise RuntimeError(f"{CHROMIUM} is missing: scripts/install-test-services.sh installs Debian's chromium")
    playwright = sync_playwright().start()
    try:
        return playwright, playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args])
    except Exception:
        playwright.stop()
        raise


def new_page(browser: Browser) -> Page:
    """Open a page in a fresh context (its own cookies), failing on any page script error."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    _opened.append(context)
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # A refused login is a 401 by design; Chromium reports every such status as a console error.
    page.on("console", lambda msg: errors.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource") else None)
    page.script_errors = errors
    return page


def close_pages() -> None:
    """Close every page opened since the last call: a page left open keeps its keep-alive connections, which a
    stopping worker waits out (5 s). Those of a browser already closed went with it."""
    while _opened:
        context = _opened.pop()
        if context.browser is not None and context.browser.is_connected():
            context.close()


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot under test-artifacts/ and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"admin-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path

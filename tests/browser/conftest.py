"""A real headless Chromium (Debian's package) driven by Playwright, one per test package run."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.support import ROOT

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # A page a test serves through page.route() has no address, so Chromium counts it as public
    # and blocks its requests to 127.0.0.1 (Local Network Access); the real pages are local anyway.
    "--disable-features=LocalNetworkAccessChecks",
]
#: Longest wait for a DOM condition; the tests never assert on how long anything took.
TIMEOUT_MS = 20_000


def chromium_path() -> str:
    found = os.environ.get("PGEVENTS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("the browser tests need Chromium: apt-get install chromium")
    return found


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1100, "height": 640})
    ctx.set_default_timeout(TIMEOUT_MS)
    # Every status change the page goes through, in order, and the channels subscribed.
    ctx.add_init_script(
        "window.__states = []; window.__subscribed = new Set();"
        "document.addEventListener('pgevents:status', (e) => window.__states.push(e.detail.state));"
        "document.addEventListener('pgevents:subscribed', (e) => window.__subscribed.add(e.detail.channel));"
    )
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """``PGEVENTS_SCREENSHOTS=1`` refreshes the ones in docs/; otherwise they go to .pgevents/."""
    where = ROOT / ("docs" if os.environ.get("PGEVENTS_SCREENSHOTS") == "1" else ".pgevents") / "screenshots"
    where.mkdir(parents=True, exist_ok=True)
    return where

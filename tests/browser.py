"""Browser tests: Playwright driving Debian's chromium (`playwright install` cannot download
browsers here). Without a chromium on the PATH the tests skip with one line saying so, except
in CI (.ci/run sets CRMSYNC_REQUIRE_BROWSER=1 after installing it), where a missing browser fails."""

import os
import shutil

from django.db import connections
import pytest

# Flags for a headless chromium on a machine with no screen and a closed network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def browser_page(tmp_path):
    """A fresh page (own profile, 1280x800) in headless chromium; closed after the test."""
    path = chromium_path()
    if path is None:
        if os.environ.get("CRMSYNC_REQUIRE_BROWSER"):
            pytest.fail("CRMSYNC_REQUIRE_BROWSER is set but no chromium is installed")
        pytest.skip("no chromium on this machine: browser tests skipped (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are
    # still plain synchronous code.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.set_default_timeout(15_000)
        try:
            yield page
        finally:
            # ORM calls made while Playwright runs get connections of their own (Django's follow the
            # running event loop's context): close them here, or PostgreSQL keeps a session open on
            # the test database and its teardown waits.
            connections.close_all()
            context.close()
            browser.close()


def expect(target):
    """Playwright's retrying assertions (`expect(locator).to_contain_text(...)`). Use them for
    what a page shows after a click that navigates: a locator read at once may see a page the
    browser is still parsing (the label of a field drawn, its value not yet)."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)

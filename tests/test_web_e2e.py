"""The demo pages in a real browser (Debian's Chromium driven by Playwright) against what `hafi-realtime dev`
serves: two guests see each other's likes and comments live, and an admin moderates."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator

import httpx
import pytest

from core.devserver import build_dev_app
from core.runtime import Runtime
from tests.support.api import ADMIN_EMAIL, ADMIN_PASSWORD, Api, bearer
from tests.support.environment import make_settings
from tests.support.loopback import serving

CHROMIUM = "/usr/bin/chromium"
TIMEOUT_MS = 8000

try:
    from playwright.async_api import Browser, Page, async_playwright
except ImportError:  # pragma: no cover - the dev extra installs it
    async_playwright = None  # type: ignore[assignment]


def _skip_without_browser() -> None:
    missing = "playwright" if async_playwright is None else CHROMIUM if not shutil.which(CHROMIUM) else None
    if missing is None:
        return
    if os.environ.get("BROWSER_REQUIRED"):
        raise RuntimeError(f"BROWSER_REQUIRED is set but {missing} is not installed")
    pytest.skip(f"{missing} is not installed (apt-get install -y chromium)")


@pytest.fixture
async def site(runtime: Runtime) -> AsyncIterator[tuple[str, Api]]:
    _skip_without_browser()
    dev = build_dev_app(make_settings(runtime.settings.require_database_url(), realtime_provider="socketio"))
    try:
        async with serving(dev.served, websockets=True) as server, httpx.AsyncClient(base_url=server.url) as http:
            yield server.url, Api(http, dev.runtime)
    finally:
        await dev.aclose()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert async_playwright is not None
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        yield launched
        await launched.close()


async def _gallery(browser: Browser, url: str) -> Page:
    page = await (await browser.new_context()).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.on("dialog", lambda dialog: pytest.fail(f"the page ran injected script: {dialog.message}"))
    await page.goto(f"{url}/?event=wedding")
    await page.wait_for_selector(".status[data-state=live]")
    return page


async def test_two_guests_see_each_others_likes_and_comments_and_an_admin_moderates(
    site: tuple[str, Api], browser: Browser
) -> None:
    url, api = site
    await api.event("wedding", photos=3)
    alice, bob = await _gallery(browser, url), await _gallery(browser, url)

    await alice.click(".card:nth-child(2) .like")
    await bob.wait_for_function("document.querySelector('.card:nth-child(2) .count').textContent === '1'")
    assert await alice.get_attribute(".card:nth-child(2) .like", "aria-pressed") == "true"
    assert await bob.get_attribute(".card:nth-child(2) .like", "aria-pressed") == "false"

    admin = await (await browser.new_context()).new_page()
    admin.set_default_timeout(TIMEOUT_MS)
    await admin.goto(f"{url}/admin")
    await api.admin()  # the account the page signs in with
    await admin.fill("#email", ADMIN_EMAIL)
    await admin.fill("#password", ADMIN_PASSWORD)
    await admin.click("#login button")
    await admin.wait_for_selector(".status[data-state=live]")

    await alice.fill(".card:nth-child(2) input[name=authorName]", "Aunt <b>May</b>")
    await alice.fill(".card:nth-child(2) textarea", "Lovely! <img src=x onerror=alert(1)>")
    await alice.click(".card:nth-child(2) form button")
    comment = bob.locator(".card:nth-child(2) .comments li")
    await comment.wait_for()
    assert await comment.inner_text() == "Aunt <b>May</b>Lovely! <img src=x onerror=alert(1)>"
    notification = admin.locator("#feed li")
    await notification.wait_for()
    assert "Lovely!" in await notification.inner_text()

    await admin.click("#rows tr:first-child button:has-text('Hide')")
    await bob.wait_for_selector(".card:nth-child(2) .comments li", state="detached")
    await alice.wait_for_selector(".card:nth-child(2) .comments li", state="detached")


async def test_a_page_that_missed_an_event_notices_the_gap_in_seq_and_fetches_it(
    site: tuple[str, Api], browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, api = site
    first, second, _ = await api.event("wedding", photos=3)
    page = await _gallery(browser, url)
    guest = await api.guest()

    async def lost(events: object) -> None:
        """The provider takes the message and the network loses it on the way to the page."""

    with monkeypatch.context() as patch:  # the like is stored and published, but its event never reaches the page
        patch.setattr(api.runtime.provider, "publish", lost)
        missed = await api.client.post(f"/api/photos/{first}/like", headers=bearer(guest))
    seen = await api.client.post(f"/api/photos/{second}/like", headers=bearer(guest))

    assert missed.status_code == seen.status_code == 200
    # seq 2 arrives with seq 1 never seen: the page asks /updates?after=0 and applies both, in order.
    await page.wait_for_function("document.querySelector('.card:nth-child(2) .count').textContent === '1'")
    await page.wait_for_function("document.querySelector('.card:nth-child(1) .count').textContent === '1'")

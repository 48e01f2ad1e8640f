"""The demo pages in a real browser (Debian's Chromium driven by Playwright) against what `hafi-realtime dev`
serves, on each provider: our Socket.IO server, and Ably and Pusher through their official browser SDKs (served
from web/vendor/) talking to the stand-ins of ``standins/`` over the providers' own realtime protocols.

Two guests and an admin see each other's likes, comments and moderation live; a guest is refused the admin channel
and a protected event by the provider itself and gets nothing of them; a page that missed an event fetches it from
the gap in seq; on Ably, a token that expires mid-session is renewed through our authUrl and the page keeps
receiving. No page loads a script from anywhere but the API's origin. The like-click to other-page latency is
measured and printed (``-s``) per provider; it is not asserted: timing targets belong in bench/.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from core.devserver import STANDIN_PROVIDERS, build_dev_app, make_standin
from core.realtime.base import RealtimeMessage
from core.realtime.pusher import wire_channel
from core.runtime import Runtime
from standins.ably_service import FakeAbly
from standins.pusher_service import FakePusher
from tests.support.api import ADMIN_EMAIL, ADMIN_PASSWORD, Api, bearer
from tests.support.environment import make_settings
from tests.support.loopback import serving
from tests.support.outbox import outbox_rows

CHROMIUM = "/usr/bin/chromium"
TIMEOUT_MS = 10000
PROVIDERS = ["socketio", "ably", "pusher"]
TOKEN_TTL_SECONDS = 60  # the shortest the settings allow; the Ably stand-in's clock is moved past it

try:
    from playwright.async_api import Browser, Page, Request, async_playwright
except ImportError:  # pragma: no cover - the dev extra installs it
    async_playwright = None  # type: ignore[assignment]


def _skip_without_browser() -> None:
    missing = "playwright" if async_playwright is None else CHROMIUM if not shutil.which(CHROMIUM) else None
    if missing is None:
        return
    if os.environ.get("BROWSER_REQUIRED"):
        raise RuntimeError(f"BROWSER_REQUIRED is set but {missing} is not installed")
    pytest.skip(f"{missing} is not installed (apt-get install -y chromium)")


@dataclass
class Site:
    url: str
    api: Api
    provider: str
    ably: FakeAbly | None = None
    pusher: FakePusher | None = None
    scripts: list[str] = field(default_factory=list)  # every script any page asked for


@pytest.fixture(params=PROVIDERS)
async def site(request: pytest.FixtureRequest, runtime: Runtime) -> AsyncIterator[Site]:
    _skip_without_browser()
    provider: str = request.param
    database_url = runtime.settings.require_database_url()
    async with AsyncExitStack() as stack:
        ably = pusher = None
        overrides: dict[str, Any] = {"realtime_provider": provider}
        if provider in STANDIN_PROVIDERS:  # served as `hafi-realtime dev --provider` serves it
            standin = make_standin(provider)
            served = await stack.enter_async_context(serving(standin.app, websockets=True))
            overrides = standin.settings(host="127.0.0.1", port=served.port)
            ably = standin.service if isinstance(standin.service, FakeAbly) else None
            pusher = standin.service if isinstance(standin.service, FakePusher) else None
        if ably is not None:
            overrides["realtime_token_ttl_seconds"] = TOKEN_TTL_SECONDS
        dev = build_dev_app(make_settings(database_url, **overrides))
        stack.push_async_callback(dev.aclose)
        server = await stack.enter_async_context(serving(dev.served, websockets=True))
        http = await stack.enter_async_context(httpx.AsyncClient(base_url=server.url))
        site = Site(server.url, Api(http, dev.runtime), provider, ably, pusher)
        yield site
        foreign = [src for src in site.scripts if not src.startswith(server.url + "/")]
        assert not foreign, f"pages loaded scripts from outside the API's origin: {foreign}"


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


async def _page(browser: Browser, site: Site) -> Page:
    page = await (await browser.new_context()).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.on("dialog", lambda dialog: pytest.fail(f"the page ran injected script: {dialog.message}"))

    def note_script(request: Request) -> None:
        if request.resource_type == "script":
            site.scripts.append(request.url)

    page.on("request", note_script)
    page.on("console", lambda message: print(f"[{site.provider} page] {message.type}: {message.text}"))
    page.on("pageerror", lambda error: print(f"[{site.provider} page] pageerror: {error}"))
    return page


async def _gallery(browser: Browser, site: Site, slug: str = "wedding") -> Page:
    page = await _page(browser, site)
    await page.goto(f"{site.url}/?event={slug}")
    try:
        await page.wait_for_selector(".status[data-state=live]")
    except Exception:
        print("page error:", await page.inner_text("#page-error"), await page.inner_text("#status"))
        raise
    return page


async def _admin_page(browser: Browser, site: Site) -> Page:
    admin = await _page(browser, site)
    await admin.goto(f"{site.url}/admin")
    await site.api.admin()  # the account the page signs in with
    await admin.fill("#email", ADMIN_EMAIL)
    await admin.fill("#password", ADMIN_PASSWORD)
    await admin.click("#login button")
    await admin.wait_for_selector(".status[data-state=live]")
    return admin


async def _until(page: Page, expression: str) -> None:
    """Waits until ``expression`` holds in the page. Polled from here: Playwright's wait_for_function evaluates its
    predicate with eval inside the page, which the pages' Content-Security-Policy (rightly) forbids."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT_MS / 1000
    while not await page.evaluate(expression):
        if loop.time() > deadline:
            raise AssertionError(f"still false after {TIMEOUT_MS} ms: {expression}")
        await asyncio.sleep(0.01)


def _count_is(card: int, count: int) -> str:
    return f"document.querySelector('.card:nth-child({card}) .count').textContent === '{count}'"


async def test_two_guests_and_an_admin_see_each_others_likes_comments_and_moderation_live(
    site: Site, browser: Browser
) -> None:
    await site.api.event("wedding", photos=3)
    alice, bob = await _gallery(browser, site), await _gallery(browser, site)
    admin = await _admin_page(browser, site)

    await alice.click(".card:nth-child(2) .like")
    await _until(bob, _count_is(2, 1))
    assert await alice.get_attribute(".card:nth-child(2) .like", "aria-pressed") == "true"
    assert await bob.get_attribute(".card:nth-child(2) .like", "aria-pressed") == "false"
    await bob.click(".card:nth-child(2) .like")
    await _until(alice, _count_is(2, 2))

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


async def test_every_page_shows_how_many_are_watching(site: Site, browser: Browser) -> None:
    await site.api.event("wedding", photos=1)
    alice = await _gallery(browser, site)
    await _gallery(browser, site)
    await _until(alice, "document.querySelector('#status').textContent.includes('2 watching')")


# Tries to subscribe, in the page, with the provider's SDK and the guest's own credentials, to a channel the guest
# was not granted; answers what the SDK said. Whatever the channel delivers afterwards lands in window.probeReceived.
PROBE = """async ({channel, pusherName, forge}) => {
  const token = localStorage.getItem("hafi-guest-token");
  const creds = await HafiRealtime.api("", token, "POST", "/api/realtime/auth", {eventSlug: "wedding"});
  const received = (window.probeReceived = []);
  if (creds.provider === "socketio") {
    const socket = io({path: creds.path, auth: {token}, transports: ["websocket"]});
    socket.onAny((name) => name === "error" || received.push(name)); // "error" is the refusal itself
    const answer = channel === "admin"
      ? await socket.emitWithAck("join:admin")
      : await socket.emitWithAck("join:event", {eventSlug: channel.slice(6)});
    return answer && answer.error ? `refused ${answer.error.code}` : "joined";
  }
  if (creds.provider === "ably") {
    const options = {
      clientId: creds.clientId,
      authCallback: (_params, callback) => HafiRealtime.api("", token, "GET", creds.authUrl + "?eventSlug=wedding")
        .then((signed) => callback(null, signed), (error) => callback(error, null)),
      endpoint: creds.endpoint, tls: creds.tls, port: creds.port, fallbackHosts: [], transports: ["web_socket"],
    };
    const subscribed = new Ably.Realtime(options).channels.get(channel);
    subscribed.subscribe((message) => received.push(message.name)).catch(() => {});
    try {
      await subscribed.attach();
      return "attached";
    } catch (error) {
      return `refused ${error.code}`;
    }
  }
  const authorization = forge
    ? {customHandler: (_params, callback) => callback(null, {auth: `${creds.key}:${"0".repeat(64)}`})}
    : {endpoint: creds.authEndpoint, headers: {Authorization: `Bearer ${token}`}};
  const pusher = new Pusher(creds.key, {
    cluster: creds.cluster || "mt1", enableStats: false, wsHost: creds.wsHost, wsPort: creds.wsPort, forceTLS: false,
    enabledTransports: ["ws"], channelAuthorization: authorization,
  });
  const subscribed = pusher.subscribe(pusherName);
  subscribed.bind_global((name) => name.startsWith("pusher") || received.push(name));
  return new Promise((resolve) => {
    subscribed.bind("pusher:subscription_succeeded", () => resolve("subscribed"));
    subscribed.bind("pusher:subscription_error", (error) => resolve(`refused ${error.status}`));
  });
}"""

# What each refuses with: our Socket.IO server's error code, Ably's capability error, our Pusher auth endpoint's 403.
EXPECTED_REFUSAL = {
    ("socketio", "admin"): "refused admin_only",
    ("socketio", "event:secret"): "refused event_not_found",
    ("ably", "admin"): "refused 40160",
    ("ably", "event:secret"): "refused 40160",
    ("pusher", "admin"): "refused 403",
    ("pusher", "event:secret"): "refused 403",
}


@pytest.mark.parametrize("channel", ["admin", "event:secret"])
async def test_a_guest_is_refused_the_admin_channel_and_a_locked_event_and_receives_nothing_of_them(
    site: Site, browser: Browser, channel: str
) -> None:
    photo, *_ = await site.api.event("wedding", photos=1)
    secret_photo, *_ = await site.api.event("secret", photos=1, access_code="let-me-in")
    page = await _gallery(browser, site)

    answer = await page.evaluate(PROBE, {"channel": channel, "pusherName": wire_channel(channel), "forge": False})
    assert answer == EXPECTED_REFUSAL[site.provider, channel]
    if site.pusher is not None:  # a forged signature gets past our endpoint, not past Pusher
        forged = await page.evaluate(PROBE, {"channel": channel, "pusherName": wire_channel(channel), "forge": True})
        assert forged == "refused 401"
        assert "Invalid signature" in site.pusher.socket_refusals[-1][1]
    if site.ably is not None:
        assert (channel, 40160) in [(refused[0], refused[1]) for refused in site.ably.realtime_refusals]

    insider = await site.api.guest(eventSlug="secret", accessCode="let-me-in")
    liked = await site.api.client.post(f"/api/photos/{secret_photo}/like", headers=bearer(insider))
    assert liked.status_code == 200
    guest = await site.api.guest()
    commented = await site.api.client.post(
        f"/api/photos/{photo}/comments", json={"authorName": "Bea", "content": "Hi"}, headers=bearer(guest)
    )
    assert commented.status_code == 201, commented.text
    # The comment reaches the page on its own channel after the secret like and the admin notification went out.
    await page.locator(".card .comments li").wait_for()
    await asyncio.sleep(0.3)
    assert await page.evaluate("window.probeReceived") == []


SPOOF = """async ({ids, photoId}) => {
  const token = localStorage.getItem("hafi-guest-token");
  const creds = await HafiRealtime.api("", token, "POST", "/api/realtime/auth", {eventSlug: "wedding"});
  const pusher = new Pusher(creds.key, {
    cluster: creds.cluster || "mt1", enableStats: false, wsHost: creds.wsHost, wsPort: creds.wsPort, forceTLS: false,
    enabledTransports: ["ws"],
    channelAuthorization: {endpoint: creds.authEndpoint, headers: {Authorization: `Bearer ${token}`}},
  });
  const channel = pusher.subscribe(creds.channelNames["event:wedding"]);
  await new Promise((resolve) => channel.bind("pusher:subscription_succeeded", resolve));
  ids.forEach((id, i) => channel.trigger("client-photo:liked", {id: String(id), seq: i + 2, photoId, likeCount: 99}));
}"""


# Client events are Pusher's: Ably tokens grant no publish, and Socket.IO relays nothing a client emits.
@pytest.mark.parametrize("site", ["pusher"], indirect=True)
async def test_a_pusher_client_event_carrying_the_next_ids_is_ignored_and_the_real_events_still_land(
    site: Site, browser: Browser
) -> None:
    assert site.pusher is not None
    site.pusher.client_events = True  # an app that enabled them for some other feature
    photo, *_ = await site.api.event("wedding", photos=1)
    victim, attacker = await _gallery(browser, site), await _gallery(browser, site)
    guest = await site.api.guest()
    assert (await site.api.client.post(f"/api/photos/{photo}/like", headers=bearer(guest))).status_code == 200
    await _until(victim, _count_is(1, 1))
    last_id = int((await outbox_rows(site.api.runtime))[-1].id)

    await attacker.evaluate(SPOOF, {"ids": list(range(last_id + 1, last_id + 6)), "photoId": photo})
    assert (await site.api.client.delete(f"/api/photos/{photo}/like", headers=bearer(guest))).status_code == 200
    await _until(victim, _count_is(1, 0))
    assert (await site.api.client.post(f"/api/photos/{photo}/like", headers=bearer(guest))).status_code == 200
    await _until(victim, _count_is(1, 1))


async def test_a_page_that_missed_an_event_notices_the_gap_in_seq_and_fetches_it(
    site: Site, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second, _ = await site.api.event("wedding", photos=3)
    page = await _gallery(browser, site)
    guest = await site.api.guest()

    async def lost(events: object) -> None:
        """The provider takes the message and the network loses it on the way to the page."""

    with monkeypatch.context() as patch:  # the like is stored and published, but its event never reaches the page
        patch.setattr(site.api.runtime.provider, "publish", lost)
        missed = await site.api.client.post(f"/api/photos/{first}/like", headers=bearer(guest))
    seen = await site.api.client.post(f"/api/photos/{second}/like", headers=bearer(guest))

    assert missed.status_code == seen.status_code == 200
    # seq 2 arrives with seq 1 never seen: the page asks /updates?after=0 and applies both, in order.
    await _until(page, _count_is(2, 1))
    await _until(page, _count_is(1, 1))


# Token expiry is Ably's: Pusher signs each subscription, and Socket.IO checks the token on connect.
@pytest.mark.parametrize("site", ["ably"], indirect=True)
async def test_on_ably_a_token_that_expires_mid_session_is_renewed_and_the_page_keeps_receiving(
    site: Site, browser: Browser
) -> None:
    assert site.ably is not None
    photo, *_ = await site.api.event("wedding", photos=1)
    page = await _gallery(browser, site)
    tokens_before = len(site.ably.tokens)

    site.ably.advance_clock((TOKEN_TTL_SECONDS + 1) * 1000)
    await _until(page, "document.querySelector('#status').dataset.state !== 'live'")
    await page.wait_for_selector(".status[data-state=live]")
    assert (("", 40142, "Token expired")) in site.ably.realtime_refusals
    assert len(site.ably.tokens) > tokens_before  # a new token, from a TokenRequest our authUrl signed

    guest = await site.api.guest()
    liked = await site.api.client.post(f"/api/photos/{photo}/like", headers=bearer(guest))
    assert liked.status_code == 200
    await _until(page, _count_is(1, 1))


LIKES_MEASURED = 10
WATCH_COUNT = """() => new Promise((resolve) => {
  const count = document.querySelector('.card:nth-child(1) .count');
  new MutationObserver((_, observer) => { observer.disconnect(); resolve(Date.now()); })
    .observe(count, {childList: true, characterData: true, subtree: true});
})"""
CLICK = "() => { const at = Date.now(); document.querySelector('.card:nth-child(1) .like').click(); return at; }"


async def test_like_click_to_other_page_latency_is_measured(site: Site, browser: Browser, record_property: Any) -> None:
    await site.api.event("wedding", photos=1)
    alice, bob = await _gallery(browser, site), await _gallery(browser, site)
    latencies: list[int] = []
    for i in range(LIKES_MEASURED):
        changed = asyncio.ensure_future(bob.evaluate(WATCH_COUNT))
        await asyncio.sleep(0.05)  # the observer is in place before the click
        clicked_at: int = await alice.evaluate(CLICK)
        latencies.append(await changed - clicked_at)
        await _until(bob, _count_is(1, (i + 1) % 2))
    median = statistics.median(latencies)
    record_property(f"like_latency_ms_{site.provider}", median)
    print(f"\nlike click -> other page, {site.provider}: median {median} ms, max {max(latencies)} ms of {latencies}")


async def test_a_group_message_reaches_the_gallery_as_its_events_in_order_without_a_catch_up(
    site: Site, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second, third = await site.api.event("wedding", photos=3)
    page = await _gallery(browser, site)
    catch_ups: list[str] = []
    page.on("request", lambda request: catch_ups.append(request.url) if "/updates" in request.url else None)
    provider = site.api.runtime.provider
    publish = provider.publish

    async def held(events: object) -> None:
        """The likes are stored and their publishes held back: they go out below, together, as one group."""

    alice, bob = await site.api.guest(), await site.api.guest()
    with monkeypatch.context() as patch:
        patch.setattr(provider, "publish", held)
        for guest, photo in ((alice, first), (alice, second), (bob, first), (alice, third)):
            liked = await site.api.client.post(f"/api/photos/{photo}/like", headers=bearer(guest))
            assert liked.status_code == 200, liked.text
    log = await site.api.client.get("/api/events/wedding/updates?after=0", headers=bearer(alice))
    events = log.json()["events"]
    assert [event["seq"] for event in events] == [1, 2, 3, 4]
    group_id = f"{events[0]['id']}-{events[-1]['id']}"
    group = {  # docs/realtime.md, "Groups"
        "id": group_id,
        "fromSeq": 1,
        "toSeq": 4,
        "events": [{"name": event["name"], "data": event["data"]} for event in events],
    }
    await publish([RealtimeMessage(id=group_id, channel="event:wedding", name="group", data=group)])

    await _until(page, _count_is(1, 2))
    await _until(page, _count_is(2, 1))
    await _until(page, _count_is(3, 1))
    # In order: the first photo's count went 1 then 2, never back to 1 (a later event applied first would show 2
    # and then 1); and every event came from the group, none from /updates.
    assert catch_ups == []
    # The same group again (a retried publish) changes nothing: each event id is applied once.
    await publish([RealtimeMessage(id=group_id, channel="event:wedding", name="group", data=group)])
    bob_unlikes = await site.api.client.delete(f"/api/photos/{first}/like", headers=bearer(bob))
    assert bob_unlikes.status_code == 200
    await _until(page, _count_is(1, 1))
    assert catch_ups == []

"""The stand-ins hold a publisher to the services' limits and count what they carry (issue 12): Ably refuses the 51st
message published on a channel within a second (429, 42913), each message of a batch counted, and our Ably
publisher takes that as a transient failure to try again; Ably drops what is delivered to a connection beyond 50
messages a second and tells the official SDK of the gap (the channel's ``update`` event, 80020); both stand-ins count
the messages published per channel and delivered per connection."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pusher
import pytest
from websockets.asyncio.client import ClientConnection, connect

from core.realtime.ably import AblyProvider
from core.realtime.base import RealtimeError
from standins.ably_service import MESSAGE_RATE, FakeAbly
from standins.pusher_service import FakePusher
from tests.support.api import realtime_message
from tests.support.environment import make_settings
from tests.support.loopback import LoopbackServer, serving
from tests.test_socketio_js import JS_DIR, node_or_skip, read_step


@pytest.fixture
async def ably() -> AsyncIterator[tuple[FakeAbly, LoopbackServer]]:
    """The Ably stand-in with its limits' clock held still (a slow machine must not spread "a second" over two)."""
    service = FakeAbly(rate_clock=lambda: 1000.0)
    async with serving(service.app, websockets=True) as server:
        yield service, server


@pytest.fixture
async def fake_pusher() -> AsyncIterator[tuple[FakePusher, LoopbackServer]]:
    service = FakePusher()
    async with serving(service.app, websockets=True) as server:
        yield service, server


def _spec(channel: str, count: int) -> dict[str, Any]:
    messages = [{"name": "photo:liked", "data": json.dumps({"n": i}), "encoding": "json"} for i in range(count)]
    return {"channels": channel, "messages": messages}


async def _publish(service: FakeAbly, server: LoopbackServer, *specs: dict[str, Any]) -> httpx.Response:
    basic = base64.b64encode(service.key.encode()).decode()
    async with httpx.AsyncClient() as client:
        return await client.post(
            f"{server.url}/messages",
            json=list(specs),
            headers={"Authorization": f"Basic {basic}", "X-Ably-Version": "2"},
        )


async def test_ably_refuses_the_51st_message_of_a_second_on_a_channel_with_429_42913(
    ably: tuple[FakeAbly, LoopbackServer],
) -> None:
    service, server = ably
    for _ in range(MESSAGE_RATE):
        assert (await _publish(service, server, _spec("event:busy", 1))).status_code == 200

    refused = await _publish(service, server, _spec("event:busy", 1))
    other_channel = await _publish(service, server, _spec("event:quiet", 1))

    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == 42913 and refused.json()["error"]["statusCode"] == 429
    assert refused.headers["x-ably-errorcode"] == "42913"
    assert other_channel.status_code == 200  # the limit is per channel
    assert service.stats.published == {"event:busy": MESSAGE_RATE, "event:quiet": 1}
    assert service.stats.refused == {"event:busy": 1}
    assert [d.channel for d in service.delivered].count("event:busy") == MESSAGE_RATE  # the 51st never went out


async def test_ably_counts_every_message_of_a_batch_and_refuses_a_spec_that_would_go_over_whole(
    ably: tuple[FakeAbly, LoopbackServer],
) -> None:
    service, server = ably
    assert (await _publish(service, server, _spec("event:batch", 40))).status_code == 200
    over = await _publish(service, server, _spec("event:batch", 11))
    mixed = await _publish(service, server, _spec("event:batch", 10), _spec("event:batch", 1))

    assert over.status_code == 429 and over.json()["error"]["code"] == 42913
    # Beside an accepted spec a refused one is a partial failure, as Ably answers a batch (40020).
    assert mixed.status_code == 400 and mixed.json()["error"]["code"] == 40020
    assert [result.get("error", {}).get("code") for result in mixed.json()["batchResponse"]] == [None, 42913]
    assert service.stats.published["event:batch"] == 50
    assert service.stats.refused["event:batch"] == 12


async def test_the_ably_channel_window_slides_on_after_a_second(ably: tuple[FakeAbly, LoopbackServer]) -> None:
    service, server = ably
    service.channel_message_rate = 3
    assert (await _publish(service, server, _spec("event:slide", 2))).status_code == 200
    service.rate_clock = lambda: 1000.5
    assert (await _publish(service, server, _spec("event:slide", 1))).status_code == 200
    assert (await _publish(service, server, _spec("event:slide", 1))).status_code == 429
    service.rate_clock = lambda: 1001.0  # the first two leave the window, the third is still in it
    assert (await _publish(service, server, _spec("event:slide", 3))).status_code == 429
    assert (await _publish(service, server, _spec("event:slide", 2))).status_code == 200


async def test_our_ably_publisher_takes_the_rate_refusal_as_transient(
    ably: tuple[FakeAbly, LoopbackServer], database_url: str
) -> None:
    service, server = ably
    settings = make_settings(
        database_url,
        realtime_provider="ably",
        ably_api_key=service.key,
        ably_endpoint="127.0.0.1",
        ably_tls=False,
        ably_port=server.port,
        ably_use_binary_protocol=False,
    )
    provider = AblyProvider.from_settings(settings)
    try:
        await provider.publish([realtime_message(i) for i in range(1, MESSAGE_RATE + 1)])
        with pytest.raises(RealtimeError) as refused:
            await provider.publish([realtime_message(MESSAGE_RATE + 1)])
    finally:
        await provider.aclose()
    assert refused.value.transient, "a 429 is worth trying again later: the relay must back off, not park"
    assert "429" in str(refused.value) and "42913" in str(refused.value)


async def test_ably_drops_deliveries_over_a_connections_rate_and_the_official_sdk_gets_a_continuity_loss(
    ably: tuple[FakeAbly, LoopbackServer],
) -> None:
    node = node_or_skip()
    if not (JS_DIR / "node_modules" / "ably").is_dir():
        pytest.skip("tests/js/node_modules lacks ably (run: npm ci --prefix tests/js)")
    service, server = ably
    service.channel_message_rate = 1000  # only the connection's limit is at stake here
    process = await asyncio.create_subprocess_exec(
        node,
        str(JS_DIR / "ably_continuity.js"),
        "127.0.0.1",
        str(server.port),
        service.key,
        "event:flood",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert await read_step(process) == {"step": "attached"}
        assert (await _publish(service, server, _spec("event:flood", MESSAGE_RATE + 10))).status_code == 200
        update = await read_step(process)
        async with asyncio.timeout(10):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert update == {"step": "update", "resumed": False, "code": 80020, "received": MESSAGE_RATE}
    (connection,) = service.stats.delivered
    assert service.stats.delivered[connection] == MESSAGE_RATE
    assert service.stats.dropped[connection] == 10
    assert service.stats.continuity_losses[connection] == 1  # one signal for the whole run of drops


async def _subscribed(server: LoopbackServer, service: FakePusher, channel: str) -> ClientConnection:
    socket = await connect(server.url.replace("http://", "ws://") + f"/app/{service.key}?protocol=7")
    assert json.loads(await socket.recv())["event"] == "pusher:connection_established"
    await socket.send(json.dumps({"event": "pusher:subscribe", "data": {"channel": channel}}))
    while json.loads(await socket.recv())["event"] != "pusher_internal:subscription_succeeded":
        pass
    return socket


async def test_pusher_counts_each_event_published_and_each_delivered_to_every_subscriber(
    fake_pusher: tuple[FakePusher, LoopbackServer],
) -> None:
    service, server = fake_pusher
    service.subscription_count = False
    sockets = [await _subscribed(server, service, "gallery") for _ in range(2)]
    sdk = pusher.Pusher(
        app_id=service.app_id, key=service.key, secret=service.secret, ssl=False, host="127.0.0.1", port=server.port
    )
    try:
        for n in range(3):  # the SDK is synchronous: off the loop the stand-in runs on
            await asyncio.to_thread(sdk.trigger, "gallery", "photo:liked", {"n": n})
        for socket in sockets:
            received = [json.loads(await socket.recv()) for _ in range(3)]
            assert [json.loads(event["data"])["n"] for event in received] == [0, 1, 2]
    finally:
        for socket in sockets:
            await socket.close()
    assert service.stats.published == {"gallery": 3}
    assert sorted(service.stats.delivered.values()) == [3, 3]  # Pusher bills 6 messages: 3 publishes x 2 subscribers

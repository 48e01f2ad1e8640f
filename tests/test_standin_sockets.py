"""The stand-ins' WebSockets at the edges the browser suite does not reach: what Pusher and Ably answer a client
that is wrong, hostile or quiet. The happy paths run with the official SDKs in tests/test_web_e2e.py."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from standins.ably_service import ATTACH, ATTACHED, ERROR, HEARTBEAT, MESSAGE, NACK, FakeAbly, Token
from standins.pusher_service import FakePusher, channel_auth
from tests.support.loopback import LoopbackServer, serving


@pytest.fixture
async def pusher() -> AsyncIterator[tuple[FakePusher, LoopbackServer]]:
    service = FakePusher()
    async with serving(service.app, websockets=True) as server:
        yield service, server


@pytest.fixture
async def ably() -> AsyncIterator[tuple[FakeAbly, LoopbackServer]]:
    service = FakeAbly()
    async with serving(service.app, websockets=True) as server:
        yield service, server


async def _next(socket: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await socket.recv(decode=True))
    return message


def _ws(server: LoopbackServer, path: str) -> str:
    return server.url.replace("http://", "ws://") + path


async def test_pusher_refuses_an_unknown_key_and_an_old_protocol_with_their_close_codes(
    pusher: tuple[FakePusher, LoopbackServer],
) -> None:
    _, server = pusher
    for path, code in (("/app/not-the-key?protocol=7", 4001), ("/app/fake-pusher-key?protocol=5", 4007)):
        async with connect(_ws(server, path)) as socket:
            error = await _next(socket)
            assert error["event"] == "pusher:error" and error["data"]["code"] == code
            with pytest.raises(ConnectionClosed) as closed:
                await socket.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == code


async def test_pusher_answers_ping_refuses_a_forged_subscription_and_client_events(
    pusher: tuple[FakePusher, LoopbackServer],
) -> None:
    service, server = pusher
    async with connect(_ws(server, "/app/fake-pusher-key?protocol=7&client=js")) as socket:
        established = await _next(socket)
        socket_id = json.loads(established["data"])["socket_id"]
        await socket.send(json.dumps({"event": "pusher:ping", "data": {}}))
        assert (await _next(socket))["event"] == "pusher:pong"

        forged = {"channel": "private-admin", "auth": f"{service.key}:{'0' * 64}"}
        await socket.send(json.dumps({"event": "pusher:subscribe", "data": forged}))
        refused = await _next(socket)
        assert refused["event"] == "pusher:subscription_error" and refused["channel"] == "private-admin"
        assert "private-admin" not in service.subscribers

        signed = channel_auth(service.key, service.secret, socket_id, "private-event-wedding")
        subscribe = {"channel": "private-event-wedding", "auth": signed}
        await socket.send(json.dumps({"event": "pusher:subscribe", "data": subscribe}))
        assert (await _next(socket))["event"] == "pusher_internal:subscription_succeeded"
        count = await _next(socket)
        assert count["event"] == "pusher_internal:subscription_count"
        assert json.loads(count["data"]) == {"subscription_count": 1}

        spoof = {"event": "client-photo:liked", "channel": "private-event-wedding", "data": {"id": "7"}}
        await socket.send(json.dumps(spoof))
        error = await _next(socket)
        assert error["event"] == "pusher:error" and "not enabled" in error["data"]["message"]


async def test_ably_refuses_an_unknown_token_and_answers_heartbeats_attach_and_publish(
    ably: tuple[FakeAbly, LoopbackServer],
) -> None:
    service, server = ably
    async with connect(_ws(server, "/?access_token=made-up&format=json&v=6")) as socket:
        refused = await _next(socket)
        assert refused["action"] == ERROR and refused["error"]["code"] == 40101

    guest = Token(service.key_name, {"event:wedding": ["subscribe"]}, "guest-1", service.now_ms() + 60_000)
    service.tokens["guest-token"] = guest
    async with connect(_ws(server, "/?access_token=guest-token&clientId=guest-1&format=json&v=6")) as socket:
        connected = await _next(socket)
        assert connected["connectionDetails"]["clientId"] == "guest-1"
        await socket.send(json.dumps({"action": HEARTBEAT, "id": "h1"}))
        assert await _next(socket) == {"action": HEARTBEAT, "id": "h1"}

        await socket.send(json.dumps({"action": ATTACH, "channel": "admin"}))
        denied = await _next(socket)
        assert denied["action"] == ERROR and denied["channel"] == "admin" and denied["error"]["code"] == 40160
        await socket.send(json.dumps({"action": ATTACH, "channel": "event:wedding"}))
        assert (await _next(socket))["action"] == ATTACHED

        publish = {"action": MESSAGE, "channel": "event:wedding", "msgSerial": 0, "messages": [{"name": "x"}]}
        await socket.send(json.dumps(publish))
        nack = await _next(socket)
        assert nack["action"] == NACK and nack["error"]["code"] == 40160
        assert service.delivered == []

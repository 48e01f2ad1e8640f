"""Two ``hafi-realtime socketio`` processes sharing the machine's Redis, and a third process (this test) publishing
to them the way a Lambda does: through the write-only Redis manager."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
import redis.asyncio

from core.api.app import create_app
from core.realtime.socketio import SocketIOProvider
from core.runtime import build_runtime
from core.settings import Settings
from core.socketio_server.presence import Presence
from tests.support.api import Api, bearer
from tests.support.environment import make_settings, redis_url
from tests.support.ports import free_port
from tests.support.sockets import WAIT_SECONDS, clients, socketio_process

QUIET_SECONDS = 0.5


@pytest.fixture(scope="module")
def redis_server() -> str:
    url = redis_url()
    if url is None:
        pytest.skip("no Redis reachable (set TEST_REDIS_URL or start one on 127.0.0.1:6379)")
    return url


@pytest.fixture(scope="module")
def cluster_settings(database_url: str, redis_server: str) -> Settings:
    # A channel of our own: other deployments (and test runs) may share this Redis.
    return make_settings(
        database_url,
        realtime_provider="socketio",
        socketio_redis_url=redis_server,
        socketio_redis_channel=f"hafi-test-{uuid.uuid4().hex[:10]}",
        rate_limit_per_minute=10_000,
    )


@pytest.fixture(scope="module")
def nodes(cluster_settings: Settings) -> Iterator[list[str]]:
    env = {
        "APP_ENV": "test",
        "DATABASE_URL": cluster_settings.require_database_url(),
        "JWT_SECRET": cluster_settings.require_jwt_secret(),
        "REALTIME_PROVIDER": "socketio",
        "SOCKETIO_REDIS_URL": cluster_settings.socketio_redis or "",
        "SOCKETIO_REDIS_CHANNEL": cluster_settings.socketio_redis_channel,
        "LOG_LEVEL": "WARNING",
    }
    ports = [free_port(), free_port()]
    with ExitStack() as stack:
        for port in ports:
            stack.enter_context(socketio_process(port, env))
        yield [f"http://127.0.0.1:{port}" for port in ports]


@pytest.fixture
async def publisher(cluster_settings: Settings) -> AsyncIterator[Api]:
    """The API as a function runs it: its provider is the write-only Redis manager, built from settings."""
    runtime = build_runtime(cluster_settings)
    assert isinstance(runtime.provider, SocketIOProvider)
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://function") as client:
        yield Api(client, runtime)
    await runtime.aclose()


async def wait_for_subscribers(settings: Settings, count: int) -> None:
    """Nodes subscribe to the channel when their first client connects; publishing before that reaches nobody."""
    connection = redis.asyncio.Redis.from_url(settings.socketio_redis or "")
    try:
        async with asyncio.timeout(WAIT_SECONDS):
            while True:
                [(_, subscribers)] = await connection.pubsub_numsub(settings.socketio_redis_channel)
                if subscribers >= count:
                    return
                await asyncio.sleep(0.02)
    finally:
        await connection.aclose()


async def test_a_like_published_by_a_third_process_reaches_a_client_on_each_node(
    nodes: list[str], publisher: Api, cluster_settings: Settings
) -> None:
    slug, other = f"cluster-{uuid.uuid4().hex[:8]}", f"elsewhere-{uuid.uuid4().hex[:8]}"
    photo_id, _ = await publisher.event(slug)
    await publisher.event(other)
    guest = await publisher.guest()
    async with clients(3) as (on_first, on_second, outside):
        for client, url, room in ((on_first, nodes[0], slug), (on_second, nodes[1], slug), (outside, nodes[1], other)):
            await client.connect(url)
            assert (await client.call("join:event", room))["room"] == f"event:{room}"
        await wait_for_subscribers(cluster_settings, 2)

        response = await publisher.client.post(f"/api/photos/{photo_id}/like", headers=bearer(guest))
        assert response.status_code == 200, response.text

        received = [await client.wait_for("photo:liked") for client in (on_first, on_second)]
        await asyncio.sleep(QUIET_SECONDS)
    assert received[0] == received[1]
    assert received[0]["photoId"] == photo_id and received[0]["likeCount"] == 1 and received[0]["seq"] == 1
    assert outside.named("photo:liked") == []


async def test_a_like_asked_for_on_one_node_reaches_the_room_on_the_other(
    nodes: list[str], publisher: Api, cluster_settings: Settings
) -> None:
    slug = f"shared-{uuid.uuid4().hex[:8]}"
    photo_id, _ = await publisher.event(slug)
    guest = await publisher.guest()
    async with clients(2) as (asker, watcher):
        await asker.connect(nodes[0], token=guest)
        await watcher.connect(nodes[1])
        for client in (asker, watcher):
            await client.call("join:event", slug)
        await wait_for_subscribers(cluster_settings, 2)

        answer = await asker.call("photo:like", {"photoId": photo_id})
        liked = await watcher.wait_for("photo:liked")
        mine = await asker.wait_for("photo:liked")
    assert answer == {"photoId": photo_id, "likeCount": 1, "liked": True, "changed": True}
    assert liked == mine and liked["likeCount"] == 1


async def test_the_viewer_count_of_an_event_is_the_whole_clusters(
    nodes: list[str], publisher: Api, cluster_settings: Settings
) -> None:
    slug = f"viewers-{uuid.uuid4().hex[:8]}"
    await publisher.event(slug)
    async with clients(3) as (first, second, third):
        await first.connect(nodes[0])
        await second.connect(nodes[1])
        await third.connect(nodes[1])
        await first.call("join:event", slug)
        await first.wait_for("presence:count", lambda data: data["count"] == 1)
        for client in (second, third):
            await client.call("join:event", slug)
        # Each node counts its own sockets; both tell their clients the sum.
        for client in (first, second, third):
            assert await client.wait_for("presence:count", lambda data: data["count"] == 3)
        joined_late = await first.call("join:event", slug)
        assert joined_late["count"] == 3  # a join's ack already counts the other node's viewers

        first.events.clear()
        await third.call("leave:event", slug)
        await second.close()
        assert await first.wait_for("presence:count", lambda data: data["count"] == 1)
        await asyncio.sleep(QUIET_SECONDS)
        assert first.named("presence:count")[-1] == {"eventSlug": slug, "count": 1}


class _HeldCounts:
    """The cluster's counts (``ClusterCounts``) as a node sees them, each answer held until the test releases it:
    what the node told Redis, in order."""

    def __init__(self) -> None:
        self.told: list[dict[str, int]] = []
        self.answering = asyncio.Event()
        self._telling = asyncio.Condition()

    async def publish(self, counts: dict[str, int]) -> dict[str, int]:
        async with self._telling:
            self.told.append(dict(counts))
            self._telling.notify_all()
        await self.answering.wait()
        return dict(counts)

    async def until_told(self, counts: dict[str, int]) -> None:
        async with asyncio.timeout(WAIT_SECONDS), self._telling:
            await self._telling.wait_for(lambda: counts in self.told)

    async def aclose(self) -> None:
        return None


async def _nobody_listens(name: str, room: str, payload: dict[str, Any]) -> None:
    return None


async def test_a_room_that_empties_while_its_count_is_on_the_way_to_redis_is_then_told_empty() -> None:
    """Else the node's last count stays in Redis until its entry expires, and the other nodes count viewers who
    have left (seen: a node went on announcing 2 where 1 remained)."""
    cluster = _HeldCounts()
    presence = Presence(_nobody_listens, interval=0.01, cluster=cluster)
    room = "event:wedding"
    try:
        presence.joined("a", room)
        presence.joined("b", room)
        await cluster.until_told({room: 2})
        presence.left("b", room)
        presence.disconnected("a")  # the room is empty here while the count of 2 is still on its way
        cluster.answering.set()
        await cluster.until_told({room: 0})
    finally:
        await presence.aclose()

"""One contract for every provider: memory, Ably, Pusher and Socket.IO, each observed where its service receives
(the memory provider's record; the local Ably and Pusher services, which check each request as the real ones do; the
Redis channel every Socket.IO node listens on). What only one provider does is tested in its own module."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest

from core.access import grant_for
from core.auth import Principal
from core.messages import GROUP
from core.outbox.relay import relay_once
from core.realtime.base import RealtimeError, RealtimeProvider
from core.realtime.factory import create_provider
from core.realtime.memory import MemoryProvider
from core.realtime.pusher import logical_channel
from core.settings import Settings
from standins.ably_service import FakeAbly
from standins.pusher_service import FakePusher
from tests.fakes.in_flight import FakeService, fresh_for_next_test
from tests.support.api import api_with, bearer, realtime_message
from tests.support.environment import make_settings, redis_url
from tests.support.loopback import LoopbackServer, serving
from tests.support.outbox import hold_channel_lease, make_due, outbox_rows
from tests.support.tcp_forwarder import TcpForwarder

WAIT_SECONDS = 5.0
GUEST = Principal(role="GUEST", subject="guest-contract", events=frozenset({"party"}))
ADMIN = Principal(role="ADMIN", subject="admin:7")


@dataclass(frozen=True)
class Received:
    """A message as the provider's service took it: on which logical channel, under which id."""

    channel: str
    name: str
    id: str
    data: dict[str, Any]


def _events(message: Received) -> list[Received]:
    if message.name != GROUP:
        return [message]
    return [Received(message.channel, e["name"], e["data"]["id"], e["data"]) for e in message.data["events"]]


class Service(ABC):
    """A provider's service as the test controls and observes it."""

    name: str
    # Every message of one publish goes out in one request (a batch publish); Socket.IO emits one at a time.
    batches: bool = True
    # Whether the service deduplicates a message id it has seen (Ably, for 2 minutes): then a retry after a
    # cut-off publish is delivered once; elsewhere browsers drop the repeated id.
    deduplicates: bool = False

    def settings(self, database_url: str, **overrides: Any) -> Settings:
        return make_settings(database_url, **(self.overrides() | overrides))

    @abstractmethod
    def overrides(self) -> dict[str, Any]: ...

    def refused_credentials(self) -> dict[str, Any] | None:
        """Settings with credentials the service refuses; None where it has none to refuse."""
        return None

    async def reset(self) -> None:  # noqa: B027 - a service with nothing recorded keeps the default
        pass

    @abstractmethod
    async def messages(self, provider: RealtimeProvider, *, at_least: int = 0) -> list[Received]:
        """The messages the service took, groups as they came; waits for ``at_least`` events where it must."""

    async def received(self, provider: RealtimeProvider, *, at_least: int = 0) -> list[Received]:
        """The events the service took, each group's one by one, as a subscriber handles them."""
        return [event for message in await self.messages(provider, at_least=at_least) for event in _events(message)]

    @abstractmethod
    def requests(self, provider: RealtimeProvider) -> int: ...

    @abstractmethod
    def unreachable(self, provider: RealtimeProvider) -> contextlib.AbstractAsyncContextManager[None]: ...

    @abstractmethod
    def slow(self, provider: RealtimeProvider) -> contextlib.AbstractAsyncContextManager[None]: ...

    @abstractmethod
    def channels_allowed(self, credentials: dict[str, Any]) -> set[str]:
        """The logical channels the browser credentials let a browser subscribe to."""


class MemoryService(Service):
    name = "memory"

    def overrides(self) -> dict[str, Any]:
        return {"realtime_provider": "memory"}

    async def messages(self, provider: RealtimeProvider, *, at_least: int = 0) -> list[Received]:
        assert isinstance(provider, MemoryProvider)
        return [Received(m.channel, m.name, m.id, m.data) for m in provider.published]

    def requests(self, provider: RealtimeProvider) -> int:
        assert isinstance(provider, MemoryProvider)
        return len(provider.publish_calls)

    @contextlib.asynccontextmanager
    async def unreachable(self, provider: RealtimeProvider) -> AsyncIterator[None]:
        assert isinstance(provider, MemoryProvider)
        provider.failure = ConnectionRefusedError("down")
        yield
        provider.failure = None

    @contextlib.asynccontextmanager
    async def slow(self, provider: RealtimeProvider) -> AsyncIterator[None]:
        assert isinstance(provider, MemoryProvider)
        provider.delay_seconds = 1.0
        yield
        provider.delay_seconds = 0.0

    def channels_allowed(self, credentials: dict[str, Any]) -> set[str]:
        return set(credentials["channels"])


class LoopbackService(Service):
    """A local stand-in of a provider's HTTP API (Ably's, Pusher's), served on loopback."""

    service: FakeService
    server: LoopbackServer

    async def reset(self) -> None:
        await fresh_for_next_test(self.service, self.server)

    @contextlib.asynccontextmanager
    async def unreachable(self, provider: RealtimeProvider) -> AsyncIterator[None]:
        await self.server.stop()
        yield
        await self.server.start()

    @contextlib.asynccontextmanager
    async def slow(self, provider: RealtimeProvider) -> AsyncIterator[None]:
        self.service.delay_seconds = 1.0
        yield
        self.service.delay_seconds = 0.0
        await self.service.in_flight.settle()


@dataclass
class AblyService(LoopbackService):
    service: FakeAbly
    server: LoopbackServer
    name = "ably"
    deduplicates = True

    def overrides(self) -> dict[str, Any]:
        return {
            "realtime_provider": "ably",
            "ably_api_key": self.service.key,
            "ably_endpoint": "127.0.0.1",
            "ably_tls": False,
            "ably_port": self.server.port,
            "ably_use_binary_protocol": False,
        }

    def refused_credentials(self) -> dict[str, Any]:
        return {"ably_api_key": f"{self.service.key_name}:not-the-secret"}

    async def messages(self, provider: RealtimeProvider, *, at_least: int = 0) -> list[Received]:
        await self.service.in_flight.settle()
        return [Received(d.channel, d.name or "", d.id, d.data) for d in self.service.delivered]

    def requests(self, provider: RealtimeProvider) -> int:
        return len(self.service.requests)

    def channels_allowed(self, credentials: dict[str, Any]) -> set[str]:
        capability: dict[str, list[str]] = json.loads(credentials["tokenRequest"]["capability"])
        assert not any("publish" in ops or "*" in ops for ops in capability.values()), capability
        return set(capability)


@dataclass
class PusherService(LoopbackService):
    service: FakePusher
    server: LoopbackServer
    name = "pusher"

    def overrides(self) -> dict[str, Any]:
        return {
            "realtime_provider": "pusher",
            "pusher_app_id": self.service.app_id,
            "pusher_key": self.service.key,
            "pusher_secret": self.service.secret,
            "pusher_host": "127.0.0.1",
            "pusher_port": self.server.port,
            "pusher_scheme": "http",
        }

    def refused_credentials(self) -> dict[str, Any]:
        return {"pusher_secret": "not-the-secret"}

    async def messages(self, provider: RealtimeProvider, *, at_least: int = 0) -> list[Received]:
        await self.service.in_flight.settle()
        found = []
        for event in self.service.accepted:
            data = json.loads(event["data"])
            found.append(Received(logical_channel(event["channel"]) or "?", event["name"], data["id"], data))
        return found

    def requests(self, provider: RealtimeProvider) -> int:
        return len(self.service.requests)

    def channels_allowed(self, credentials: dict[str, Any]) -> set[str]:
        allowed = {logical_channel(channel) for channel in credentials["channels"]}
        assert None not in allowed, credentials
        return {channel for channel in allowed if channel}


@dataclass
class SocketIOService(Service):
    """The Redis channel the Socket.IO nodes listen on, reached through a hop the test can cut or slow."""

    forwarder: TcpForwarder
    redis_channel: str
    heard: list[dict[str, Any]]
    arrived: asyncio.Event
    name = "socketio"
    batches = False

    def overrides(self) -> dict[str, Any]:
        return {
            "realtime_provider": "socketio",
            "socketio_redis_url": f"redis://127.0.0.1:{self.forwarder.port}/0",
            "socketio_redis_channel": self.redis_channel,
        }

    async def reset(self) -> None:
        await self.forwarder.start()
        self.forwarder.delay_seconds = 0.0
        self.heard.clear()

    async def messages(self, provider: RealtimeProvider, *, at_least: int = 0) -> list[Received]:
        deadline = time.monotonic() + WAIT_SECONDS
        while self._events_heard() < at_least and time.monotonic() < deadline:
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), deadline - time.monotonic())
        await asyncio.sleep(0.05)  # anything still on its way
        emits = [m for m in self.heard if m.get("method") == "emit"]
        # python-socketio sends an emit's arguments as a list: ours is the one payload.
        return [Received(m["room"], m["event"], m["data"][0]["id"], m["data"][0]) for m in emits]

    def _events_heard(self) -> int:
        emits = [m for m in self.heard if m.get("method") == "emit"]
        return sum(len(m["data"][0]["events"]) if m["event"] == GROUP else 1 for m in emits)

    def requests(self, provider: RealtimeProvider) -> int:
        return len([m for m in self.heard if m.get("method") == "emit"])

    @contextlib.asynccontextmanager
    async def unreachable(self, provider: RealtimeProvider) -> AsyncIterator[None]:
        await self.forwarder.stop()
        yield
        await self.forwarder.start()

    @contextlib.asynccontextmanager
    async def slow(self, provider: RealtimeProvider) -> AsyncIterator[None]:
        self.forwarder.delay_seconds = 1.0
        yield
        self.forwarder.delay_seconds = 0.0

    def channels_allowed(self, credentials: dict[str, Any]) -> set[str]:
        return set(credentials["channels"]) | ({"event:*"} if credentials.get("allEvents") else set())


@contextlib.asynccontextmanager
async def _socketio_service() -> AsyncIterator[SocketIOService]:
    url = redis_url()
    if url is None:
        pytest.skip("no Redis reachable (set TEST_REDIS_URL or start one on 127.0.0.1:6379)")
    import redis.asyncio

    target = urlsplit(url)
    forwarder = TcpForwarder(target.hostname or "127.0.0.1", target.port or 6379)
    channel = f"hafi-contract-{uuid.uuid4().hex[:10]}"
    heard: list[dict[str, Any]] = []
    arrived = asyncio.Event()
    connection = redis.asyncio.Redis.from_url(url)
    pubsub = connection.pubsub()
    await pubsub.subscribe(channel)

    async def listen() -> None:
        async for message in pubsub.listen():
            if message["type"] == "message":
                heard.append(json.loads(message["data"]))
                arrived.set()

    listener = asyncio.create_task(listen())
    try:
        yield SocketIOService(forwarder, channel, heard, arrived)
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
        await forwarder.stop()
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await connection.aclose()


@pytest.fixture(scope="module", params=["memory", "ably", "pusher", "socketio"])
async def any_service(request: pytest.FixtureRequest) -> AsyncIterator[Service]:
    if request.param == "memory":
        yield MemoryService()
    elif request.param == "ably":
        fake_ably = FakeAbly()
        async with serving(fake_ably.app) as server:
            yield AblyService(fake_ably, server)
    elif request.param == "pusher":
        fake_pusher = FakePusher()
        async with serving(fake_pusher.app) as server:
            yield PusherService(fake_pusher, server)
    else:
        async with _socketio_service() as socketio_service:
            yield socketio_service


@pytest.fixture
async def service(any_service: Service) -> Service:
    await any_service.reset()
    return any_service


@contextlib.asynccontextmanager
async def provider_of(settings: Settings) -> AsyncIterator[RealtimeProvider]:
    provider = create_provider(settings)
    try:
        yield provider
    finally:
        await provider.aclose()


# Publishing


async def test_each_message_arrives_once_with_its_id_its_data_unchanged_and_on_its_channel(
    database_url: str, service: Service
) -> None:
    messages = [
        realtime_message(1, likeCount=1, note="ünïcødé 🎉"),
        realtime_message(2, "admin", comment={"content": 'quotes " and \\ slashes'}),
        realtime_message(3, likeCount=2),
    ]
    async with provider_of(service.settings(database_url)) as provider:
        await provider.publish(messages)
        received = await service.received(provider, at_least=3)

    assert received == [Received(m.channel, m.name, m.id, m.data) for m in messages]
    assert service.requests(provider) == (1 if service.batches else 3)


async def test_an_unreachable_service_is_a_transient_failure(database_url: str, service: Service) -> None:
    async with provider_of(service.settings(database_url)) as provider, service.unreachable(provider):
        with pytest.raises(RealtimeError) as failed:
            await provider.publish([realtime_message(1)])

    assert failed.value.transient is True
    assert str(failed.value).startswith(f"{service.name}: ")


# Only these have credentials their service checks: Socket.IO publishes to Redis, memory to itself.
@pytest.mark.parametrize("any_service", ["ably", "pusher"], indirect=True)
async def test_refused_credentials_are_a_rejection_that_the_outbox_parks_after_its_attempts(
    database_url: str, service: Service
) -> None:
    refused = service.refused_credentials()
    assert refused is not None
    async with api_with(service.settings(database_url, outbox_max_attempts=2, **refused)) as api:
        photo_id, _ = await api.event("wedding")
        guest = await api.guest()
        admin = await api.admin()

        liked = await api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(guest))
        [first] = await outbox_rows(api.runtime)
        await make_due(api.runtime)
        await relay_once(api.runtime)
        [row] = await outbox_rows(api.runtime)
        metrics = await api.client.get("/api/metrics", headers=bearer(admin))
        received = await service.received(api.runtime.provider)

    assert liked.status_code == 200
    assert first.last_error.startswith(f"rejected: {service.name}: ") and first.parked_at is None
    assert row.parked_at is not None and row.attempts == 2 and row.published_at is None
    assert metrics.json()["outbox"]["parked"] == 1
    assert received == []


# Through the API


async def test_one_action_is_one_publish_and_a_comment_carries_both_of_its_messages(
    database_url: str, service: Service
) -> None:
    async with api_with(service.settings(database_url)) as api:
        photo_id, _ = await api.event("wedding")
        guest = await api.guest()

        liked = await api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(guest))
        after_like = service.requests(api.runtime.provider)
        commented = await api.client.post(
            f"/api/photos/{photo_id}/comments", json={"authorName": "Ann", "content": "Lovely"}, headers=bearer(guest)
        )
        received = await service.received(api.runtime.provider, at_least=3)
        rows = await outbox_rows(api.runtime)

    assert (liked.status_code, commented.status_code) == (200, 201)
    assert after_like == 1
    assert service.requests(api.runtime.provider) == (2 if service.batches else 3)
    assert [(r.channel, r.name) for r in received] == [
        ("event:wedding", "photo:liked"),
        ("event:wedding", "comment:added"),
        ("admin", "notification:new-comment"),
    ]
    assert [r.id for r in received] == [str(row.id) for row in rows]
    assert [r.data["seq"] for r in received] == [row.seq for row in rows] == [1, 2, 1]
    assert all(row.published_at is not None for row in rows)


async def test_likes_committed_while_the_channel_is_held_go_out_as_one_group_in_one_message(
    database_url: str, service: Service
) -> None:
    async with api_with(service.settings(database_url, rate_limit_per_minute=10_000)) as api:
        photo_a, photo_b = await api.event("wedding")
        guests = [await api.guest() for _ in range(5)]
        provider = api.runtime.provider
        alone = await api.client.post(f"/api/photos/{photo_a}/like", headers=bearer(guests[0]))
        await hold_channel_lease(api.runtime, "event:wedding", "another-publisher", seconds=30)
        left = [await api.client.post(f"/api/photos/{photo_a}/like", headers=bearer(g)) for g in guests[1:]]
        before = service.requests(provider)
        await hold_channel_lease(api.runtime, "event:wedding", "another-publisher", seconds=-1)  # it died
        taking_over = await api.client.post(f"/api/photos/{photo_b}/like", headers=bearer(guests[0]))
        messages = await service.messages(provider, at_least=6)
        received = await service.received(provider, at_least=6)
        rows = await outbox_rows(api.runtime)

    assert [r.status_code for r in [alone, *left, taking_over]] == [200] * 6
    assert before == 1 and service.requests(provider) == 2  # the group is one request, one emit
    assert [m.name for m in messages] == ["photo:liked", GROUP]
    group = messages[1]
    assert (group.id, group.data["fromSeq"], group.data["toSeq"]) == (f"{rows[1].id}-{rows[5].id}", 2, 6)
    assert [(r.id, r.data["seq"]) for r in received] == [(str(row.id), row.seq) for row in rows]
    assert all(row.published_at is not None for row in rows)


async def test_actions_succeed_through_an_outage_and_a_slow_service_and_the_relay_delivers_every_message(
    database_url: str, service: Service
) -> None:
    async with api_with(service.settings(database_url)) as api:
        photo_a, photo_b = await api.event("wedding")
        guests = [await api.guest() for _ in range(3)]
        provider = api.runtime.provider

        async with service.unreachable(provider):
            during_outage = [await api.client.post(f"/api/photos/{photo_a}/like", headers=bearer(g)) for g in guests]
        async with service.slow(provider):
            while_slow = await api.client.post(
                f"/api/photos/{photo_b}/comments", json={"authorName": "Bo", "content": "Hi"}, headers=bearer(guests[0])
            )
        pending = await outbox_rows(api.runtime)
        await make_due(api.runtime)
        relayed = await relay_once(api.runtime)
        rows = await outbox_rows(api.runtime)
        received = await service.received(provider, at_least=len(rows))

    assert [r.status_code for r in during_outage] == [200, 200, 200] and while_slow.status_code == 201
    assert len(pending) == 5 and all(row.published_at is None and row.last_error for row in pending)
    assert not any(row.last_error.startswith("rejected") for row in pending)
    assert relayed["published"] == 5 and all(row.published_at is not None for row in rows)
    ids = [r.id for r in received]
    assert set(ids) == {str(row.id) for row in rows}
    # A publish cut off while slow may still have landed; only a deduplicating service hides the retry.
    assert len(ids) == len(rows) if service.deduplicates else len(ids) <= len(rows) + 2
    by_id = {r.id: r for r in received}
    assert all(by_id[str(row.id)].data["seq"] == row.seq for row in rows)


# Browser credentials


async def test_credentials_let_a_browser_subscribe_to_exactly_the_granted_channels(
    database_url: str, service: Service
) -> None:
    async with provider_of(service.settings(database_url)) as provider:
        guest = await provider.browser_credentials(grant_for(GUEST, ["open-day"]))
        admin = await provider.browser_credentials(grant_for(ADMIN))

    assert guest["provider"] == admin["provider"] == service.name
    assert service.channels_allowed(guest) == {"event:open-day", "event:party"}
    allowed_to_admin = service.channels_allowed(admin)
    assert "admin" in allowed_to_admin
    assert allowed_to_admin - {"admin"} in ({"event:*"}, set()), allowed_to_admin

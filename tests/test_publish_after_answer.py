"""Where a request publishes: the API served by a process that outlives its requests (``server_app``, what uvicorn
serves) answers an action once it is committed and publishes after, and waits for those publishes when it shuts
down; a function's app (``create_app``) publishes before it answers, since it is frozen once it has answered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from core import unit_of_work
from core.api.app import create_app, server_app
from core.outbox import relay
from core.realtime.base import RealtimeMessage
from core.realtime.memory import MemoryProvider
from core.runtime import Runtime, build_runtime
from core.settings import Settings
from tests.support.api import Api, bearer
from tests.support.database import empty_tables
from tests.support.outbox import outbox_rows

WAIT = 10.0  # seconds: a bound on waiting for what must happen, never a measurement


class GatedProvider(MemoryProvider):
    """Publishes once the test opens the gate, and tells when a publish has begun and when it has ended."""

    def __init__(self) -> None:
        super().__init__()
        self.begun = asyncio.Event()
        self.gate = asyncio.Event()
        self.ended = asyncio.Event()

    async def publish(self, events: Sequence[RealtimeMessage]) -> None:
        self.begun.set()
        await self.gate.wait()
        await super().publish(events)
        self.ended.set()


def _patient(settings: Settings) -> Settings:
    # The publish held at the gate must not time out (the tests' settings allow half a second) on a slow machine.
    return settings.model_copy(update={"publish_timeout_seconds": WAIT})


@asynccontextmanager
async def _served(runtime: Runtime, app: FastAPI) -> AsyncIterator[Api]:
    await empty_tables(runtime.engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        yield Api(client, runtime)


async def _unpublished(runtime: Runtime) -> int:
    return sum(row.published_at is None for row in await outbox_rows(runtime))


@asynccontextmanager
async def _liking(
    settings: Settings, make_app: Callable[[Runtime], FastAPI]
) -> AsyncIterator[tuple[Api, GatedProvider, str, dict[str, str]]]:
    """The app ``make_app`` builds over a gated provider, a photo's like URL and a guest's headers."""
    provider = GatedProvider()
    runtime = build_runtime(_patient(settings), provider=provider)
    try:
        async with _served(runtime, make_app(runtime)) as api:
            photo = (await api.event("after-answer", photos=1))[0]
            yield api, provider, f"/api/photos/{photo}/like", bearer(await api.guest())
    finally:
        provider.gate.set()
        await runtime.aclose()


async def test_a_server_answers_a_like_while_its_publish_is_still_under_way(settings: Settings) -> None:
    async with _liking(settings, server_app) as (api, provider, like, guest):
        # answered while the provider has not answered: the test would time out here if the like waited
        response = await asyncio.wait_for(api.client.post(like, headers=guest), WAIT)
        await asyncio.wait_for(provider.begun.wait(), WAIT)

        assert response.status_code == 200
        assert response.json()["likeCount"] == 1
        assert provider.published == []
        assert await _unpublished(api.runtime) == 1

        provider.gate.set()
        await asyncio.wait_for(provider.ended.wait(), WAIT)
        assert [message.name for message in provider.published] == ["photo:liked"]


async def test_a_server_shutting_down_waits_for_the_publishes_of_its_answered_requests(settings: Settings) -> None:
    async with _liking(settings, server_app) as (api, provider, like, guest):
        response = await api.client.post(like, headers=guest)
        assert response.status_code == 200
        await asyncio.wait_for(provider.begun.wait(), WAIT)

        closing = asyncio.create_task(api.runtime.aclose())
        await asyncio.sleep(0.2)
        assert not closing.done()  # the publish is held at the gate

        provider.gate.set()
        await asyncio.wait_for(closing, WAIT)

    assert [message.name for message in provider.published] == ["photo:liked"]
    checking = build_runtime(settings)
    try:
        assert await _unpublished(checking) == 0  # published and marked before the engine closed
    finally:
        await checking.aclose()


async def test_a_function_publishes_before_it_answers(settings: Settings) -> None:
    async with _liking(settings, create_app) as (api, provider, like, guest):
        liking = asyncio.create_task(api.client.post(like, headers=guest))
        await asyncio.wait_for(provider.begun.wait(), WAIT)
        await asyncio.sleep(0.2)
        assert not liking.done()  # a function's answer waits for the provider

        provider.gate.set()
        response = await asyncio.wait_for(liking, WAIT)
        assert response.status_code == 200
        assert await _unpublished(api.runtime) == 0


async def test_a_server_publish_whose_connection_comes_too_late_for_its_lease_is_left_to_the_relay(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if the pool had kept the publish waiting past what the lease leaves room for (another publisher holding
    # the connection against a slow provider): publishing then could outlive the lease, and whoever took it next
    # would send the same events again.
    monkeypatch.setattr(unit_of_work, "_LEASE_MARGIN_SECONDS", 3_600.0)
    async with _liking(settings, server_app) as (api, provider, like, guest):
        provider.gate.set()
        response = await api.client.post(like, headers=guest)
        assert response.status_code == 200
        await api.runtime.work_after_answers_done(WAIT)

        assert provider.published == []
        async with api.runtime.engine.connect() as conn:
            holders = (await conn.scalars(text("SELECT publisher FROM channel_sequences"))).all()
        assert holders == [None]  # the lease given up, for the next writer or the relay
        assert await _unpublished(api.runtime) == 1

        relayed = await relay.relay(api.runtime.engine, provider, api.runtime.settings)
        assert relayed.published == 1
        assert [message.name for message in provider.published] == ["photo:liked"]

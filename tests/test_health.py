"""Liveness and readiness: ``/api/health`` answers without the database; ``/api/health/ready`` answers 503 when the
database does not answer in time, says how the realtime provider's last publishes went, and leaks nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from core.api.app import create_app
from core.api.routes.health import READINESS_TIMEOUT_SECONDS
from core.realtime.memory import MemoryProvider
from core.runtime import build_runtime
from tests.support.api import Api, api_with, bearer
from tests.support.environment import make_settings
from tests.support.outbox import make_due
from tests.support.ports import free_port

UNAVAILABLE = {"status": "unavailable", "database": "unavailable", "provider": {"name": "memory"}}


@contextlib.asynccontextmanager
async def _api_on_database(url: str) -> AsyncIterator[httpx.AsyncClient]:
    # A connect timeout longer than the readiness bound: only the bound can end a hanging check in time.
    runtime = build_runtime(make_settings(url, db_connect_timeout=30), provider=MemoryProvider())
    transport = httpx.ASGITransport(app=create_app(runtime))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
    finally:
        await runtime.aclose()


@contextlib.asynccontextmanager
async def _silent_database() -> AsyncIterator[int]:
    """A port that accepts connections and never answers: a database that hangs."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_liveness_answers_while_the_database_is_down_and_readiness_does_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with _api_on_database(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/hafi") as client:
        live = await client.get("/api/health")
        # The app's logs do not propagate to the root logger, where caplog listens.
        health_log = logging.getLogger("hafi.health")
        health_log.addHandler(caplog.handler)
        try:
            ready = await client.get("/api/health/ready")
        finally:
            health_log.removeHandler(caplog.handler)

    assert live.status_code == 200 and live.json() == {"status": "ok", "provider": "memory"}
    assert ready.status_code == 503
    assert ready.json() == UNAVAILABLE  # what Postgres said goes to the log, not to the caller
    assert any(record.exc_info for record in caplog.records if record.name == "hafi.health")


async def test_readiness_of_a_database_that_hangs_answers_within_its_bound() -> None:
    async with (
        _silent_database() as port,
        _api_on_database(f"postgresql+psycopg://postgres@127.0.0.1:{port}/hafi") as client,
    ):
        started = time.monotonic()
        ready = await client.get("/api/health/ready")
        elapsed = time.monotonic() - started

    assert ready.status_code == 503 and ready.json() == UNAVAILABLE
    # Bounded by the readiness timeout, not by the 30 s connect timeout; room for a slow machine.
    assert elapsed < READINESS_TIMEOUT_SECONDS + 5


async def _ready(api: Api) -> dict[str, object]:
    response = await api.client.get("/api/health/ready")
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def test_readiness_reports_a_failing_provider_without_failing_itself(database_url: str) -> None:
    provider = MemoryProvider()
    async with api_with(make_settings(database_url), provider=provider) as api:
        photo_a, photo_b = await api.event("wedding")
        guest = await api.guest()
        before = await _ready(api)
        provider.failure = ConnectionRefusedError("down")
        await api.client.post(f"/api/photos/{photo_a}/like", headers=bearer(guest))
        failing = await _ready(api)
        provider.failure = None
        await make_due(api.runtime)
        await api.client.post(f"/api/photos/{photo_b}/like", headers=bearer(guest))
        recovered = await _ready(api)

    assert before == {"status": "ready", "database": "ok", "provider": _provider(status="ok", consecutiveFailures=0)}
    assert failing["status"] == "ready"
    failing_provider = failing["provider"]
    assert isinstance(failing_provider, dict)
    assert failing_provider["status"] == "failing" and failing_provider["consecutiveFailures"] == 1
    assert failing_provider["lastError"] == "memory: down"
    assert failing_provider["failingSince"] == failing_provider["lastFailureAt"] is not None
    assert failing_provider["nextProbeAt"] is not None
    recovered_provider = recovered["provider"]
    assert isinstance(recovered_provider, dict)
    assert recovered_provider["status"] == "ok" and recovered_provider["failingSince"] is None
    assert recovered_provider["lastSuccessAt"] is not None and recovered_provider["lastError"] is None


def _provider(**fields: object) -> dict[str, object]:
    nothing_yet = {"failingSince": None, "nextProbeAt": None, "lastError": None}
    return {"name": "memory", **nothing_yet, "lastSuccessAt": None, "lastFailureAt": None, **fields}

"""How many times a like waits for the database: each wait is a network round trip, paid on every request.

Counted on the wire: libpq's protocol trace of the one pooled connection, where every round trip ends with the
server's ReadyForQuery message."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from psycopg import pq

from core.api.app import create_app
from core.realtime.memory import MemoryProvider
from core.runtime import Runtime, build_runtime
from tests.support.api import Api, bearer
from tests.support.environment import make_settings


@pytest.fixture
async def single_connection_api(runtime: Runtime) -> AsyncIterator[Api]:
    """The API as a Lambda sandbox runs it: one pooled connection."""
    lambda_like = build_runtime(
        make_settings(runtime.settings.require_database_url(), db_pool_size=1), provider=MemoryProvider()
    )
    transport = httpx.ASGITransport(app=create_app(lambda_like))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield Api(client, lambda_like)
    await lambda_like.aclose()


def _round_trips(trace: str) -> list[str]:
    """The client's messages of each round trip, as one string per trip."""
    trips: list[str] = []
    sent: list[str] = []
    for line in trace.splitlines():
        if line.startswith("B\t") and "\tReadyForQuery\t" in line:
            trips.append(" ".join(sent))
            sent = []
        elif not line.startswith("B\t"):
            sent.append(line)
    return trips


@asynccontextmanager
async def wire_trace(api: Api) -> AsyncIterator[list[str]]:
    """Fills the yielded list with the round trips of the pool's only connection made inside the block."""
    async with api.runtime.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        pgconn = raw.driver_connection.pgconn  # type: ignore[union-attr]
    trips: list[str] = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "trace"
        with path.open("w") as sink:
            pgconn.trace(sink.fileno())
            pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
            try:
                yield trips
            finally:
                pgconn.untrace()  # flushes libpq's buffer
        trips.extend(_round_trips(path.read_text()))


async def test_a_like_takes_eight_round_trips_around_one_transaction(single_connection_api: Api) -> None:
    api = single_connection_api
    photo_id, _ = await api.event("wedding")
    guest = await api.guest()

    async with wire_trace(api) as trips:
        response = await api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(guest))

    assert response.status_code == 200
    # the pool's pre-ping; BEGIN; rate limit; photo and event lookup; like row and counter in one statement;
    # numbered outbox rows in one statement; COMMIT; then, after the publish, marking the events published.
    assert len(trips) == 8, "\n".join(trips)
    expected = ['";"', "BEGIN", "rate_limits", "FROM photos JOIN events", "INSERT INTO likes", "INSERT INTO outbox"]
    for trip, marker in zip(trips, [*expected, "COMMIT", "UPDATE outbox SET published_at"], strict=True):
        assert marker in trip, (marker, trip)


async def test_a_repeated_like_changes_nothing_and_publishes_nothing(single_connection_api: Api) -> None:
    api = single_connection_api
    photo_id, _ = await api.event("wedding")
    guest = await api.guest()
    await api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(guest))

    async with wire_trace(api) as trips:
        response = await api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(guest))

    assert response.json()["changed"] is False
    # ping, BEGIN, rate limit, lookup, like (no row), read the count, COMMIT
    assert len(trips) == 7, "\n".join(trips)
    assert not any("outbox" in trip for trip in trips)


async def test_a_like_while_the_provider_is_failing_and_its_probe_not_due_still_takes_eight(
    single_connection_api: Api,
) -> None:
    api = single_connection_api
    provider = api.runtime.provider
    assert isinstance(provider, MemoryProvider)
    photo_a, photo_b = await api.event("wedding")
    guest = await api.guest()
    provider.failure = ConnectionRefusedError("down")
    await api.client.post(f"/api/photos/{photo_a}/like", headers=bearer(guest))  # finds it failing

    async with wire_trace(api) as trips:
        response = await api.client.post(f"/api/photos/{photo_b}/like", headers=bearer(guest))

    assert response.status_code == 200
    # Instead of marking the events published, one statement asks for the provider's probe and, not getting it,
    # hands the events to the relay; the provider is not called.
    assert len(trips) == 8, "\n".join(trips)
    assert "provider_health" in trips[-1] and "UPDATE outbox SET next_attempt_at" in trips[-1]

"""Database round trips per like, counted on the wire exactly as ``tests/test_round_trips.py`` counts them (libpq's
protocol trace of a one-connection pool, one trip per ReadyForQuery). Reported: every trip of one like, and the
figure the issue sets a goal for, everything but the post-publish mark. The floor (the peer) is one transaction."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from bench.common import JWT_SECRET, load_average
from core.api.app import create_app
from core.realtime.memory import MemoryProvider
from core.runtime import build_runtime
from core.settings import load_settings
from tests.support.api import Api, bearer
from tests.test_round_trips import wire_trace

POST_PUBLISH_MARK = "UPDATE outbox SET published_at"


async def _count(database_url: str) -> dict[str, Any]:
    settings = load_settings(database_url=database_url, db_pool_size=1, jwt_secret=JWT_SECRET)
    runtime = build_runtime(settings, provider=MemoryProvider())
    try:
        transport = httpx.ASGITransport(app=create_app(runtime))
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            api = Api(client, runtime)
            photo_id = (await api.event("bench-trips", photos=1))[0]
            guest = await api.guest()
            async with wire_trace(api) as trips:
                response = await client.post(f"/api/photos/{photo_id}/like", headers=bearer(guest))
            response.raise_for_status()
    finally:
        await runtime.aclose()
    before_mark = [trip for trip in trips if POST_PUBLISH_MARK not in trip]
    return {
        "total_round_trips": len(trips),
        "round_trips_but_post_publish_mark": len(before_mark),
        "floor": 1,
        "trips": [trip[:160] for trip in trips],
    }


def run(smoke: bool, database_url: str) -> dict[str, Any]:
    del smoke  # one like is the whole measurement; a count does not get noisier with less time
    started_load = load_average()
    result = asyncio.run(_count(database_url))
    return {"load_average_at_start": started_load, **result}

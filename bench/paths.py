"""The like path and the comment path, one request at a time through the app against Postgres (pool of 10, the
memory provider): p50 and the tail, so that making one figure faster is seen not to make these slower.

Both publish on the event's channel, which publishes at most CHANNEL_PUBLISH_CEILING_PER_SECOND times a second
(docs/architecture.md): requests are spaced by one interval of it, outside the timed part, so that what is measured
is the path, not the ceiling holding back a publish that came sooner than a channel may have one."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from bench.common import JWT_SECRET, load_average, percentiles
from core.api.app import create_app
from core.realtime.memory import MemoryProvider
from core.runtime import build_runtime
from core.settings import load_settings
from tests.support.api import Api, bearer


async def _measure(database_url: str, *, requests: int) -> dict[str, Any]:
    settings = load_settings(
        database_url=database_url,
        db_pool_size=10,
        jwt_secret=JWT_SECRET,
        rate_limit_per_minute=1_000_000,
        address_actions_per_minute=1_000_000,  # every request comes from one address
        # no line per request (the default, INFO, writes one): the bare peer logs nothing, and hundreds of lines
        # on the benchmark's stdout would hide its results
        log_level="WARNING",
    )
    runtime = build_runtime(settings, provider=MemoryProvider())
    try:
        transport = httpx.ASGITransport(app=create_app(runtime))
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            api = Api(client, runtime)
            photo_ids = await api.event("bench-paths", photos=50)
            # a new guest for each pass over the photos, so that every like changes something and publishes
            guests = [await api.guest() for _ in range(-(-requests // len(photo_ids)))]
            like_ms: list[float] = []
            comment_ms: list[float] = []
            # an earlier commit, measured by bench/paths_versus.py, may have no ceiling: space its requests the same
            interval = 1 / getattr(settings, "channel_publish_ceiling_per_second", 20) + 0.005
            for i in range(requests):
                await asyncio.sleep(interval)
                photo_id = photo_ids[i % len(photo_ids)]
                headers = bearer(guests[i // len(photo_ids)])
                started = time.perf_counter()
                like = await client.post(f"/api/photos/{photo_id}/like", headers=headers)
                like_ms.append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(interval)
                started = time.perf_counter()
                comment = await client.post(
                    f"/api/photos/{photo_id}/comments",
                    json={"authorName": "Bench", "content": f"comment {i}"},
                    headers=headers,
                )
                comment_ms.append((time.perf_counter() - started) * 1000)
                if like.status_code != 200 or comment.status_code not in (200, 201):
                    raise RuntimeError(f"like {like.status_code} {like.text[:200]}; comment {comment.text[:200]}")
    finally:
        await runtime.aclose()
    return {"like": percentiles(like_ms), "comment": percentiles(comment_ms)}


def run(smoke: bool, database_url: str) -> dict[str, Any]:
    requests = 20 if smoke else 300
    started_load = load_average()
    result = asyncio.run(_measure(database_url, requests=requests))
    return {
        "load_average_at_start": started_load,
        "requests_each": requests,
        "spaced_by_the_channel_ceiling": True,
        **result,
    }

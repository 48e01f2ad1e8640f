"""200 concurrent likes on one photo, by 200 guests, each from an address of its own (phones on mobile data), and
once more all from one address (a venue's Wi-Fi, its limit lifted): throughput of our endpoint
(``POST /api/photos/{id}/like``: token, rate limit, visibility, like and counter, outbox, publish) against the same
HTTP endpoint doing only its SQL (a bare FastAPI route running the like row and counter statement in one
transaction), with the same pool size, in the same run and the same way (in-process ASGI, so the HTTP client costs
both the same). Rounds alternate.

Ours is measured as it is deployed: as served by a long-running process (``server_app``, what uvicorn
serves), where the request that took the channel's publish lease answers at once and publishes the venue's likes
after its answer, and as a serverless function (``create_app``), where that request publishes them before it
answers (at the channel's ceiling, 20 groups a second: the burst's wall time includes that request's wait). Each
side likes photos of an event of its own; what the server still publishes after a round's last answer is waited
for between rounds, outside the timing.
The guests' addresses come in X-Real-IP, as infra/nginx sets it (``CLIENT_ADDRESS_SOURCE=x-real-ip``). From one
address every like also counts against that address's rate-limit row, whose lock each holds until its commit is on
disk; by default one address is allowed 1,200 likes a minute, far fewer than that lock lets through, so the limit is
lifted here to measure it.
``server_app`` also tunes the process's garbage collector (``core.gc_tuning.GC_THRESHOLDS``): all sides are measured
in this one process, so every side runs under it."""

from __future__ import annotations

import asyncio
import ipaddress
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import create_async_engine

from bench.common import JWT_SECRET, load_average, percentiles
from core.api.app import create_app, server_app
from core.outbox.publishing import longest_publishing_seconds
from core.realtime.memory import MemoryProvider
from core.runtime import build_runtime
from core.services.likes import LIKE_STATEMENT
from core.settings import load_settings
from tests.support.api import Api, bearer
from tests.support.groups import unpacked

POOL_SIZE = 10
VENUE_ADDRESS = "203.0.113.7"


def _bare_app(database_url: str) -> tuple[FastAPI, Callable[[], Awaitable[None]]]:
    engine = create_async_engine(database_url, pool_size=POOL_SIZE, max_overflow=0)
    app = FastAPI()

    @app.post("/api/photos/{photo_id}/like")
    async def like(photo_id: int, session: str) -> dict[str, Any]:
        async with engine.begin() as conn:
            count = await conn.scalar(LIKE_STATEMENT, {"photo_id": photo_id, "session_id": session})
        return {"photoId": photo_id, "likeCount": count}

    return app, engine.dispose


def _likes(photo: str, guests: list[str], *, one_address: bool = False) -> list[tuple[str, dict[str, str]]]:
    """Each guest's like of ``photo`` on our endpoint, with its token, from an address of its own or from the
    venue's."""
    first = ipaddress.IPv4Address("10.0.0.1")
    return [
        (f"/api/photos/{photo}/like", {**bearer(guest), "X-Real-IP": VENUE_ADDRESS if one_address else str(first + i)})
        for i, guest in enumerate(guests)
    ]


async def _burst(client: httpx.AsyncClient, requests: list[tuple[str, dict[str, str]]]) -> dict[str, Any]:
    async def one(url: str, headers: dict[str, str]) -> float:
        started = time.perf_counter()
        response = await client.post(url, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:300]}")
        return (time.perf_counter() - started) * 1000

    started = time.perf_counter()
    latencies = await asyncio.gather(*(one(url, headers) for url, headers in requests))
    wall_s = time.perf_counter() - started
    return {"wall_s": round(wall_s, 3), "per_second": round(len(requests) / wall_s, 1), **percentiles(latencies)}


async def _measure(database_url: str, *, likes: int, rounds: int) -> dict[str, Any]:
    # Prepared statements on both sides: the bare engine has psycopg's default (prepared from a statement's fifth
    # run); ours has them only where DB_PREPARED_STATEMENTS says the connection supports them, as this one does.
    settings = load_settings(
        database_url=database_url,
        db_pool_size=POOL_SIZE,
        db_prepared_statements=True,
        jwt_secret=JWT_SECRET,
        rate_limit_per_minute=1_000_000,
        address_actions_per_minute=1_000_000,  # for the likes from one address
        client_address_source="x-real-ip",
        # no line per request (the default, INFO, writes one): the bare peer logs nothing, and hundreds of lines
        # on the benchmark's stdout would hide its results
        log_level="WARNING",
    )
    server_provider, function_provider = MemoryProvider(), MemoryProvider()
    drain_seconds = longest_publishing_seconds(settings)
    server = build_runtime(settings, provider=server_provider)
    function = build_runtime(settings, provider=function_provider)
    bare, dispose_bare = _bare_app(database_url)
    rounds_of: dict[str, list[dict[str, Any]]] = {"ours": [], "ours_one_address": [], "ours_function": [], "bare": []}
    try:
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=server_app(server)), base_url="http://b") as ours,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(function)), base_url="http://b") as func,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=bare), base_url="http://b") as plain,
        ):
            api = Api(ours, server)
            # An event each (a channel each): the server's publishing after its answers holds its channel's lease,
            # and would leave the function nothing to publish on a shared one.
            server_photos, venue_photos, function_photos, bare_photos = [
                await api.event(f"bench-burst-{side}", photos=rounds + 1)
                for side in ("server", "venue", "function", "bare")
            ]
            guests = [await api.guest() for _ in range(likes)]
            # warm the pools and code paths, so that no first round pays for connecting
            for client, photos in ((ours, server_photos), (ours, venue_photos), (func, function_photos)):
                await _burst(client, _likes(photos[-1], guests[:POOL_SIZE]))
            await _burst(plain, [(f"/api/photos/{bare_photos[-1]}/like?session=w{i}", {}) for i in range(POOL_SIZE)])
            await server.work_after_answers_done(drain_seconds)
            for round_index in range(rounds):
                rounds_of["ours"].append(await _burst(ours, _likes(server_photos[round_index], guests)))
                # What the server publishes after its last answer ends before the next side's round, untimed: it
                # would otherwise run during that round.
                await server.work_after_answers_done(drain_seconds)
                rounds_of["ours_one_address"].append(
                    await _burst(ours, _likes(venue_photos[round_index], guests, one_address=True))
                )
                await server.work_after_answers_done(drain_seconds)
                rounds_of["ours_function"].append(await _burst(func, _likes(function_photos[round_index], guests)))
                rounds_of["bare"].append(
                    await _burst(
                        plain, [(f"/api/photos/{bare_photos[round_index]}/like?session=g{i}", {}) for i in range(likes)]
                    )
                )
    finally:
        await server.aclose()
        await function.aclose()
        await dispose_bare()
    # Every like's event published, on each of our sides (a group carries several): what they were measured doing.
    published = {
        "ours, from their own addresses and from one": len(unpacked(server_provider.published)),
        "ours_function": len(unpacked(function_provider.published)),
    }
    return {"events_published": published, **{f"{side}_rounds": measured for side, measured in rounds_of.items()}}


def _best(rounds: list[dict[str, Any]]) -> float:
    return max(float(r["per_second"]) for r in rounds)


def _median(rounds: list[dict[str, Any]]) -> float:
    return float(statistics.median(float(r["per_second"]) for r in rounds))


def run(smoke: bool, database_url: str) -> dict[str, Any]:
    likes, rounds = (20, 1) if smoke else (200, 15)
    result: dict[str, Any] = {"load_average_at_start": load_average(), "likes": likes, "pool_size": POOL_SIZE}
    result.update(asyncio.run(_measure(database_url, likes=likes, rounds=rounds)))
    # The best round of each: on a shared machine the best is the one least disturbed by others.
    result["ours_per_second"] = _best(result["ours_rounds"])
    result["ours_function_per_second"] = _best(result["ours_function_rounds"])
    result["bare_per_second"] = _best(result["bare_rounds"])
    result["ratio"] = round(result["ours_per_second"] / result["bare_per_second"], 2)
    result["function_ratio"] = round(result["ours_function_per_second"] / result["bare_per_second"], 2)
    # The medians too: a best round is one high tail, and two copies of the same endpoint in one run differed by
    # up to a tenth in it; the medians' ratio moves less from run to run.
    result["ours_median_per_second"] = _median(result["ours_rounds"])
    result["bare_median_per_second"] = _median(result["bare_rounds"])
    result["median_ratio"] = round(result["ours_median_per_second"] / result["bare_median_per_second"], 2)
    result["ours_one_address_per_second"] = _best(result["ours_one_address_rounds"])
    result["ours_one_address_median_per_second"] = _median(result["ours_one_address_rounds"])
    result["one_address_ratio"] = round(result["ours_one_address_per_second"] / result["bare_per_second"], 2)
    result["one_address_median_ratio"] = round(
        result["ours_one_address_median_per_second"] / result["bare_median_per_second"], 2
    )
    return result

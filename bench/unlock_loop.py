"""How much right-code unlocks (a scrypt each) slow other requests of the same process: /api/health latency alone,
and while 16 guests unlock a protected event at once (issue 9: scrypt on the event loop took /api/health from 2.6 to
~80 ms p50). Writes bench/results/unlock_loop.json.

    python -m bench.unlock_loop
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import time
from pathlib import Path

import httpx

from core.api.app import create_app
from core.realtime.memory import MemoryProvider
from core.runtime import build_runtime
from core.settings import load_settings
from tests.support.api import Api
from tests.support.database import fresh_database

RESULTS = Path(__file__).parent / "results" / "unlock_loop.json"
CODE = "bench-access-code"


async def _health_latencies(client: httpx.AsyncClient, stop: asyncio.Event) -> list[float]:
    latencies = []
    while not stop.is_set():
        started = time.perf_counter()
        response = await client.get("/api/health")
        latencies.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
        # /api/health never awaits I/O in-process, so without this the loop would never let the unlocks run.
        await asyncio.sleep(0.005)
    return latencies


async def _run(database_url: str, *, rounds: int, unlocks: int) -> dict[str, object]:
    settings = load_settings(
        database_url=database_url, db_pool_size=unlocks + 2, jwt_secret="bench-secret-0123456789-0123456789-01"
    )
    runtime = build_runtime(settings, provider=MemoryProvider())
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        await Api(client, runtime).event("bench", photos=1, access_code=CODE)

        stop = asyncio.Event()
        alone = asyncio.create_task(_health_latencies(client, stop))
        await asyncio.sleep(2)
        stop.set()
        idle = await alone

        stop = asyncio.Event()
        during = asyncio.create_task(_health_latencies(client, stop))
        started = time.perf_counter()
        for _ in range(rounds):
            statuses = await asyncio.gather(
                *(
                    client.post("/api/auth/guest", json={"eventSlug": "bench", "accessCode": CODE})
                    for _ in range(unlocks)
                )
            )
            assert all(response.status_code == 200 for response in statuses)
        unlock_seconds = time.perf_counter() - started
        stop.set()
        busy = await during
    await runtime.aclose()

    def summary(samples: list[float]) -> dict[str, float]:
        return {"count": len(samples), "p50_ms": round(statistics.median(samples), 2), "max_ms": round(max(samples), 2)}

    return {
        "health_alone": summary(idle),
        "health_during_unlocks": summary(busy),
        "unlocks": {"rounds": rounds, "concurrent": unlocks, "per_second": round(rounds * unlocks / unlock_seconds, 1)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--unlocks", type=int, default=16)
    args = parser.parse_args()
    with fresh_database() as url:
        results = asyncio.run(_run(url, rounds=args.rounds, unlocks=args.unlocks))
    results["machine"] = {"python": platform.python_version(), "cpus": __import__("os").cpu_count()}
    results["when"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

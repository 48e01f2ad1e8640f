"""Benchmark: latency and throughput of likes through the app, against a real Postgres, and the cold import of
the Lambda handler. Run on demand (`python -m bench.likes`); results go to bench/results/likes.json.

Uses TEST_DATABASE_URL / DATABASE_URL (a server; a fresh database is made and dropped) or an embedded Postgres.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from core.api.app import create_app
from core.realtime.memory import MemoryProvider
from core.runtime import build_runtime
from core.settings import load_settings
from tests.support.api import Api, bearer
from tests.support.database import fresh_database

RESULTS = Path(__file__).parent / "results" / "likes.json"


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)

    def pick(quantile: float) -> float:
        return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]

    return {
        "p50_ms": round(pick(0.50), 2),
        "p95_ms": round(pick(0.95), 2),
        "p99_ms": round(pick(0.99), 2),
        "mean_ms": round(statistics.fmean(ordered), 2),
    }


async def _run(database_url: str, *, sequential: int, concurrent: int, pool_size: int) -> dict[str, Any]:
    settings = load_settings(
        database_url=database_url, db_pool_size=pool_size, jwt_secret="bench-secret-0123456789-0123456789-01"
    )
    runtime = build_runtime(settings, provider=MemoryProvider())
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        api = Api(client, runtime)
        photo_ids = await api.event("bench", photos=50)
        tokens = [await api.guest() for _ in range(concurrent)]

        latencies = []
        for i in range(sequential):
            started = time.perf_counter()
            response = await client.post(
                f"/api/photos/{photo_ids[i % 50]}/like", headers=bearer(tokens[i % len(tokens)])
            )
            latencies.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text

        async def like(token: str) -> float:
            started = time.perf_counter()
            response = await client.post(f"/api/photos/{photo_ids[0]}/like", headers=bearer(token))
            assert response.status_code == 200, response.text
            return (time.perf_counter() - started) * 1000

        started = time.perf_counter()
        burst = await asyncio.gather(*(like(token) for token in tokens))
        burst_seconds = time.perf_counter() - started
    await runtime.aclose()
    return {
        "sequential_likes": {"count": sequential, **_percentiles(latencies)},
        "concurrent_likes_one_photo": {
            "count": concurrent,
            "pool_size": pool_size,
            "wall_s": round(burst_seconds, 3),
            "per_second": round(concurrent / burst_seconds, 1),
            **_percentiles(list(burst)),
        },
    }


def _cold_import_ms(runs: int) -> dict[str, float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", "import functions.api"],
            env={
                "DATABASE_URL": "postgresql://localhost/none",
                "JWT_SECRET": "bench-secret-0123456789-0123456789-01",
                "PATH": "/usr/bin",
            },
            check=True,
        )
        samples.append((time.perf_counter() - started) * 1000)
    return {"runs": runs, "median_ms": round(statistics.median(samples), 1), "min_ms": round(min(samples), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sequential", type=int, default=300)
    parser.add_argument("--concurrent", type=int, default=200)
    parser.add_argument("--pool-size", type=int, default=10)
    parser.add_argument("--import-runs", type=int, default=5)
    args = parser.parse_args()
    with fresh_database() as url:
        results = asyncio.run(
            _run(url, sequential=args.sequential, concurrent=args.concurrent, pool_size=args.pool_size)
        )
    results["cold_import_functions_api"] = _cold_import_ms(args.import_runs)
    results["machine"] = {"python": platform.python_version(), "cpus": __import__("os").cpu_count()}
    results["when"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

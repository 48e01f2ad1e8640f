"""Cold start: process start -> the handler module imported -> one API Gateway (HTTP API v2) request answered,
for ``functions.api`` (a like against Postgres; ``/api/health``), for ``functions.likes`` (the like function: a
like), for ``bench/bare_lambda.py`` (a bare FastAPI + Mangum handler doing one INSERT with psycopg; a bare hello)
and for ``bench/bare_sqlalchemy_lambda.py`` (the same INSERT through SQLAlchemy's async engine, built as ours are:
with the garbage collector off), interleaved in the same run, several runs each, medians reported. Timed from this
process: from just before the child is spawned to the child's answer line."""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench.common import JWT_SECRET, base_env, load_average
from core.api.app import create_app
from core.realtime.memory import MemoryProvider
from core.runtime import build_runtime
from core.settings import load_settings
from tests.support.api import Api, bearer
from tests.support.lambda_events import http_event

REPO = Path(__file__).parent.parent
ANSWER = "BENCH-ANSWER "
# The child: import the handler's module, build nothing else, answer one event, print the answer, leave at once.
INVOKE = """
import json, os, sys, time
started = time.perf_counter()
import importlib
module = importlib.import_module(sys.argv[1])
imported = time.perf_counter()
class Context:
    function_name = "bench"; memory_limit_in_mb = 512; aws_request_id = "bench"
    def get_remaining_time_in_millis(self): return 30000
answer = module.handler(json.loads(sys.argv[2]), Context())
done = time.perf_counter()
print("BENCH-ANSWER", json.dumps({"status": answer["statusCode"], "import_ms": (imported - started) * 1000,
                  "first_request_ms": (done - imported) * 1000}), flush=True)
os._exit(0)
"""


def _invoke(module: str, event: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-c", INVOKE, module, json.dumps(event)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    # the app's own log lines share stdout; the answer is the line with our marker
    line = child.stdout.readline()
    while line and not line.startswith(ANSWER):
        line = child.stdout.readline()
    total_ms = (time.perf_counter() - started) * 1000
    _, errors = child.communicate(timeout=60)
    if not line:
        raise RuntimeError(f"{module} answered nothing: {errors[-2000:]}")
    answer: dict[str, Any] = json.loads(line.removeprefix(ANSWER))
    if answer["status"] != 200:
        raise RuntimeError(f"{module} answered {answer['status']}: {errors[-2000:]}")
    return {
        "total_ms": round(total_ms, 1),
        "import_ms": round(answer["import_ms"], 1),
        "first_request_ms": round(answer["first_request_ms"], 1),
    }


def _medians(samples: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "runs": len(samples),
        "median_total_ms": round(statistics.median(s["total_ms"] for s in samples), 1),
        "min_total_ms": min(s["total_ms"] for s in samples),
        "median_import_ms": round(statistics.median(s["import_ms"] for s in samples), 1),
        "median_first_request_ms": round(statistics.median(s["first_request_ms"] for s in samples), 1),
        "samples": samples,
    }


async def _photo_and_guests(database_url: str, guests: int) -> tuple[int, list[str]]:
    runtime = build_runtime(load_settings(database_url=database_url, jwt_secret=JWT_SECRET), provider=MemoryProvider())
    try:
        transport = httpx.ASGITransport(app=create_app(runtime))
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            api = Api(client, runtime)
            photo_ids = await api.event("bench-cold", photos=1)
            return int(photo_ids[0]), [await api.guest() for _ in range(guests)]
    finally:
        await runtime.aclose()


def run(smoke: bool, database_url: str) -> dict[str, Any]:
    runs = 2 if smoke else 11
    result: dict[str, Any] = {"load_average_at_start": load_average()}
    libpq_url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(libpq_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_bare_likes (id bigserial PRIMARY KEY, photo_id bigint NOT NULL)")
    photo_id, guests = asyncio.run(_photo_and_guests(database_url, 2 * runs))
    ours_env = base_env(DATABASE_URL=database_url, REALTIME_PROVIDER="memory")
    bare_env = base_env(BARE_DATABASE_URL=libpq_url)
    bare_sqlalchemy_env = base_env(BARE_DATABASE_URL=database_url)
    like_path = f"/api/photos/{photo_id}/like"
    health = http_event("2.0", "GET", "/api/health")
    samples: dict[str, list[dict[str, Any]]] = {
        "ours_like": [],
        "ours_like_function": [],
        "bare_like": [],
        "bare_sqlalchemy_like": [],
        "ours_health": [],
        "bare_health": [],
    }
    for guest, function_guest in zip(guests[::2], guests[1::2], strict=True):
        like = http_event("2.0", "POST", like_path, headers=bearer(guest))
        samples["ours_like"].append(_invoke("functions.api", like, ours_env))
        samples["bare_like"].append(_invoke("bench.bare_lambda", like, bare_env))
        function_like = http_event("2.0", "POST", like_path, headers=bearer(function_guest))
        samples["ours_like_function"].append(_invoke("functions.likes", function_like, ours_env))
        samples["bare_sqlalchemy_like"].append(_invoke("bench.bare_sqlalchemy_lambda", like, bare_sqlalchemy_env))
        samples["ours_health"].append(_invoke("functions.api", health, ours_env))
        samples["bare_health"].append(_invoke("bench.bare_lambda", health, bare_env))
    for name, values in samples.items():
        result[name] = _medians(values)
    for figure in ("like", "health"):
        ours, bare = result[f"ours_{figure}"]["median_total_ms"], result[f"bare_{figure}"]["median_total_ms"]
        result[f"ratio_{figure}"] = round(ours / bare, 2)
    # the like function (functions/likes.py) against the same bare like
    like_function = result["ours_like_function"]["median_total_ms"]
    result["ratio_like_function"] = round(like_function / result["bare_like"]["median_total_ms"], 2)
    # the floor SQLAlchemy sets, and the part of ours above it
    floor = result["bare_sqlalchemy_like"]["median_total_ms"]
    result["ratio_bare_sqlalchemy_like"] = round(floor / result["bare_like"]["median_total_ms"], 2)
    result["ratio_like_function_vs_bare_sqlalchemy"] = round(like_function / floor, 2)
    result["what"] = "process start -> module imported -> one API Gateway v2 request answered (median of runs)"
    return result

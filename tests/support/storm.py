"""A like storm on one event, as tests/test_storm.py asserts it and bench/storm.py measures it: the app as it is
deployed (API workers, the relay, our Socket.IO node: processes of their own) over real Postgres, the provider's
stand-in (Ably, Pusher), and ``tests/js/storm.js``: one Node process that makes the guests, subscribes the watchers
with the browser client over the official SDKs, sends the likes and reports what every watcher applied and when."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from core.devserver import STANDIN_PROVIDERS, make_standin
from core.realtime.pusher import wire_channel
from core.runtime import build_runtime
from core.settings import Settings
from standins.ably_service import FakeAbly
from standins.pusher_service import FakePusher
from tests.support import processes
from tests.support.api import Api
from tests.support.environment import TEST_JWT_SECRET, make_settings, redis_url
from tests.support.loopback import serving
from tests.support.outbox import outbox_rows
from tests.support.ports import free_port

ROOT = Path(__file__).parent.parent.parent
JS_DIR = ROOT / "tests" / "js"
SCRIPT = JS_DIR / "storm.js"
ABLY_CHANNEL_RATE = 50  # messages per second per channel (what the Ably stand-in enforces)
SLUG = "storm"
# Every limit of ours far above the storm: the storm is about the provider's limits, not our own. A worker plays the
# many function instances a storm would start, each with its own connection: hence a pool of several each.
# One line per request, thousands of them, would only slow the storm down and bury the report.
STORM_SETTINGS: dict[str, Any] = {
    "log_level": "WARNING",
    # Each guest is a phone of its own: storm.js sends its address in X-Real-IP, as infra/nginx would write it (one
    # address for a thousand guests would make its limit's row the one every like waits on).
    "client_address_source": "x-real-ip",
    "publish_timeout_seconds": 3.0,  # the default (the test settings' 0.5 s is for outage tests)
    "db_pool_size": 10,
    "rate_limit_per_minute": 1_000_000,
    "address_actions_per_minute": 1_000_000,
    "guest_sessions_per_address_per_hour": 1_000_000,
    "credential_checks_per_address_per_minute": 1_000_000,
}
# Processes serving the API, as instances of a function would (each on its own event loop, its own pool).
API_WORKERS = 2
# Likes on another event before the storm: at a wedding the deployment has served likes long before the storm, so
# each worker has published before, its pooled connections have run a like, and the provider's client is connected.
WARM_UP_LIKES = 40
CLI = [sys.executable, "-c", "from core.cli import main; main()"]
NODE_PACKAGES = ("ably", "pusher-js", "socket.io-client")


def node_missing() -> str | None:
    """Why the storm cannot run here (no node, or tests/js/node_modules without the SDKs), or None."""
    if shutil.which("node") is None:
        return "node is not on PATH"
    absent = [name for name in NODE_PACKAGES if not (JS_DIR / "node_modules" / name).is_dir()]
    return f"tests/js/node_modules lacks {', '.join(absent)} (run: npm ci --prefix tests/js)" if absent else None


@dataclass
class Storm:
    provider: str
    prepared_statements: bool
    likes: list[dict[str, Any]]  # mutationId, photoId, sentAt, answeredAt, status
    watchers: list[dict[str, Any]]  # applied (ids in order), arrivals (mutationId -> ms), counts, lastSeq, resets
    final_seq: int
    channel_ids: list[str]  # every event of the channel, in seq order, as the outbox keeps it
    stored_counts: dict[str, int]  # photo id -> like count, from GET /api/events/{slug}
    published: int | None  # provider messages accepted on the channel, a group being one (None: not counted)
    published_at: list[float] = field(default_factory=list)  # when each was accepted (monotonic seconds)
    delivered: int | None = None  # provider messages delivered to connections (None: not counted, Socket.IO)
    refused: int = 0  # messages the provider refused (Ably's 42913)
    dropped: int = 0  # messages dropped over a connection's rate (Ably), each signalled as a continuity loss
    continuity_losses: int = 0

    @property
    def latencies_ms(self) -> list[int]:
        """Like sent → applied by a watcher, for every like answered 200 and every watcher that applied it."""
        return [
            watcher["arrivals"][like["mutationId"]] - like["sentAt"]
            for like in self.likes
            if like["status"] == 200
            for watcher in self.watchers
            if like["mutationId"] in watcher["arrivals"]
        ]

    def summary(self) -> dict[str, Any]:
        latencies = sorted(self.latencies_ms)
        sent = [like["sentAt"] for like in self.likes]
        # How long the app took to answer each like: where a storm's latency is spent serving the likes themselves
        # (requests queued on a saturated server) rather than publishing them.
        answers = sorted(like["answeredAt"] - like["sentAt"] for like in self.likes)
        return {
            "provider": self.provider,
            "preparedStatements": self.prepared_statements,
            "likes": len(self.likes),
            "likesAnswered200": sum(like["status"] == 200 for like in self.likes),
            "likeWindowMs": max(sent) - min(sent) if sent else 0,
            "watchers": len(self.watchers),
            "events": len(self.channel_ids),
            "providerMessages": self.published,
            "providerMessagesPerLike": round(self.published / len(self.likes), 3)
            if self.published is not None and self.likes
            else None,
            "deliveredPerLike": round(self.delivered / len(self.likes), 3)
            if self.delivered is not None and self.likes
            else None,
            "maxPublishesPerSecond": max_per_second(self.published_at),
            "meanPublishesPerSecond": mean_per_second(self.published_at),
            "overAblyChannelRate": over_rate(self.published_at, ABLY_CHANNEL_RATE),
            "likeAnswerMs": {"p50": percentile(answers, 50), "p99": percentile(answers, 99)},
            "refused": self.refused,
            "dropped": self.dropped,
            "continuityLosses": self.continuity_losses,
            "latencyMs": {
                "p50": percentile(latencies, 50),
                "p99": percentile(latencies, 99),
                "max": latencies[-1] if latencies else None,
                "mean": round(statistics.fmean(latencies), 1) if latencies else None,
                "samples": len(latencies),
            },
        }


def percentile(ordered: Sequence[int], p: float) -> int | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def max_per_second(times: Sequence[float]) -> int:
    """The most messages within any one second (a sliding window, as Ably counts)."""
    ordered, start, best = sorted(times), 0, 0
    for end, at in enumerate(ordered):
        while ordered[start] <= at - 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def mean_per_second(times: Sequence[float]) -> float:
    """Messages per second from the first to the last (one second at least)."""
    if not times:
        return 0.0
    return round(len(times) / max(1.0, max(times) - min(times)), 1)


def over_rate(times: Sequence[float], rate: int) -> int:
    """How many of these messages a channel limited to ``rate`` per sliding second would have refused."""
    admitted: list[float] = []
    refused = 0
    for at in sorted(times):
        recent = [t for t in admitted[-rate:] if t > at - 1.0]
        if len(recent) >= rate:
            refused += 1
        else:
            admitted.append(at)
    return refused


def _environment(settings: dict[str, Any]) -> dict[str, str]:
    """This machine's environment without any setting of the developer's, plus ``settings`` as a deploy sets them."""
    kept = {name: value for name, value in os.environ.items() if name.lower() not in Settings.model_fields}
    as_text = {
        name.upper(): str(value).lower() if isinstance(value, bool) else str(value) for name, value in settings.items()
    }
    return kept | as_text


@dataclass
class _Process:
    """A process of the deployment (the API's workers, the relay, the Socket.IO node), its output in a file."""

    name: str
    process: subprocess.Popen[bytes]
    output: Path

    def tail(self) -> str:
        return self.output.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        processes.stop(self.process)


def _start(stack: ExitStack, name: str, command: list[str], env: dict[str, str], logs: Path) -> _Process:
    output = logs / f"{name}.log"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    started = _Process(name, process, output)
    stack.callback(started.stop)
    return started


async def _until_answering(url: str, process: _Process, *, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            if process.process.poll() is not None:
                raise RuntimeError(f"{process.name} exited {process.process.returncode}: {process.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code < 500:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{process.name} did not answer {url} within {seconds} s: {process.tail()}")
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def storm_site(
    database_url: str, provider: str, *, prepared_statements: bool = True
) -> AsyncIterator[tuple[Api, str, FakeAbly | FakePusher | None]]:
    """The app as it is deployed, over the provider: the API served by several worker processes (each like a
    function instance of its own, as on Lambda or Vercel), the relay in a process of its own, and for Socket.IO our
    node in another, reached through Redis (docs/socketio.md). The Ably or Pusher stand-in runs here, so that its
    counts are read directly. A single process serving a thousand likes in five seconds, its relay and the
    provider on one event loop would measure that one loop's queue, not the storm's.

    Every process connects to Postgres directly, with no pooler in between: ``prepared_statements`` (on unless
    told) is what DB_PREPARED_STATEMENTS is for there."""
    async with AsyncExitStack() as stack:
        service: FakeAbly | FakePusher | None = None
        overrides: dict[str, Any] = {"realtime_provider": provider}
        if provider in STANDIN_PROVIDERS:
            standin = make_standin(provider)
            served = await stack.enter_async_context(serving(standin.app, websockets=True))
            overrides = standin.settings(host="127.0.0.1", port=served.port)
            service = standin.service
        api_port = free_port()
        api_url = f"http://127.0.0.1:{api_port}"
        settings: dict[str, Any] = {
            "app_env": "production",
            "database_url": database_url,
            "jwt_secret": TEST_JWT_SECRET,
            **overrides,
            **STORM_SETTINGS,
            "db_prepared_statements": prepared_statements,
        }
        node_port = None
        if provider == "socketio":
            redis = redis_url()
            assert redis is not None, "the Socket.IO storm needs Redis (TEST_REDIS_URL)"
            node_port = free_port()
            settings |= {
                "socketio_redis_url": redis,
                # A channel of this run's own: Redis is shared with whatever else runs on this machine.
                "socketio_redis_channel": f"storm-{os.getpid()}-{api_port}",
                "socketio_public_url": f"http://127.0.0.1:{node_port}",
            }
        env = _environment(settings)
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="storm-")))
        processes = stack.enter_context(ExitStack())
        waits = []
        api = _start(
            processes,
            "api",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "api.index:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(api_port),
                "--workers",
                str(API_WORKERS),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            env,
            logs,
        )
        waits.append(_until_answering(f"{api_url}/api/health", api))
        if node_port is not None:
            node = _start(
                processes,
                "socketio",
                [*CLI, "socketio", "--host", "127.0.0.1", "--port", str(node_port)],
                env,
                logs,
            )
            waits.append(_until_answering(f"http://127.0.0.1:{node_port}/api/socket/?EIO=4&transport=polling", node))
        _start(processes, "relay", [*CLI, "relay", "--loop", "--interval", "1"], env, logs)
        await asyncio.gather(*waits)
        # Here only to make the event (an admin account) and read the outbox: nothing published from this process.
        runtime = build_runtime(make_settings(database_url, **STORM_SETTINGS))
        stack.push_async_callback(runtime.aclose)
        http = await stack.enter_async_context(httpx.AsyncClient(base_url=api_url, timeout=30))
        yield Api(http, runtime), api_url, service


async def run_storm(
    database_url: str,
    provider: str,
    *,
    likes: int,
    watchers: int,
    window_ms: int,
    photos: int = 10,
    timeout_ms: int = 30_000,
    settle_ms: int = 1_000,
    slug: str = SLUG,
    prepared_statements: bool = True,
) -> Storm:
    node = shutil.which("node")
    assert node is not None, node_missing()
    async with storm_site(database_url, provider, prepared_statements=prepared_statements) as (api, url, service):
        await api.event(slug, photos=photos)
        (warm_up_photo,) = await api.event(f"{slug}-warm-up", photos=1)
        config = {
            "api": url,
            "slug": slug,
            "watchers": watchers,
            "likes": likes,
            "likeWindowMs": window_ms,
            "timeoutMs": timeout_ms,
            "settleMs": settle_ms,
            "warmUpPhotoId": warm_up_photo,
            "warmUpLikes": min(WARM_UP_LIKES, likes),
        }
        process = await asyncio.create_subprocess_exec(
            node,
            str(SCRIPT),
            json.dumps(config),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "NODE_NO_WARNINGS": "1"},
        )
        try:
            async with asyncio.timeout(timeout_ms / 1000 + 120):
                out, err = await process.communicate()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert process.returncode == 0, f"storm.js exited {process.returncode}: {err.decode()[-3000:]}"
        report = json.loads(out.decode().strip().splitlines()[-1])
        rows = [row for row in await outbox_rows(api.runtime) if row.channel == f"event:{slug}"]
        state = (await api.client.get(f"/api/events/{slug}")).json()
        storm = Storm(
            provider=provider,
            prepared_statements=prepared_statements,
            likes=report["likes"],
            watchers=report["watchers"],
            final_seq=report["finalSeq"],
            channel_ids=[str(row.id) for row in sorted(rows, key=lambda row: row.seq)],
            stored_counts={photo["id"]: photo["likeCount"] for photo in state["photos"]},
            published=None,
        )
        _add_provider_counts(storm, service, f"event:{slug}")
        return storm


def _add_provider_counts(storm: Storm, service: FakeAbly | FakePusher | None, channel: str) -> None:
    if isinstance(service, FakeAbly):
        storm.published = service.stats.published[channel]
        storm.published_at = list(service.stats.published_at.get(channel, []))
        storm.refused = sum(service.stats.refused.values())
        storm.delivered = sum(service.stats.delivered.values())
        storm.dropped = sum(service.stats.dropped.values())
        storm.continuity_losses = sum(service.stats.continuity_losses.values())
    elif isinstance(service, FakePusher):
        storm.published = service.stats.published[wire_channel(channel)]
        storm.published_at = list(service.stats.published_at.get(wire_channel(channel), []))
        storm.delivered = sum(service.stats.delivered.values())

"""The like storm of issue 12 against the Ably and the Pusher stand-ins and our own Socket.IO node (through Redis,
as self-hosted): 1,000 guests like photos of one event within about 5 seconds while 50 subscribers (web/realtime.js
over the official SDK, ``tests/js/storm.js``) watch. Reports, per provider, the provider messages per like
(published on the channel; delivered to all the subscribers), the most and the mean messages published per second
on the channel, how many the provider refused (Ably's 42913) and how many Ably's 50-per-second channel limit would
have refused (the Pusher stand-in refuses none, Pusher has no such limit), the messages dropped at a connection's
rate with their continuity losses, the likes answered 200, and like → every subscriber p50 / p99 / max (for
Socket.IO, whose messages no stand-in counts, the likes and the latency). The runs are each other's peers: the same
storm, the same machine, one after the other. The app runs as deployed (tests/support/storm.py): API worker
processes, the relay in its own, the stand-in here. Needs ``tests/js/node_modules`` (``npm ci --prefix tests/js``)."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support.storm import node_missing, run_storm

# Each provider with prepared statements (every process here connects to Postgres directly), and Ably once more
# without them: the default, for a deployment behind a pooler that does not support them.
RUNS = (("ably", True), ("pusher", True), ("socketio", True), ("ably", False))
FULL = {"likes": 1000, "watchers": 50, "window_ms": 4500}
SMOKE = {"likes": 20, "watchers": 2, "window_ms": 500}


def run(smoke: bool, database_url: str) -> dict[str, Any]:
    missing = node_missing()
    if missing:
        raise RuntimeError(f"the storm benchmark needs node and the SDKs: {missing}")
    shape = SMOKE if smoke else FULL
    runs = []
    for provider, prepared_statements in RUNS:
        storm = asyncio.run(
            run_storm(
                database_url,
                provider,
                likes=shape["likes"],
                watchers=shape["watchers"],
                window_ms=shape["window_ms"],
                slug=f"storm-{provider}-{'prepared' if prepared_statements else 'unprepared'}",
                prepared_statements=prepared_statements,
            )
        )
        summary = storm.summary()
        summary["watchersExact"] = sum(
            watcher["counts"] == storm.stored_counts and sorted(watcher["applied"]) == sorted(storm.channel_ids)
            for watcher in storm.watchers
        )
        runs.append(summary)
        print(f"bench: storm on {provider} (prepared statements: {prepared_statements}): {summary}", flush=True)
    return {"shape": shape, "runs": runs}

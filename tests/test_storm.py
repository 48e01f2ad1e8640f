"""Issue 12: a like storm on one event stays within the provider's limits and reaches every subscriber exactly.

On each provider (the Ably and Pusher stand-ins, which enforce and count the services' limits, and our Socket.IO
node): 1,000 guests, each with a session of its own, like photos of one event over HTTP into the app and Postgres
within 5 seconds, while 50 subscribers watch with the browser client (web/realtime.js) over the official SDK
(tests/js/storm.js). Every subscriber must end with the stored like count of every photo and apply every event of
the channel exactly once and in seq order; the provider must refuse nothing.

How fast the likes reach the watchers (the issue's goal: p99 under 500 ms) is a speed figure, so it is measured by
bench/storm.py (``make bench BENCH_ARGS="--only storm"``), not asserted here: on a 2-CPU machine that also runs
Postgres, the 50 watchers and the load generator, 1,000 likes in 5 seconds queue for CPU before they are answered.
The numbers are printed (``-s``).
"""

from __future__ import annotations

import json
import os
from collections import Counter

import pytest

from core.runtime import Runtime
from tests.support.storm import node_missing, run_storm

LIKES = 1000
WATCHERS = 50
LIKE_WINDOW_MS = 4500  # the likes are all sent within 5 seconds


@pytest.fixture
def node() -> None:
    missing = node_missing()
    if missing:
        if os.environ.get("NODE_REQUIRED"):
            raise RuntimeError(f"NODE_REQUIRED is set but {missing}")
        pytest.skip(missing)


@pytest.mark.parametrize("provider", ["ably", "pusher", "socketio"])
async def test_a_storm_of_likes_reaches_every_watcher_exactly_and_within_the_providers_limits(
    runtime: Runtime, node: None, provider: str
) -> None:
    storm = await run_storm(
        runtime.settings.require_database_url(), provider, likes=LIKES, watchers=WATCHERS, window_ms=LIKE_WINDOW_MS
    )
    summary = storm.summary()
    print(f"\nstorm on {provider}: {json.dumps(summary)}")

    assert summary["likesAnswered200"] == LIKES, Counter(like["status"] for like in storm.likes)
    assert summary["likeWindowMs"] < 5000
    assert len(storm.channel_ids) == LIKES  # one stored event per like
    assert storm.refused == 0, f"the provider refused {storm.refused} messages"
    for number, watcher in enumerate(storm.watchers):
        assert watcher["counts"] == storm.stored_counts, f"watcher {number} ends with other counts"
        twice = [event_id for event_id, times in Counter(watcher["applied"]).items() if times > 1]
        assert not twice, f"watcher {number} applied {len(twice)} events twice"
        missing = set(storm.channel_ids) - set(watcher["applied"])
        assert not missing, f"watcher {number} never applied {len(missing)} events"
        assert watcher["applied"] == storm.channel_ids, f"watcher {number} applied events out of seq order"
    assert summary["latencyMs"]["samples"] == LIKES * WATCHERS  # every watcher timed every like

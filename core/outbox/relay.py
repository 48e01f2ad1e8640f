"""The relay: publishes what requests left pending (a failed or cut-off publish, a lease handed off or left by a
holder that died), each channel in seq order and within its ceiling, and prunes.

Shared by the scheduled function, ``GET /api/cron/relay`` and ``hafi-realtime relay``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core import idempotency, ratelimit
from core.logs import configure_logging
from core.outbox.publishing import claim_channels, may_publish, new_publisher, publish_turns
from core.realtime.base import RealtimeProvider
from core.runtime import Runtime
from core.settings import Settings

log = logging.getLogger("hafi.relay")


@dataclass
class RelayResult:
    published: int = 0
    failed: int = 0
    parked: int = 0
    batches: int = 0
    pruned: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


# Oldest first and bounded, so a large backlog is cleared over several runs without one long delete.
_PRUNE = text(
    """
    DELETE FROM outbox WHERE id IN (
        SELECT id FROM outbox
        WHERE published_at IS NOT NULL AND published_at < now() - make_interval(days => :days)
        ORDER BY published_at
        LIMIT :limit
    )
    """
)
_PRUNE_LIMIT = 10_000


async def relay(
    engine: AsyncEngine, provider: RealtimeProvider, settings: Settings, *, max_batches: int = 50
) -> RelayResult:
    """Publishes due pending events until none are left (or ``max_batches`` provider calls were made): it takes the
    lease of every channel that has some and whose lease is free or expired, then publishes them as any holder
    does, one group per channel per call, each channel within its ceiling.

    While the provider is failing the relay publishes nothing (it gives back what it claimed), unless it takes the
    provider's due probe: its first call is then the probe, and when that succeeds it goes on draining the backlog
    at once.
    """
    result = RelayResult()
    publisher = new_publisher()
    async with engine.connect() as conn:  # autocommit (core.db.create_engine): each step is one statement
        calls_left, cleared = max_batches, False
        while calls_left > 0:
            turns = await claim_channels(conn, publisher, settings)
            if not turns:
                break
            # Asked once there is something to publish, so that a relay with nothing to do never spends the probe.
            channels = [turn.channel for turn in turns]
            if not cleared and not await may_publish(conn, provider, settings, publisher=publisher, channels=channels):
                break
            cleared = True
            outcome = await publish_turns(
                conn, provider, publisher, turns, settings, cleared=True, max_calls=calls_left
            )
            result.batches += outcome.calls
            result.published += len(outcome.published)
            result.failed += len(outcome.failed)
            result.parked += len(outcome.parked)
            calls_left -= max(outcome.calls, 1)
            if outcome.error:
                break  # failing or rejecting: leave the rest to the provider's probe or the rows' backoff
        await ratelimit.prune(conn)
        await idempotency.prune(conn)
        pruned = await conn.execute(_PRUNE, {"days": settings.outbox_retention_days, "limit": _PRUNE_LIMIT})
        result.pruned = pruned.rowcount
    return result


async def relay_once(runtime: Runtime) -> dict[str, Any]:
    configure_logging(runtime.settings.log_level)
    result = await relay(runtime.engine, runtime.provider, runtime.settings)
    log.log(logging.INFO if result.batches else logging.DEBUG, "relay run", extra=result.as_dict())
    return result.as_dict()


async def relay_forever(runtime: Runtime, *, interval_seconds: float = 1.0, stop: asyncio.Event | None = None) -> None:
    """Relays until ``stop`` is set; a failing run (database down) is logged and tried again after the interval."""
    stop = stop or asyncio.Event()
    while not stop.is_set():
        try:
            await relay_once(runtime)
        except Exception:
            log.exception("relay run failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_seconds)

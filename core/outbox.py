"""The outbox: realtime events written in the same transaction as the change that causes them, published after
commit, and kept as the per-channel event log that ``/updates`` reads.

Who publishes a row is decided by a lease: ``next_attempt_at`` lies in the future while some publisher owns the
row. A request's own rows are born leased to it, so a relay never takes them while the request publishes; a relay
claims rows whose lease has run out with ``FOR UPDATE SKIP LOCKED``, so two relays never claim the same row. Every
publish attempt is cut off by the publish timeout, which settings keep well below the lease, so a lease always
outlives the attempt that holds it and no event is ever published by two publishers at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core import events as payloads
from core import metrics, ratelimit
from core.events import PendingEvent
from core.models import ChannelSequence, OutboxEvent
from core.realtime.base import RealtimeError, RealtimeProvider
from core.settings import Settings

log = logging.getLogger("hafi.outbox")

_MAX_BACKOFF_SECONDS = 300
_ERROR_TEXT_LIMIT = 1000

# One statement numbers and stores any number of events: each channel's sequence row is bumped once by the count of
# its events (in channel order, so concurrent writers lock sequence rows in the same order), then every event
# takes its number in the order the service gave.
_INSERT_EVENTS = text(
    """
    WITH input AS (
        SELECT channel, event, payload::jsonb AS payload, ord
        FROM unnest(CAST(:channels AS text[]), CAST(:names AS text[]), CAST(:payloads AS text[]))
             WITH ORDINALITY AS t(channel, event, payload, ord)
    ), counts AS (
        SELECT channel, count(*) AS n FROM input GROUP BY channel
    ), numbered AS (
        INSERT INTO channel_sequences AS cs (channel, last_seq)
        SELECT channel, n FROM counts ORDER BY channel
        ON CONFLICT (channel) DO UPDATE SET last_seq = cs.last_seq + EXCLUDED.last_seq
        RETURNING channel, last_seq
    )
    INSERT INTO outbox (channel, seq, event, payload, next_attempt_at)
    SELECT i.channel,
           s.last_seq - c.n + row_number() OVER (PARTITION BY i.channel ORDER BY i.ord),
           i.event, i.payload, now() + make_interval(secs => :lease)
    FROM input i JOIN counts c USING (channel) JOIN numbered s USING (channel)
    ORDER BY i.ord
    RETURNING id, channel, seq, event, payload, created_at, attempts
    """
)

_OUTBOX_COLUMNS = (
    OutboxEvent.id,
    OutboxEvent.channel,
    OutboxEvent.seq,
    OutboxEvent.event,
    OutboxEvent.payload,
    OutboxEvent.created_at,
    OutboxEvent.attempts,
)


def _row_to_event(row: Any) -> OutboxEvent:
    return OutboxEvent(
        id=row.id,
        channel=row.channel,
        seq=row.seq,
        event=row.event,
        payload=row.payload,
        created_at=row.created_at,
        attempts=row.attempts,
    )


async def insert_events(
    conn: AsyncConnection, events: Sequence[PendingEvent], *, lease_seconds: int
) -> list[OutboxEvent]:
    """Stores events inside the caller's transaction, leased to the caller for ``lease_seconds``."""
    if not events:
        return []
    result = await conn.execute(
        _INSERT_EVENTS,
        {
            "channels": [e.channel for e in events],
            "names": [e.name for e in events],
            "payloads": [payloads.encode(e.payload) for e in events],
            "lease": lease_seconds,
        },
    )
    return sorted((_row_to_event(row) for row in result), key=lambda e: e.id)


# Hot-path statements are built once: constructing a SQLAlchemy statement per request costs more than sending it.
_MARK_PUBLISHED = text(
    """
    UPDATE outbox SET published_at = now(), attempts = attempts + 1, last_error = NULL
    WHERE id = ANY(CAST(:ids AS bigint[])) AND published_at IS NULL
    """
)
_MARK_FAILED = text(
    """
    UPDATE outbox SET attempts = attempts + 1, last_error = :error,
        next_attempt_at = now() + make_interval(secs => :backoff),
        parked_at = CASE WHEN :park THEN now() END
    WHERE id = ANY(CAST(:ids AS bigint[]))
    """
)


def _backoff_seconds(attempts: int) -> int:
    return int(min(2 ** max(attempts - 1, 0), _MAX_BACKOFF_SECONDS))


@dataclass
class PublishOutcome:
    published: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    parked: list[int] = field(default_factory=list)
    error: str | None = None


async def publish(
    conn: AsyncConnection, provider: RealtimeProvider, rows: Sequence[OutboxEvent], settings: Settings
) -> PublishOutcome:
    """Publishes rows this caller holds the lease of, in one provider call, and records the outcome.

    ``conn`` must not be inside a transaction: the outcome is written in one autocommit statement.
    A failure never raises: the rows stay pending with the error and a backoff, or are parked after
    ``OUTBOX_MAX_ATTEMPTS``.
    """
    outcome = PublishOutcome()
    if not rows:
        return outcome
    ids = [row.id for row in rows]
    started = time.perf_counter()
    try:
        async with asyncio.timeout(settings.publish_timeout_seconds):
            await provider.publish([payloads.realtime_event(row) for row in rows])
    except (RealtimeError, TimeoutError) as exc:
        transient = exc.transient if isinstance(exc, RealtimeError) else True
        delivered = exc.delivered if isinstance(exc, RealtimeError) else frozenset()
        outcome.error = str(exc) or f"publish timed out after {settings.publish_timeout_seconds} s"
        if delivered:
            outcome.published = [row.id for row in rows if str(row.id) in delivered]
            await conn.execute(_MARK_PUBLISHED, {"ids": outcome.published})
            _log_publish(provider, [row for row in rows if row.id in outcome.published], started, "published", None)
        undelivered = [row for row in rows if str(row.id) not in delivered]
        await _record_failure(conn, undelivered, outcome, settings, transient=transient)
        _log_publish(provider, undelivered, started, "failed" if transient else "rejected", outcome.error)
        return outcome
    await conn.execute(_MARK_PUBLISHED, {"ids": ids})
    outcome.published = ids
    _log_publish(provider, rows, started, "published", None)
    return outcome


async def _record_failure(
    conn: AsyncConnection,
    rows: Sequence[OutboxEvent],
    outcome: PublishOutcome,
    settings: Settings,
    *,
    transient: bool,
) -> None:
    if not rows:
        return
    attempts = max(row.attempts for row in rows) + 1
    error = (outcome.error or "")[:_ERROR_TEXT_LIMIT]
    reason = error if transient else f"rejected: {error}"
    ids = [row.id for row in rows]
    park = attempts >= settings.outbox_max_attempts
    if park:
        outcome.parked = ids
        log.error("outbox events parked after %d attempts", attempts, extra={"event_ids": ids, "error": reason})
    else:
        outcome.failed = ids
    await conn.execute(_MARK_FAILED, {"ids": ids, "error": reason, "backoff": _backoff_seconds(attempts), "park": park})


def _log_publish(
    provider: RealtimeProvider, rows: Sequence[OutboxEvent], started: float, outcome: str, error: str | None
) -> None:
    metrics.incr(f"events_{outcome}", len(rows))
    level = logging.INFO if outcome == "published" else logging.WARNING if outcome == "failed" else logging.ERROR
    log.log(
        level,
        "publish",
        extra={
            "provider": provider.name,
            "events": len(rows),
            "event_ids": [row.id for row in rows],
            "outcome": outcome,
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            **({"error": error} if error else {}),
        },
    )


_CLAIM = text(
    """
    UPDATE outbox SET next_attempt_at = now() + make_interval(secs => :lease)
    WHERE id IN (
        SELECT id FROM outbox
        WHERE published_at IS NULL AND parked_at IS NULL AND next_attempt_at <= now()
        ORDER BY id
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    RETURNING id, channel, seq, event, payload, created_at, attempts
    """
)


async def claim_pending(conn: AsyncConnection, *, limit: int, lease_seconds: int) -> list[OutboxEvent]:
    """Takes the lease of up to ``limit`` due rows, oldest first (so each channel's in ``seq`` order)."""
    result = await conn.execute(_CLAIM, {"limit": limit, "lease": lease_seconds})
    return sorted((_row_to_event(row) for row in result), key=lambda e: e.id)


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
    """Publishes due pending events until none are left (or ``max_batches`` ran), one provider call per batch."""
    result = RelayResult()
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        for _ in range(max_batches):
            rows = await claim_pending(
                conn, limit=settings.relay_batch_size, lease_seconds=settings.outbox_lease_seconds
            )
            if not rows:
                break
            result.batches += 1
            outcome = await publish(conn, provider, rows, settings)
            result.published += len(outcome.published)
            result.failed += len(outcome.failed)
            result.parked += len(outcome.parked)
            if outcome.error:
                break  # the provider is failing: leave the rest to their backoff instead of hammering it
        await ratelimit.prune(conn)
        pruned = await conn.execute(_PRUNE, {"days": settings.outbox_retention_days, "limit": _PRUNE_LIMIT})
        result.pruned = pruned.rowcount
    return result


async def events_after(conn: AsyncConnection, channel: str, after: int, *, limit: int) -> list[OutboxEvent]:
    result = await conn.execute(
        select(*_OUTBOX_COLUMNS)
        .where(OutboxEvent.channel == channel, OutboxEvent.seq > after)
        .order_by(OutboxEvent.seq)
        .limit(limit)
    )
    return [_row_to_event(row) for row in result]


async def current_seq(conn: AsyncConnection, channel: str) -> int:
    seq = await conn.scalar(select(ChannelSequence.last_seq).where(ChannelSequence.channel == channel))
    return int(seq or 0)


async def retry_parked(conn: AsyncConnection) -> int:
    """Puts parked events back in the queue (after the cause, such as a wrong key, was fixed)."""
    result = await conn.execute(
        update(OutboxEvent)
        .where(OutboxEvent.parked_at.is_not(None), OutboxEvent.published_at.is_(None))
        .values(parked_at=None, attempts=0, next_attempt_at=func.now())
        .returning(OutboxEvent.id)
    )
    return len(result.all())


async def stats(conn: AsyncConnection) -> dict[str, Any]:
    row = (
        await conn.execute(
            select(
                func.count().filter(OutboxEvent.published_at.is_not(None)).label("published"),
                func.count()
                .filter(OutboxEvent.published_at.is_(None), OutboxEvent.parked_at.is_(None))
                .label("pending"),
                func.count()
                .filter(OutboxEvent.parked_at.is_not(None), OutboxEvent.published_at.is_(None))
                .label("parked"),
                func.min(OutboxEvent.created_at).filter(OutboxEvent.published_at.is_(None)).label("oldest_pending"),
                func.now().label("now"),
            )
        )
    ).one()
    oldest = row.oldest_pending
    return {
        "published": row.published,
        "pending": row.pending,
        "parked": row.parked,
        "oldestPendingAgeSeconds": round((row.now - oldest).total_seconds(), 3) if oldest else None,
    }

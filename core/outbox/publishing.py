"""One publish attempt of outbox messages a publisher holds the lease of, and its bookkeeping.

Two kinds of failure are kept apart:

- A **rejection** (bad key, malformed message) is about the message: that row is retried with a growing backoff and
  parked after ``OUTBOX_MAX_ATTEMPTS``. The provider answered, so it is not failing.
- A **transient failure** (unreachable, 5xx, timeout) is about the provider: it is recorded once per provider in
  ``provider_health`` and the rows stay due. While the provider is failing, one publisher at a time probes it:
  taking the probe is an atomic ``UPDATE … WHERE next_probe_at <= now()`` whose winner publishes (a request its own
  messages, the relay its oldest batch) and everyone else leaves their messages to the relay without calling the
  provider. Probes follow each other after 1, 2, 4, 8, then every 10 s: short enough that ``relay --loop``
  delivers a backlog within seconds of the provider's return and the scheduled relay (every minute) at its next
  run, and one request per 10 s is nothing a recovering provider notices. The first success clears the failure and
  the relay drains the backlog at once.

A healthy publish pays no extra round trip: the provider's health is written in the same statement as the rows'
outcome, and a process asks Postgres whether it may publish only after it saw the provider fail (a process that
last saw it healthy calls it once before it learns of an outage, as a freshly started one does).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from core import messages, metrics
from core.models import OutboxMessage
from core.realtime.base import RealtimeError, RealtimeProvider
from core.settings import Settings

log = logging.getLogger("hafi.outbox")

_MAX_BACKOFF_SECONDS = 300
PROBE_BACKOFF_CAP_SECONDS = 10
# A probe's lease outlives its publish attempt (cut off by the publish timeout) and the bookkeeping after it, so a
# publisher that dies while probing delays the next probe by this much at most.
_PROBE_BOOKKEEPING_SECONDS = 5
_ERROR_TEXT_LIMIT = 1000

# Processes whose last word from Postgres or from the provider was that the provider is failing; only they ask
# Postgres before publishing. A hint, never the decision: the decision is the probe lease in ``provider_health``.
_seen_failing: weakref.WeakSet[RealtimeProvider] = weakref.WeakSet()

# The provider answered: whatever failure was recorded is over. Cheap on the hot path: the row is written only when
# the provider was failing or its last success is more than 10 s old, so busy likes do not queue on one row.
_ANSWERED = """
    answered AS (
        UPDATE provider_health SET consecutive_failures = 0, failing_since = NULL, next_probe_at = NULL,
            last_success_at = CASE WHEN :success THEN now() ELSE last_success_at END
        WHERE provider = :provider
            AND (failing_since IS NOT NULL OR last_success_at IS NULL OR last_success_at < now() - interval '10 s')
    )
"""

# Hot-path statements are built once: constructing a SQLAlchemy statement per request costs more than sending it.
_MARK_PUBLISHED = text(
    f"""
    WITH {_ANSWERED}
    UPDATE outbox SET published_at = now(), attempts = attempts + 1, last_error = NULL
    WHERE id = ANY(CAST(:ids AS bigint[])) AND published_at IS NULL
    """
)
_MARK_REJECTED = text(
    f"""
    WITH {_ANSWERED}
    UPDATE outbox SET attempts = attempts + 1, last_error = :error,
        next_attempt_at = now() + make_interval(secs => :backoff),
        parked_at = CASE WHEN :park THEN now() END
    WHERE id = ANY(CAST(:ids AS bigint[]))
    """
)
# The rows stay due, without an attempt counted against parking: the provider's backoff decides when they go.
_MARK_UNREACHABLE = text(
    """
    WITH failing AS (
        INSERT INTO provider_health AS h
            (provider, consecutive_failures, failing_since, next_probe_at, last_error, last_failure_at)
        VALUES (:provider, 1, now(), now() + make_interval(secs => 1), :error, now())
        ON CONFLICT (provider) DO UPDATE SET
            consecutive_failures = h.consecutive_failures + 1,
            failing_since = coalesce(h.failing_since, now()),
            next_probe_at = now() + make_interval(secs => least(power(2, least(h.consecutive_failures, 10)), :cap)),
            last_error = excluded.last_error,
            last_failure_at = now()
    )
    UPDATE outbox SET last_error = :error, next_attempt_at = now()
    WHERE id = ANY(CAST(:ids AS bigint[])) AND published_at IS NULL
    """
)
# May this publisher call the provider? Yes when it is not failing, or when this publisher takes its due probe.
# Otherwise the given rows (a request's own) are handed to the relay at once instead of at their lease's end.
_MAY_PUBLISH = text(
    """
    WITH health AS (SELECT failing_since FROM provider_health WHERE provider = :provider),
    probe AS (
        UPDATE provider_health SET next_probe_at = now() + make_interval(secs => :probe_lease)
        WHERE provider = :provider AND failing_since IS NOT NULL AND next_probe_at <= now()
        RETURNING provider
    ),
    verdict AS (
        SELECT NOT EXISTS (SELECT FROM health WHERE failing_since IS NOT NULL) OR EXISTS (SELECT FROM probe) AS may
    ),
    held AS (
        UPDATE outbox SET next_attempt_at = now(), last_error = :held
        WHERE id = ANY(CAST(:ids AS bigint[])) AND published_at IS NULL AND NOT (SELECT may FROM verdict)
    )
    SELECT may FROM verdict
    """
)


def _backoff_seconds(attempts: int) -> int:
    return int(min(2 ** max(attempts - 1, 0), _MAX_BACKOFF_SECONDS))


@dataclass
class PublishOutcome:
    published: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    parked: list[int] = field(default_factory=list)
    # Not sent: the provider is failing and another publisher holds its probe; the relay sends them.
    held: list[int] = field(default_factory=list)
    error: str | None = None


async def may_publish(
    conn: AsyncConnection, provider: RealtimeProvider, settings: Settings, *, holding: Sequence[int] = ()
) -> bool:
    """Whether this publisher may call the provider now: it is healthy, or this call took its due probe.

    When it may not, the rows ``holding`` are left due for the relay. One autocommit statement.
    """
    result = await conn.execute(
        _MAY_PUBLISH,
        {
            "provider": provider.name,
            "probe_lease": settings.publish_timeout_seconds + _PROBE_BOOKKEEPING_SECONDS,
            "ids": list(holding),
            "held": f"{provider.name}: held while the provider is failing",
        },
    )
    may = bool(result.scalar_one())
    # Only a success clears what this process saw: taking the probe does not, or the requests running beside it in
    # this process (an API served by uvicorn, a Socket.IO node) would call the provider while the probe is out.
    if not may:
        _seen_failing.add(provider)
    return may


async def publish(
    conn: AsyncConnection, provider: RealtimeProvider, rows: Sequence[OutboxMessage], settings: Settings
) -> PublishOutcome:
    """Publishes rows this caller holds the lease of, in one provider call, and records the outcome; a request's
    way in. Where this process saw the provider failing, it first asks for the probe and leaves the rows to the
    relay when it does not get it.

    ``conn`` must not be inside a transaction: the outcome is written in one autocommit statement.
    A failure never raises (see the module's docstring for what is recorded).
    """
    if rows and provider in _seen_failing:
        ids = [row.id for row in rows]
        if not await may_publish(conn, provider, settings, holding=ids):
            metrics.incr("events_held", len(ids))
            log.info("publish held", extra={"provider": provider.name, "event_ids": ids, "outcome": "held"})
            return PublishOutcome(held=ids)
    return await publish_cleared(conn, provider, rows, settings)


async def publish_cleared(
    conn: AsyncConnection, provider: RealtimeProvider, rows: Sequence[OutboxMessage], settings: Settings
) -> PublishOutcome:
    """Publishes rows once this publisher may call the provider (see ``may_publish``), and records the outcome."""
    outcome = PublishOutcome()
    if not rows:
        return outcome
    ids = [row.id for row in rows]
    started = time.perf_counter()
    try:
        async with asyncio.timeout(settings.publish_timeout_seconds):
            await provider.publish([messages.realtime_message(row) for row in rows])
    except (RealtimeError, TimeoutError) as exc:
        transient = exc.transient if isinstance(exc, RealtimeError) else True
        delivered = exc.delivered if isinstance(exc, RealtimeError) else frozenset()
        outcome.error = str(exc) or f"publish timed out after {settings.publish_timeout_seconds} s"
        if delivered:
            outcome.published = [row.id for row in rows if str(row.id) in delivered]
            await conn.execute(_MARK_PUBLISHED, {"ids": outcome.published, "provider": provider.name, "success": True})
            _log_publish(provider, [row for row in rows if row.id in outcome.published], started, "published", None)
        undelivered = [row for row in rows if str(row.id) not in delivered]
        if transient:
            await _record_unreachable(conn, provider, undelivered, outcome)
        else:
            await _record_rejection(conn, provider, undelivered, outcome, settings)
        _log_publish(provider, undelivered, started, "failed" if transient else "rejected", outcome.error)
        return outcome
    await conn.execute(_MARK_PUBLISHED, {"ids": ids, "provider": provider.name, "success": True})
    _seen_failing.discard(provider)
    outcome.published = ids
    _log_publish(provider, rows, started, "published", None)
    return outcome


async def _record_unreachable(
    conn: AsyncConnection, provider: RealtimeProvider, rows: Sequence[OutboxMessage], outcome: PublishOutcome
) -> None:
    _seen_failing.add(provider)
    outcome.failed = [row.id for row in rows]
    await conn.execute(
        _MARK_UNREACHABLE,
        {
            "ids": outcome.failed,
            "provider": provider.name,
            "error": (outcome.error or "")[:_ERROR_TEXT_LIMIT],
            "cap": PROBE_BACKOFF_CAP_SECONDS,
        },
    )


async def _record_rejection(
    conn: AsyncConnection,
    provider: RealtimeProvider,
    rows: Sequence[OutboxMessage],
    outcome: PublishOutcome,
    settings: Settings,
) -> None:
    _seen_failing.discard(provider)
    if not rows:
        return
    attempts = max(row.attempts for row in rows) + 1
    reason = f"rejected: {(outcome.error or '')[:_ERROR_TEXT_LIMIT]}"
    ids = [row.id for row in rows]
    park = attempts >= settings.outbox_max_attempts
    if park:
        outcome.parked = ids
        log.error("outbox events parked after %d attempts", attempts, extra={"event_ids": ids, "error": reason})
    else:
        outcome.failed = ids
    await conn.execute(
        _MARK_REJECTED,
        {
            "ids": ids,
            "error": reason,
            "backoff": _backoff_seconds(attempts),
            "park": park,
            "provider": provider.name,
            "success": False,
        },
    )


def _log_publish(
    provider: RealtimeProvider, rows: Sequence[OutboxMessage], started: float, outcome: str, error: str | None
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

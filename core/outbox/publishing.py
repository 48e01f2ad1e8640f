"""One publish attempt of outbox messages a publisher holds the lease of, and its bookkeeping."""

from __future__ import annotations

import asyncio
import logging
import time
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
_ERROR_TEXT_LIMIT = 1000

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
    conn: AsyncConnection, provider: RealtimeProvider, rows: Sequence[OutboxMessage], settings: Settings
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
            await provider.publish([messages.realtime_message(row) for row in rows])
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
    rows: Sequence[OutboxMessage],
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

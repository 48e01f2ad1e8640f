"""What operators look at and do: outbox counts for ``/api/metrics``, re-queueing parked messages."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.models import outbox_table, provider_health_table


async def retry_parked(conn: AsyncConnection) -> int:
    """Puts parked events back in the queue (after the cause, such as a wrong key, was fixed)."""
    result = await conn.execute(
        update(outbox_table)
        .where(outbox_table.c.parked_at.is_not(None), outbox_table.c.published_at.is_(None))
        .values(parked_at=None, attempts=0, next_attempt_at=func.now())
        .returning(outbox_table.c.id)
    )
    return len(result.all())


async def stats(conn: AsyncConnection) -> dict[str, Any]:
    row = (
        await conn.execute(
            select(
                func.count().filter(outbox_table.c.published_at.is_not(None)).label("published"),
                func.count()
                .filter(outbox_table.c.published_at.is_(None), outbox_table.c.parked_at.is_(None))
                .label("pending"),
                func.count()
                .filter(outbox_table.c.parked_at.is_not(None), outbox_table.c.published_at.is_(None))
                .label("parked"),
                func.min(outbox_table.c.created_at)
                .filter(outbox_table.c.published_at.is_(None))
                .label("oldest_pending"),
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
        # The outbox drains only while its provider answers: a failing one is why ``pending`` grows.
        "providers": await providers(conn),
    }


_PUBLIC_ERROR_LIMIT = 200


def _provider_status(row: Any) -> dict[str, Any]:
    """A provider's health as operators and uptime checks see it; no row means it never failed."""

    def iso(moment: Any) -> str | None:
        return moment.isoformat() if moment else None

    failing = row.failing_since is not None
    return {
        "status": "failing" if failing else "ok",
        "failingSince": iso(row.failing_since),
        "consecutiveFailures": row.consecutive_failures or 0,
        "nextProbeAt": iso(row.next_probe_at) if failing else None,
        "lastError": (row.last_error or "")[:_PUBLIC_ERROR_LIMIT] or None if failing else None,
        "lastSuccessAt": iso(row.last_success_at),
        "lastFailureAt": iso(row.last_failure_at),
    }


async def provider_status(conn: AsyncConnection, provider: str) -> dict[str, Any]:
    """The database's liveness and the provider's health in one primary-key lookup (the outer row always exists)."""
    health = provider_health_table
    alive = select(literal(1).label("alive")).subquery()
    row = (await conn.execute(select(health).select_from(alive.outerjoin(health, health.c.provider == provider)))).one()
    return _provider_status(row)


async def providers(conn: AsyncConnection) -> dict[str, dict[str, Any]]:
    """Every provider's health (one row per provider ever configured that failed once): for ``/api/metrics``."""
    rows = await conn.execute(select(provider_health_table).order_by(provider_health_table.c.provider))
    return {row.provider: _provider_status(row) for row in rows}

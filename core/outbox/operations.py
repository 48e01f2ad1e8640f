"""What operators look at and do: outbox counts for ``/api/metrics``, re-queueing parked messages."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.models import OutboxMessage


async def retry_parked(conn: AsyncConnection) -> int:
    """Puts parked events back in the queue (after the cause, such as a wrong key, was fixed)."""
    result = await conn.execute(
        update(OutboxMessage)
        .where(OutboxMessage.parked_at.is_not(None), OutboxMessage.published_at.is_(None))
        .values(parked_at=None, attempts=0, next_attempt_at=func.now())
        .returning(OutboxMessage.id)
    )
    return len(result.all())


async def stats(conn: AsyncConnection) -> dict[str, Any]:
    row = (
        await conn.execute(
            select(
                func.count().filter(OutboxMessage.published_at.is_not(None)).label("published"),
                func.count()
                .filter(OutboxMessage.published_at.is_(None), OutboxMessage.parked_at.is_(None))
                .label("pending"),
                func.count()
                .filter(OutboxMessage.parked_at.is_not(None), OutboxMessage.published_at.is_(None))
                .label("parked"),
                func.min(OutboxMessage.created_at).filter(OutboxMessage.published_at.is_(None)).label("oldest_pending"),
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

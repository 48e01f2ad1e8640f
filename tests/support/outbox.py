"""The outbox as tests look at it and move it along."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update

from core.models import channel_sequence_table, outbox_table, provider_health_table
from core.runtime import Runtime


async def outbox_rows(runtime: Runtime) -> list[Any]:
    """Every outbox row, with all its columns, oldest first."""
    async with runtime.engine.connect() as conn:
        return list((await conn.execute(select(outbox_table).order_by(outbox_table.c.id))).all())


async def make_due(runtime: Runtime) -> None:
    """What the passing of a lease or a backoff would do: the relay may take every pending row now, and a failing
    provider's next probe is due."""
    async with runtime.engine.begin() as conn:
        await conn.execute(update(outbox_table).values(next_attempt_at=outbox_table.c.created_at))
        await conn.execute(
            update(provider_health_table)
            .where(provider_health_table.c.next_probe_at.is_not(None))
            .values(next_probe_at=provider_health_table.c.last_failure_at)
        )


async def hold_channel_lease(runtime: Runtime, channel: str, publisher: str, *, seconds: float) -> None:
    """Another publisher holds ``channel``'s publish lease for ``seconds`` more (negative: its lease ran out)."""
    async with runtime.engine.begin() as conn:
        await conn.execute(
            update(channel_sequence_table)
            .where(channel_sequence_table.c.channel == channel)
            .values(publisher=publisher, publisher_until=func.now() + timedelta(seconds=seconds))
        )

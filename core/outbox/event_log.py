"""The outbox read as each channel's log: what ``/updates`` serves and where a page starts."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from core.models import ChannelSequence, OutboxMessage
from core.outbox.store import OUTBOX_COLUMNS, row_to_message


async def messages_after(conn: AsyncConnection, channel: str, after: int, *, limit: int) -> list[OutboxMessage]:
    result = await conn.execute(
        select(*OUTBOX_COLUMNS)
        .where(OutboxMessage.channel == channel, OutboxMessage.seq > after)
        .order_by(OutboxMessage.seq)
        .limit(limit)
    )
    return [row_to_message(row) for row in result]


async def current_seq(conn: AsyncConnection, channel: str) -> int:
    seq = await conn.scalar(select(ChannelSequence.last_seq).where(ChannelSequence.channel == channel))
    return int(seq or 0)

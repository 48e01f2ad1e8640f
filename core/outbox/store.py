"""Writing messages to the outbox inside the caller's transaction, each numbered within its channel."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from core.messages import PendingMessage
from core.models import OutboxMessage
from core.realtime.wire import encode

# One statement numbers and stores any number of events: each channel's sequence row is bumped once by the count of
# its events (in channel order, so concurrent writers lock sequence rows in the same order), then every event
# takes its number in the order the service gave.
_INSERT_MESSAGES = text(
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

OUTBOX_COLUMNS = (
    OutboxMessage.id,
    OutboxMessage.channel,
    OutboxMessage.seq,
    OutboxMessage.event,
    OutboxMessage.payload,
    OutboxMessage.created_at,
    OutboxMessage.attempts,
)


def row_to_message(row: Any) -> OutboxMessage:
    return OutboxMessage(
        id=row.id,
        channel=row.channel,
        seq=row.seq,
        event=row.event,
        payload=row.payload,
        created_at=row.created_at,
        attempts=row.attempts,
    )


async def insert_messages(
    conn: AsyncConnection, events: Sequence[PendingMessage], *, lease_seconds: int
) -> list[OutboxMessage]:
    """Stores events inside the caller's transaction, leased to the caller for ``lease_seconds``."""
    if not events:
        return []
    result = await conn.execute(
        _INSERT_MESSAGES,
        {
            "channels": [e.channel for e in events],
            "names": [e.name for e in events],
            "payloads": [encode(e.payload) for e in events],
            "lease": lease_seconds,
        },
    )
    return sorted((row_to_message(row) for row in result), key=lambda e: e.id)

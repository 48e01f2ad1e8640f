"""The outbox read as each channel's log: what ``/updates`` serves and where a page starts."""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from core.messages import CARRYING_COMMENT_TEXT, PendingMessage, StoredMessage
from core.models import channel_sequence_table, outbox_table
from core.outbox.store import OUTBOX_COLUMNS, row_to_message
from core.realtime.channels import ADMIN_CHANNEL
from core.realtime.wire import encode


async def messages_after(conn: AsyncConnection, channel: str, after: int, *, limit: int) -> list[StoredMessage]:
    result = await conn.execute(
        select(*OUTBOX_COLUMNS)
        .where(outbox_table.c.channel == channel, outbox_table.c.seq > after)
        .order_by(outbox_table.c.seq)
        .limit(limit)
    )
    return [row_to_message(row) for row in result]


async def current_seq(conn: AsyncConnection, channel: str) -> int:
    seq = await conn.scalar(
        select(channel_sequence_table.c.last_seq).where(channel_sequence_table.c.channel == channel)
    )
    return int(seq or 0)


# Keeps each message's id, seq and time, so the log has no gap and a client catching up sees the removal in the
# comment's place; a message still pending is published as the removal.
_REPLACE_COMMENT_MESSAGES = text(
    """
    UPDATE outbox SET event = :name, payload = CAST(:payload AS jsonb)
    WHERE channel = ANY(CAST(:channels AS text[])) AND event = ANY(CAST(:carrying AS text[]))
      AND payload -> 'comment' ->> 'id' = :comment_id
    """
)


async def replace_comment_text(conn: AsyncConnection, *, comment_id: int, removal: PendingMessage) -> int:
    """Moderation: every message that carried the comment's text, on its event's channel and the admins', becomes
    ``removal`` (its ``comment:removed``). Returns how many were replaced."""
    result = await conn.execute(
        _REPLACE_COMMENT_MESSAGES,
        {
            "name": removal.name,
            "payload": encode(removal.payload),
            "channels": [removal.channel, ADMIN_CHANNEL],
            "carrying": list(CARRYING_COMMENT_TEXT),
            "comment_id": str(comment_id),
        },
    )
    return result.rowcount

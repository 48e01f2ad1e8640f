"""Writing messages to the outbox inside the caller's transaction, each numbered within its channel, and taking the
channel's publish lease when it is free, in the same statement."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from core.db import returning
from core.messages import PendingMessage, StoredMessage
from core.models import outbox_table
from core.realtime.wire import encode

# Pending and due for its channel's publisher: not published, not parked, not waiting out a rejection's backoff.
PENDING_DUE = "o.published_at IS NULL AND o.parked_at IS NULL AND o.next_attempt_at <= statement_timestamp()"

# What follows the caller's ``input(channel, event, payload, ord)`` CTE. Each channel's sequence row is bumped once
# by the count of its events (in channel order, so concurrent writers lock sequence rows in the same order), then
# every event takes its number in the order given. The same row carries the channel's publish lease: a writer
# takes it when it is free (no expiry) or expired (its holder died), and keeps the row locked until commit, which is
# what keeps a holder from releasing the lease while this writer's events are still invisible to it. ``publishable``
# holds the events this statement stored (``own``) and, on each channel whose lease it took, the channel's earlier
# pending events, which are this writer's to publish too: those after ``published_seq``, read from the row's latest
# version, so that events a holder published just before releasing are not taken for pending ones (this
# statement's snapshot may predate that release). ``wait_seconds`` is how long the channel's ceiling still holds
# its next publish back.
_AFTER_INPUT = f"""
counts AS (
    SELECT channel, count(*) AS n FROM input GROUP BY channel
),
numbered AS (
    INSERT INTO channel_sequences AS cs (channel, last_seq, publisher, publisher_until)
    SELECT channel, n, :publisher, statement_timestamp() + make_interval(secs => :lease) FROM counts ORDER BY channel
    ON CONFLICT (channel) DO UPDATE SET
        last_seq = cs.last_seq + EXCLUDED.last_seq,
        publisher = CASE WHEN cs.publisher_until > statement_timestamp() THEN cs.publisher ELSE EXCLUDED.publisher END,
        publisher_until = CASE WHEN cs.publisher_until > statement_timestamp() THEN cs.publisher_until
                               ELSE EXCLUDED.publisher_until END
    RETURNING channel, last_seq, published_seq, publisher = :publisher AS leased,
        greatest(extract(epoch FROM next_publish_at - clock_timestamp()), 0)::float8 AS wait_seconds
),
inserted AS (
    INSERT INTO outbox (channel, seq, event, payload)
    SELECT i.channel,
           s.last_seq - c.n + row_number() OVER (PARTITION BY i.channel ORDER BY i.ord),
           i.event, i.payload
    FROM input i JOIN counts c USING (channel) JOIN numbered s USING (channel)
    ORDER BY i.ord
    RETURNING id, channel, seq, event, payload, created_at, attempts
),
publishable AS (
    SELECT i.*, true AS own, s.leased, s.wait_seconds FROM inserted i JOIN numbered s USING (channel)
    UNION ALL
    SELECT o.id, o.channel, o.seq, o.event, o.payload, o.created_at, o.attempts,
           false AS own, true AS leased, s.wait_seconds
    FROM numbered s CROSS JOIN LATERAL (
        SELECT * FROM outbox o
        WHERE o.channel = s.channel AND o.seq > s.published_seq AND {PENDING_DUE}
        ORDER BY o.seq LIMIT :backlog_limit
    ) o
    WHERE s.leased
)"""

# The final select of the default statement; a caller building its own statement selects from ``publishable``.
PUBLISHABLE_COLUMN_NAMES = (
    "id",
    "channel",
    "seq",
    "event",
    "payload",
    "created_at",
    "attempts",
    "own",
    "leased",
    "wait_seconds",
)
PUBLISHABLE_COLUMNS = ", ".join(PUBLISHABLE_COLUMN_NAMES)


def insert_sql(input_cte: str, *, before: str = "") -> str:
    """The outbox insert as one statement around the caller's ``input(channel, event, payload, ord)`` CTE.

    ``input_cte`` is the CTE's body (a SELECT whose columns are channel text, event text, payload jsonb and ord, the
    order of the events); ``before`` are the caller's own CTEs (``a AS (...), b AS (...)``), placed in front so that
    ``input`` can read them. The statement ends with the ``publishable`` CTE; append ``SELECT ... FROM publishable``
    (at least ``PUBLISHABLE_COLUMNS``, read back with ``publishable_rows``). Its parameters: ``insert_params``.
    """
    leading = f"{before.strip().rstrip(',')},\n" if before.strip() else ""
    return f"WITH {leading}input AS ({input_cte}),{_AFTER_INPUT}"


_INSERT_MESSAGES = returning(
    insert_sql(
        """
        SELECT channel, event, payload::jsonb AS payload, ord
        FROM unnest(CAST(:channels AS text[]), CAST(:names AS text[]), CAST(:payloads AS text[]))
             WITH ORDINALITY AS t(channel, event, payload, ord)
        """
    )
    + f"\nSELECT {PUBLISHABLE_COLUMNS} FROM publishable",
    *PUBLISHABLE_COLUMN_NAMES,
)

OUTBOX_COLUMNS = (
    outbox_table.c.id,
    outbox_table.c.channel,
    outbox_table.c.seq,
    outbox_table.c.event,
    outbox_table.c.payload,
    outbox_table.c.created_at,
    outbox_table.c.attempts,
)


def row_to_message(row: Any) -> StoredMessage:
    return StoredMessage(
        id=row.id,
        channel=row.channel,
        seq=row.seq,
        event=row.event,
        payload=row.payload,
        created_at=row.created_at,
        attempts=row.attempts,
    )


@dataclass
class ChannelTurn:
    """A channel whose publish lease a publisher holds: its pending events known so far (in seq order), how long
    its ceiling still holds the next publish back, and the highest seq this publisher has dealt with."""

    channel: str
    rows: list[StoredMessage] = field(default_factory=list)
    wait_seconds: float = 0.0
    through: int = 0


@dataclass
class Enqueued:
    """What an insert stored, and the channels whose lease it took with what there is to publish on them."""

    own: list[StoredMessage] = field(default_factory=list)
    turns: dict[str, ChannelTurn] = field(default_factory=dict)

    def merge(self, other: Enqueued) -> None:
        self.own.extend(other.own)
        for channel, turn in other.turns.items():
            mine = self.turns.setdefault(channel, ChannelTurn(channel))
            known = {row.id: row for row in [*mine.rows, *turn.rows]}
            mine.rows = sorted(known.values(), key=lambda row: row.seq)
            mine.wait_seconds = max(mine.wait_seconds, turn.wait_seconds)


def publishable_rows(rows: Iterable[Any]) -> Enqueued:
    """Reads back the rows selected from ``publishable``, in any order; the channels' turns come in the order of
    their oldest message (a statement's own in the order it gave them)."""
    enqueued = Enqueued()
    for row in sorted(rows, key=lambda row: row.id):
        message = row_to_message(row)
        if row.own:
            enqueued.own.append(message)
        if row.leased:
            turn = enqueued.turns.setdefault(row.channel, ChannelTurn(row.channel))
            turn.rows.append(message)
            turn.wait_seconds = max(turn.wait_seconds, float(row.wait_seconds))
    enqueued.own.sort(key=lambda e: e.id)
    for turn in enqueued.turns.values():
        turn.rows.sort(key=lambda e: e.seq)
    return enqueued


def insert_params(*, publisher: str, lease_seconds: int, backlog_limit: int) -> dict[str, Any]:
    """The parameters of ``insert_sql`` besides the caller's own: who would take the lease, for how long, and how
    many earlier pending events per channel to read along."""
    return {"publisher": publisher, "lease": lease_seconds, "backlog_limit": backlog_limit}


async def insert_messages(
    conn: AsyncConnection,
    events: Sequence[PendingMessage],
    *,
    publisher: str,
    lease_seconds: int,
    backlog_limit: int = 100,
) -> Enqueued:
    """Stores events inside the caller's transaction; takes each channel's publish lease for ``publisher`` where it
    is free."""
    if not events:
        return Enqueued()
    result = await conn.execute(
        _INSERT_MESSAGES,
        {
            "channels": [e.channel for e in events],
            "names": [e.name for e in events],
            "payloads": [encode(e.payload) for e in events],
            **insert_params(publisher=publisher, lease_seconds=lease_seconds, backlog_limit=backlog_limit),
        },
    )
    return publishable_rows(result)

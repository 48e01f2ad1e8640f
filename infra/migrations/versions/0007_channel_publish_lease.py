"""Each channel's publish lease and ceiling, on the row every writer of the channel already locks

Every like was its own provider message: a storm on one photo went over Ably's 50 messages per second per
channel and was refused. One publisher per channel at a time (the lease: publisher, publisher_until), publishing
what is pending as one message, no more often than the channel's ceiling allows (next_publish_at); published_seq
is how far its publishers got. The partial index finds a channel's pending events without reading its log.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 23:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "channel_sequences", sa.Column("published_seq", sa.BigInteger(), server_default=sa.text("0"), nullable=False)
    )
    op.add_column("channel_sequences", sa.Column("publisher", sa.String(length=64), nullable=True))
    op.add_column("channel_sequences", sa.Column("publisher_until", sa.DateTime(timezone=True), nullable=True))
    op.add_column("channel_sequences", sa.Column("next_publish_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_outbox_pending_channel",
        "outbox",
        ["channel", "seq"],
        unique=False,
        postgresql_where=sa.text("published_at IS NULL AND parked_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_pending_channel", table_name="outbox")
    op.drop_column("channel_sequences", "next_publish_at")
    op.drop_column("channel_sequences", "publisher_until")
    op.drop_column("channel_sequences", "publisher")
    op.drop_column("channel_sequences", "published_seq")

"""A rate-limit row counts its attempts per second instead of listing each one

A row listed the time of every admitted attempt in its window, so each attempt against a key rewrote, and each check
read, as many timestamps as the key had attempts in the window: up to 1,200 (about 10 KB) on a venue's address,
under that row's lock, which every action from the venue waits for. Counting them per second bounds a row by its
window (at most one entry per second, 60 for a minute) whatever the limit, at a resolution of one second. The
counts of the listed attempts are kept.

The list stays, unread, for one release: functions still running the earlier code while a deploy goes out keep
counting in it (each release sees only its own attempts for those minutes, and the earlier relay's prune may drop
rows the new code made: a deploy may forget up to a minute of attempts, as 0003 said). A later migration drops it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "rate_limits",
        sa.Column(
            "seconds", postgresql.ARRAY(sa.DateTime(timezone=True)), server_default=sa.text("'{}'"), nullable=False
        ),
    )
    op.add_column(
        "rate_limits",
        sa.Column("counts", postgresql.ARRAY(sa.Integer()), server_default=sa.text("'{}'"), nullable=False),
    )
    op.add_column("rate_limits", sa.Column("admitted_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        """
        UPDATE rate_limits AS r SET (seconds, counts, admitted_at) = (
            SELECT coalesce(array_agg(s.second ORDER BY s.second), '{}'),
                   coalesce(array_agg(s.n ORDER BY s.second), '{}'),
                   r.attempts[cardinality(r.attempts)]
            FROM (
                SELECT date_trunc('second', t) AS second, count(*)::integer AS n
                FROM unnest(r.attempts) AS t GROUP BY 1
            ) AS s
        )
        """
    )
    # the code from here on does not write the list; the earlier code's rows need one
    op.alter_column("rate_limits", "attempts", server_default=sa.text("'{}'"))


def downgrade() -> None:
    # each second's attempts listed at that second: as far as a count tells
    op.execute(
        """
        UPDATE rate_limits AS r SET attempts = coalesce((
            SELECT array_agg(b.second ORDER BY b.second)
            FROM unnest(r.seconds, r.counts) AS b(second, n), generate_series(1, b.n)
        ), '{}')
        """
    )
    op.alter_column("rate_limits", "attempts", server_default=None)
    op.drop_column("rate_limits", "admitted_at")
    op.drop_column("rate_limits", "counts")
    op.drop_column("rate_limits", "seconds")

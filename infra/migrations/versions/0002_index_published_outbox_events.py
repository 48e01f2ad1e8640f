"""Index published outbox events, for the relay's pruning of those past the retention

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 08:28:04.820565
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PUBLISHED = sa.text("published_at IS NOT NULL")


def upgrade() -> None:
    op.create_index("ix_outbox_published_at", "outbox", ["published_at"], postgresql_where=_PUBLISHED)


def downgrade() -> None:
    op.drop_index("ix_outbox_published_at", table_name="outbox", postgresql_where=_PUBLISHED)

"""Rate limits over windows other than a minute, and admin tokens that a password change revokes

``rate_limits.window_seconds`` lets the relay prune each row after its own window (identity minting per address is
counted over an hour, actions over a minute). ``admins.token_version`` is carried in every admin token and raised
when the password is set again, so tokens issued before stop working.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 20:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("rate_limits", sa.Column("window_seconds", sa.Integer(), server_default="60", nullable=False))
    op.add_column("admins", sa.Column("token_version", sa.Integer(), server_default="1", nullable=False))


def downgrade() -> None:
    op.drop_column("admins", "token_version")
    op.drop_column("rate_limits", "window_seconds")

"""Applies the Alembic migrations in infra/migrations: the only way a schema is made, tests included."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

import infra.migrations

MIGRATIONS_DIR = Path(infra.migrations.__file__).parent


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation treats % specially; a URL-encoded password may contain it.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)

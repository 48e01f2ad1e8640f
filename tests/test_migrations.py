"""The migrations are the only way a schema is made: they must build exactly what the models describe, and undo."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from core.migrations import downgrade, upgrade
from core.models import Base
from tests.support.database import fresh_database


def _differences(url: str) -> list[object]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata))
    finally:
        engine.dispose()


def test_the_migrated_schema_is_what_the_models_describe(database_url: str) -> None:
    assert _differences(database_url) == []


def test_every_migration_can_be_undone_and_applied_again() -> None:
    with fresh_database() as url:
        downgrade(url, "base")
        engine = create_engine(url)
        try:
            left = set(inspect(engine).get_table_names()) - {"alembic_version"}
        finally:
            engine.dispose()
        upgrade(url)

        assert left == set()
        assert _differences(url) == []


def test_a_rate_limit_rows_attempts_are_stored_uncompressed(database_url: str) -> None:
    # rewritten on every attempt, and up to 1,200 timestamps on a venue's address (infra/migrations, 0008)
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            storage = conn.scalar(
                text(
                    "SELECT attstorage FROM pg_attribute"
                    " WHERE attrelid = 'rate_limits'::regclass AND attname = 'attempts'"
                )
            )
    finally:
        engine.dispose()
    assert storage == "e"

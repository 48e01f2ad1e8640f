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


def test_the_attempts_a_rate_limit_row_listed_are_still_counted_after_it_counts_them_per_second() -> None:
    # a deploy during an event must not hand every guest a fresh minute (infra/migrations, 0009)
    listed = "ARRAY[now() - interval '5 s', now() - interval '5 s', now() - interval '5 s', now() - interval '2 s']"
    counted = "SELECT counts, cardinality(seconds) FROM rate_limits WHERE key = 'actions:198.51.100.7'"
    with fresh_database(migrated=False) as url:
        upgrade(url, "0008")
        engine = create_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(text(f"INSERT INTO rate_limits (key, attempts) VALUES ('actions:198.51.100.7', {listed})"))
            upgrade(url)
            with engine.connect() as conn:
                after_upgrade = conn.execute(text(counted)).one()
            downgrade(url, "0008")
            with engine.connect() as conn:
                after_downgrade = conn.scalar(text("SELECT cardinality(attempts) FROM rate_limits"))
        finally:
            engine.dispose()

    assert tuple(after_upgrade) == ([3, 1], 2)
    assert after_downgrade == 4

"""The migrations are the only way a schema is made: they must build exactly what the models describe, and undo."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from core import ratelimit
from core.migrations import downgrade, upgrade
from core.models import metadata
from tests.support.database import fresh_database


def _differences(url: str) -> list[object]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(
                compare_metadata(
                    MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True}),
                    metadata,
                )
            )
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


# The rate limit's statement of the release before 0009 (core/ratelimit.py at d19c25f), as its functions still run
# it while a deploy goes out.
_ADMIT_BEFORE_0009 = """
    INSERT INTO rate_limits AS r (key, attempts, window_seconds)
    SELECT given.key, ARRAY[now()], given.window_seconds
    FROM unnest(CAST(:limit_keys AS text[]), CAST(:limit_windows AS integer[])) AS given(key, window_seconds)
    ORDER BY given.key
    ON CONFLICT (key) DO UPDATE SET window_seconds = excluded.window_seconds, attempts = (
        SELECT CASE WHEN cardinality(recent)
                         < (CAST(:limit_counts AS integer[]))[array_position(CAST(:limit_keys AS text[]), r.key)]
                    THEN recent || now() ELSE recent END
        FROM (
            SELECT ARRAY(
                SELECT t FROM unnest(r.attempts) AS t
                WHERE t > now() - make_interval(secs => excluded.window_seconds) ORDER BY t
            ) AS recent
        ) AS in_window
    )
    RETURNING key, attempts[cardinality(attempts)] = now() AS admitted, now() AS admitted_at,
        extract(epoch FROM attempts[1] + make_interval(secs => window_seconds) - now()) AS seconds_left
"""


def test_functions_of_the_release_before_still_count_attempts_once_0009_is_applied() -> None:
    # Migrations run before a deploy: for the minutes until every function runs the new code, the old one must
    # still answer, on rows the new code made too.
    limits = [ratelimit.Limit("actions:198.51.100.8", 2), ratelimit.Limit("guest-during-deploy", 2)]
    with fresh_database() as url:
        admitted = _admitted_by_the_code_before_0009(url, limits)

    # a limit of 2 on each key, one of them made by the new code
    assert [[row.admitted for row in rows] for rows in admitted] == [[True, True], [True, True], [False, False]]


def _admitted_by_the_code_before_0009(url: str, limits: list[ratelimit.Limit]) -> list[list[Any]]:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:  # a row as the new code makes it, which lists nothing
            conn.execute(
                text(
                    "INSERT INTO rate_limits (key, seconds, counts, admitted_at)"
                    " VALUES (:key, ARRAY[date_trunc('second', now())], ARRAY[1], now())"
                ),
                {"key": limits[0].key},
            )
        admitted: list[list[Any]] = []
        for _ in range(3):
            with engine.begin() as conn:
                admitted.append(list(conn.execute(text(_ADMIT_BEFORE_0009), _params_before_0009(limits))))
    finally:
        engine.dispose()
    return admitted


def _params_before_0009(limits: list[ratelimit.Limit]) -> dict[str, Any]:
    """``ratelimit.admission_params`` of the release before 0009: three arrays."""
    return {
        "limit_keys": [limit.key for limit in limits],
        "limit_windows": [limit.window_seconds for limit in limits],
        "limit_counts": [limit.limit for limit in limits],
    }

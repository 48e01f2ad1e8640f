"""A fresh, migrated database for one test run: on the server named by TEST_DATABASE_URL or DATABASE_URL, or on an
embedded Postgres (pgserver) when neither is set."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from core.migrations import upgrade
from tests.support.environment import DATABASE_SERVER_URL

TABLES = (
    "likes, comments, photos, events, admins, outbox, channel_sequences, rate_limits, idempotent_requests, "
    "provider_health"
)


async def empty_tables(engine: AsyncEngine) -> None:
    """Every table emptied and its ids restarted: each test starts from a fresh schema."""
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))


def _server_url() -> tuple[str, object | None]:
    if DATABASE_SERVER_URL:
        return DATABASE_SERVER_URL, None
    import pgserver

    server = pgserver.get_server(tempfile.mkdtemp(prefix="hafi-test-pg-"), cleanup_mode="delete")
    return server.get_uri(), server


def _libpq(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


@contextmanager
def fresh_database(*, migrated: bool = True) -> Iterator[str]:
    """Yields the SQLAlchemy URL of a new database with every migration applied (or, ``migrated=False``, empty, for
    another checkout to migrate with its own); drops it afterwards."""
    server_url, server = _server_url()
    name = f"hafi_test_{uuid.uuid4().hex[:10]}"
    admin_url = _libpq(server_url, "postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_url(_libpq(server_url, name)).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    try:
        if migrated:
            upgrade(url)
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if server is not None:
            server.cleanup()  # type: ignore[attr-defined]

"""The engine's connections are in autocommit; ``core.db.begin`` is the transaction (core/db.py)."""

from __future__ import annotations

import contextlib

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from core.db import begin
from core.runtime import Runtime

_COUNT = text("SELECT count(*) FROM events WHERE slug LIKE 'db-test-%'")
_INSERT = text("INSERT INTO events (slug, title) VALUES (:slug, 'db test')")


async def test_a_statement_on_a_pooled_connection_commits_by_itself(runtime: Runtime) -> None:
    async with runtime.engine.connect() as conn:
        await conn.execute(_INSERT, {"slug": "db-test-alone"})
        # never committed by this code: autocommit did
    async with runtime.engine.connect() as conn:
        assert await conn.scalar(_COUNT) == 1


async def test_begin_is_a_transaction_that_an_exception_rolls_back_whole(runtime: Runtime) -> None:
    with pytest.raises(RuntimeError):
        async with begin(runtime.engine) as conn:
            await conn.execute(_INSERT, {"slug": "db-test-first"})
            await conn.execute(_INSERT, {"slug": "db-test-second"})
            raise RuntimeError("the third step failed")

    async with begin(runtime.engine) as conn:
        await conn.execute(_INSERT, {"slug": "db-test-kept"})
    async with runtime.engine.connect() as conn:
        assert await conn.scalar(_COUNT) == 1  # only the committed one
    # back in the pool, the connections that ran the transactions are in autocommit again: all of them, at once
    async with contextlib.AsyncExitStack() as stack:
        pooled = [
            await stack.enter_async_context(runtime.engine.connect()) for _ in range(runtime.settings.db_pool_size)
        ]
        assert [await _autocommit(conn) for conn in pooled] == [True] * len(pooled)


async def _autocommit(conn: AsyncConnection) -> bool:
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    return bool(driver.autocommit)

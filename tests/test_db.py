"""The engine's connections are in autocommit; ``core.db.begin`` is the transaction; statements declare the columns
they answer (core/db.py)."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from sqlalchemy import TextualSelect, event, text
from sqlalchemy.ext.asyncio import AsyncConnection

from core.db import begin
from core.outbox import store
from core.runtime import Runtime
from core.services import comments, likes
from tests.support.api import Api, bearer

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


async def test_each_statement_declaring_its_columns_declares_what_it_answers_in_order(
    api: Api, runtime: Runtime
) -> None:
    """``core.db.returning``: SQLAlchemy maps the declared columns onto the answer by position, so a list out of
    step with its SQL would misname columns or lose the cached mapping. Checked on every run of each such
    statement: the like, the unlike, a comment with and without a key, and a moderation's outbox insert make."""
    answered: dict[object, list[tuple[list[str], list[str]]]] = {}

    def compare(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        compiled = context.compiled
        if compiled is not None and isinstance(compiled.statement, TextualSelect):
            declared = [column.name for column in compiled.statement.selected_columns]
            answered.setdefault(compiled.statement, []).append((declared, [d.name for d in cursor.description]))

    event.listen(runtime.engine.sync_engine, "after_cursor_execute", compare)
    try:
        photo_id = (await api.event("db-columns", photos=1))[0]
        guest = bearer(await api.guest())
        comment = {"authorName": "Ana", "content": "lovely"}
        for response in [
            await api.client.post(f"/api/photos/{photo_id}/like", headers=guest),
            await api.client.delete(f"/api/photos/{photo_id}/like", headers=guest),
            await api.client.post(f"/api/photos/{photo_id}/comments", json=comment, headers=guest),
            added := await api.client.post(
                f"/api/photos/{photo_id}/comments", json=comment, headers={**guest, "Idempotency-Key": "db-columns"}
            ),
            await api.client.patch(
                f"/api/admin/comments/{added.json()['id']}",
                json={"status": "hidden"},
                headers=bearer(await api.admin()),
            ),
        ]:
            assert response.is_success, response.text
    finally:
        event.remove(runtime.engine.sync_engine, "after_cursor_execute", compare)

    assert set(answered) == {likes._LIKE, likes._UNLIKE, comments._ADD, comments._ADD_KEYED, store._INSERT_MESSAGES}
    for runs in answered.values():
        for declared, names in runs:
            assert declared == names

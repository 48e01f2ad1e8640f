"""How many times a like waits for the database: each wait is a network round trip, paid on every request.

Counted on the wire: libpq's protocol trace of the one pooled connection, where every round trip ends with the
server's ReadyForQuery message."""

from __future__ import annotations

import asyncio
import os
import resource
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import _queries as psycopg_queries
from psycopg import pq
from sqlalchemy import TextClause, event, text
from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from core.api.app import create_app
from core.realtime.memory import MemoryProvider
from core.runtime import Runtime, build_runtime
from core.services import likes
from tests.support.api import Api, bearer
from tests.support.environment import make_settings


@pytest.fixture
async def single_connection_api(runtime: Runtime) -> AsyncIterator[Api]:
    """The API as a Lambda sandbox runs it: one pooled connection."""
    lambda_like = build_runtime(
        make_settings(runtime.settings.require_database_url(), db_pool_size=1), provider=MemoryProvider()
    )
    transport = httpx.ASGITransport(app=create_app(lambda_like))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield Api(client, lambda_like)
    await lambda_like.aclose()


def _round_trips(trace: str) -> list[str]:
    """The client's messages of each round trip, as one string per trip."""
    trips: list[str] = []
    sent: list[str] = []
    for line in trace.splitlines():
        if line.startswith("B\t") and "\tReadyForQuery\t" in line:
            trips.append(" ".join(sent))
            sent = []
        elif not line.startswith("B\t"):
            sent.append(line)
    return trips


@asynccontextmanager
async def wire_trace(api: Api) -> AsyncIterator[list[str]]:
    """Fills the yielded list with the round trips of the pool's only connection made inside the block."""
    async with api.runtime.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        pgconn = raw.driver_connection.pgconn  # type: ignore[union-attr]
    trips: list[str] = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "trace"
        with path.open("w") as sink:
            pgconn.trace(sink.fileno())
            pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
            try:
                yield trips
            finally:
                pgconn.untrace()  # flushes libpq's buffer
        trips.extend(_round_trips(path.read_text()))


async def test_a_like_takes_two_round_trips_with_no_transaction_around_them(single_connection_api: Api) -> None:
    api = single_connection_api
    photo_id, _ = await api.event("wedding")
    guest = await api.guest()

    async with wire_trace(api) as trips:
        response = await api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(guest))

    assert response.status_code == 200
    # the rate limit, the visibility check, like row, counter and numbered outbox row in one statement; then, after
    # the publish, marking the event published. No pre-ping, no BEGIN, no COMMIT.
    assert len(trips) == 2, "\n".join(trips)
    for trip, markers in zip(
        trips,
        [["rate_limits", "FROM photos p JOIN events", "INSERT INTO likes", "INSERT INTO outbox"], ["published_at"]],
        strict=True,
    ):
        assert all(marker in trip for marker in markers), (markers, trip)
    assert not any("BEGIN" in trip or "COMMIT" in trip for trip in trips)


@pytest.mark.parametrize("statement", [likes._LIKE, likes._UNLIKE], ids=["like", "unlike"])
def test_the_like_statement_is_short_enough_for_psycopg_to_keep_its_placeholders_converted(
    statement: TextClause,
) -> None:
    # Longer, psycopg converts the statement's placeholders again on every like (core.db.compact_sql).
    sent = str(statement.compile(dialect=psycopg_dialect.dialect())).encode()  # type: ignore[no-untyped-call]
    assert len(sent) <= psycopg_queries.MAX_CACHED_STATEMENT_LENGTH


async def test_an_unlike_takes_two_round_trips_too(single_connection_api: Api) -> None:
    api = single_connection_api
    photo_id, _ = await api.event("wedding")
    guest = await api.guest()
    await api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(guest))

    async with wire_trace(api) as trips:
        response = await api.client.delete(f"/api/photos/{photo_id}/like", headers=bearer(guest))

    assert response.json() == {"photoId": str(photo_id), "likeCount": 0, "liked": False, "changed": True}
    assert len(trips) == 2, "\n".join(trips)
    assert all(marker in trips[0] for marker in ["rate_limits", "DELETE FROM likes", "INSERT INTO outbox"])


async def test_a_repeated_like_changes_nothing_and_publishes_nothing(single_connection_api: Api) -> None:
    api = single_connection_api
    photo_id, _ = await api.event("wedding")
    guest = await api.guest()
    await api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(guest))

    async with wire_trace(api) as trips:
        response = await api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(guest))

    assert response.json() == {"photoId": str(photo_id), "likeCount": 1, "liked": True, "changed": False}
    # the like statement, which counts the attempt, finds the row there and answers the count as it was
    assert len(trips) == 1, "\n".join(trips)
    assert not any("UPDATE outbox" in trip for trip in trips)


async def test_a_like_while_the_provider_is_failing_and_its_probe_not_due_still_takes_two(
    single_connection_api: Api,
) -> None:
    api = single_connection_api
    provider = api.runtime.provider
    assert isinstance(provider, MemoryProvider)
    photo_a, photo_b = await api.event("wedding")
    guest = await api.guest()
    provider.failure = ConnectionRefusedError("down")
    await api.client.post(f"/api/photos/{photo_a}/like", headers=bearer(guest))  # finds it failing

    async with wire_trace(api) as trips:
        response = await api.client.post(f"/api/photos/{photo_b}/like", headers=bearer(guest))

    assert response.status_code == 200
    # Instead of marking the events published, one statement asks for the provider's probe and, not getting it,
    # hands the events to the relay; the provider is not called.
    assert len(trips) == 2, "\n".join(trips)
    assert "provider_health" in trips[-1] and "UPDATE outbox SET next_attempt_at" in trips[-1]


@pytest.mark.parametrize(
    ("headers", "key_markers"),
    [({}, []), ({"X-Mutation-Id": "comment-1"}, ["SELECT fingerprint", "INSERT INTO idempotent_requests"])],
    ids=["no key", "with a key"],
)
async def test_a_comment_takes_two_round_trips_too(
    single_connection_api: Api, headers: dict[str, str], key_markers: list[str]
) -> None:
    api = single_connection_api
    photo_id, _ = await api.event("wedding")
    guest = await api.guest()

    async with wire_trace(api) as trips:
        response = await api.client.post(
            f"/api/photos/{photo_id}/comments",
            json={"authorName": "Ana", "content": "lovely"},
            headers={**bearer(guest), **headers},
        )

    assert response.status_code == 201
    # the rate limit, (with a key) its earlier answer, the visibility check, the comment, (with a key) the answer kept
    # under it and both numbered outbox rows in one statement; then, after the publish, marking them published
    assert len(trips) == 2, "\n".join(trips)
    markers = ["rate_limits", "FROM photos p JOIN events", "INSERT INTO comments", "INSERT INTO outbox", *key_markers]
    assert all(marker in trips[0] for marker in markers), trips[0]
    assert ("idempotent_requests" in trips[0]) == bool(key_markers)
    assert "published_at" in trips[1]
    assert not any("BEGIN" in trip or "COMMIT" in trip for trip in trips)


# Without a pre-ping, a pooled connection that died while idle must still not fail the request that finds it.


def _terminate(database_url: str, backend_pid: int) -> None:
    """Ends a backend as a restarting server or a pooler's idle timeout would, and waits until it is gone."""
    with psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", (backend_pid,))


async def _backend_pid(runtime: Runtime) -> int:
    async with runtime.engine.connect() as conn:
        return int(await conn.scalar(text("SELECT pg_backend_pid()")))


async def test_a_connection_ended_by_the_server_between_requests_is_replaced_before_use(
    single_connection_api: Api,
) -> None:
    api = single_connection_api
    photo_a, photo_b = await api.event("wedding")
    guest = await api.guest()
    assert (await api.client.post(f"/api/photos/{photo_a}/like", headers=bearer(guest))).status_code == 200
    pid = await _backend_pid(api.runtime)

    _terminate(api.runtime.settings.require_database_url(), pid)
    response = await api.client.post(f"/api/photos/{photo_b}/like", headers=bearer(guest))

    assert response.status_code == 200, response.text
    assert response.json()["changed"] is True
    assert await _backend_pid(api.runtime) != pid


@contextmanager
def first_checkout_lost(runtime: Runtime) -> Iterator[None]:
    """The server ends the first connection checked out in the block after the pool has looked at it, so that only
    the statement sent on it finds it gone."""
    database_url = runtime.settings.require_database_url()
    lost: list[int] = []

    def lose_after_checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if not lost:
            lost.append(dbapi_connection.driver_connection.info.backend_pid)
            _terminate(database_url, lost[0])

    event.listen(runtime.engine.sync_engine, "checkout", lose_after_checkout)
    try:
        yield
    finally:
        event.remove(runtime.engine.sync_engine, "checkout", lose_after_checkout)
    assert lost, "the connection was not lost"


async def test_a_connection_lost_under_the_first_statement_is_retried_once_on_a_new_one(
    single_connection_api: Api,
) -> None:
    api = single_connection_api
    photo_id, _ = await api.event("wedding")
    guest = await api.guest()

    with first_checkout_lost(api.runtime):
        response = await api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(guest))

    assert response.status_code == 200, response.text
    assert response.json() == {"photoId": str(photo_id), "likeCount": 1, "liked": True, "changed": True}
    async with api.runtime.engine.connect() as conn:  # committed, not left in a transaction nobody commits
        assert await conn.scalar(text("SELECT like_count FROM photos WHERE id = :id"), {"id": int(photo_id)}) == 1


async def test_a_keyed_comment_whose_pooled_connection_is_found_lost_is_stored_once_on_a_new_one(
    single_connection_api: Api,
) -> None:
    api = single_connection_api
    photo_id, _ = await api.event("wedding")
    guest = await api.guest()

    with first_checkout_lost(api.runtime):
        response = await api.client.post(
            f"/api/photos/{photo_id}/comments",
            json={"authorName": "Ana", "content": "lovely"},
            headers={**bearer(guest), "X-Mutation-Id": "c-1"},
        )

    assert response.status_code == 201, response.text
    async with api.runtime.engine.connect() as conn:
        stored = (await conn.execute(text("SELECT id, content FROM comments"))).all()
        messages = await conn.scalar(
            text("SELECT count(*) FROM outbox WHERE payload -> 'comment' ->> 'id' = :id"), {"id": response.json()["id"]}
        )
    assert [(str(row.id), row.content) for row in stored] == [(response.json()["id"], "lovely")]
    assert messages == 2


async def test_a_like_whose_connection_is_lost_mid_statement_is_repeated_once_and_counts_once(
    single_connection_api: Api,
) -> None:
    api = single_connection_api
    photo_id, _ = await api.event("wedding")
    guest = await api.guest()
    database_url = api.runtime.settings.require_database_url().replace("+psycopg", "")

    async with await psycopg.AsyncConnection.connect(database_url) as blocker:
        # Holds the photo's row, so that the like's statement waits inside the server, sent and not yet done.
        await blocker.execute("SELECT 1 FROM photos WHERE id = %s FOR UPDATE", (int(photo_id),))
        like = asyncio.create_task(api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(guest)))
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as watcher:
            for _ in range(500):
                waiting = await (
                    await watcher.execute(
                        # the statement's text as shown there is cut short (track_activity_query_size)
                        "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%rate_limits%'"
                    )
                ).fetchone()
                if waiting:
                    break
                await asyncio.sleep(0.01)
            assert waiting, "the like never reached the photo's lock"
            await watcher.execute("SELECT pg_terminate_backend(%s, 5000)", (waiting[0],))
        await asyncio.sleep(0.2)  # the repeat, on a new connection, now waits for the lock in turn
        await blocker.rollback()
        response = await like

    # Setting a like's state is safe to repeat: had the lost run committed, the repeat would have changed nothing.
    assert response.status_code == 200, response.text
    assert response.json() == {"photoId": str(photo_id), "likeCount": 1, "liked": True, "changed": True}
    async with api.runtime.engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM likes")) == 1
        assert await conn.scalar(text("SELECT count(*) FROM outbox")) == 1
        assert await conn.scalar(text("SELECT like_count FROM photos WHERE id = :id"), {"id": int(photo_id)}) == 1


@pytest.fixture
def descriptors_above_1024() -> Iterator[None]:
    """A process holding more than 1,024 open files, as a Socket.IO node with thousands of viewers does: every
    connection opened now gets a descriptor number that ``select()`` cannot watch."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"this process may open {hard} files at most")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        yield
    finally:
        for descriptor in held:
            os.close(descriptor)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_a_pooled_connection_numbered_above_1024_is_checked_and_used(
    single_connection_api: Api, descriptors_above_1024: None
) -> None:
    api = single_connection_api
    await api.runtime.engine.dispose()  # the next connection is opened now, above the 1,024 held files
    photo_a, photo_b = await api.event("wedding")
    guest = await api.guest()

    first = await api.client.post(f"/api/photos/{photo_a}/like", headers=bearer(guest))
    pid = await _backend_pid(api.runtime)
    _terminate(api.runtime.settings.require_database_url(), pid)
    second = await api.client.post(f"/api/photos/{photo_b}/like", headers=bearer(guest))

    assert first.status_code == 200, first.text
    assert second.status_code == 200, second.text
    assert await _backend_pid(api.runtime) != pid


async def _prepared_on_the_pooled_connection(api: Api) -> list[str]:
    async with api.runtime.engine.connect() as conn:
        return list((await conn.execute(text("SELECT statement FROM pg_prepared_statements"))).scalars())


@pytest.mark.parametrize("prepared", [False, True])
async def test_statements_are_prepared_only_where_the_setting_allows(runtime: Runtime, prepared: bool) -> None:
    """Off (the default), nothing is prepared, so that every transaction-mode pooler works; on, a like's statement
    is prepared on its second run and reused from then on."""
    settings = make_settings(runtime.settings.require_database_url(), db_pool_size=1, db_prepared_statements=prepared)
    lambda_like = build_runtime(settings, provider=MemoryProvider())
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(lambda_like)), base_url="http://testserver"
        ) as client:
            api = Api(client, lambda_like)
            photo_ids = await api.event("wedding", photos=3)
            guest = await api.guest()
            for photo_id in photo_ids:
                assert (await client.post(f"/api/photos/{photo_id}/like", headers=bearer(guest))).status_code == 200
            statements = await _prepared_on_the_pooled_connection(api)
    finally:
        await lambda_like.aclose()

    like_statements = [statement for statement in statements if "INSERT INTO likes" in statement]
    assert len(like_statements) == (1 if prepared else 0), statements
    if not prepared:
        assert statements == []


@contextmanager
def answer_lost_after_commit(marker: str) -> Iterator[list[str]]:
    """The first statement containing ``marker`` runs and commits, and then its connection is reported lost, as when
    the network drops between the server's commit and its answer. Yields the statements that were lost so."""
    original = AsyncConnection.execute
    lost: list[str] = []

    async def execute(self: AsyncConnection, statement: Any, *args: Any, **kwargs: Any) -> Any:
        result = await original(self, statement, *args, **kwargs)
        if not lost and marker in str(statement):
            lost.append(str(statement))
            raise DBAPIError(str(statement), None, ConnectionResetError("lost"), connection_invalidated=True)
        return result

    AsyncConnection.execute = execute  # type: ignore[method-assign]
    try:
        yield lost
    finally:
        AsyncConnection.execute = original  # type: ignore[method-assign]
    assert lost, f"no statement with {marker!r} ran"


async def _comment_whose_answer_is_lost(api: Api, headers: dict[str, str]) -> tuple[str, str, httpx.Response]:
    """A new guest's comment on a new event's photo, whose statement commits but whose answer never comes back;
    the photo, the guest's token and the response."""
    photo_id, _ = await api.event("wedding")
    guest = await api.guest()
    with answer_lost_after_commit("INSERT INTO comments"):
        response = await api.client.post(
            f"/api/photos/{photo_id}/comments",
            json={"authorName": "Ana", "content": "lovely"},
            headers={**bearer(guest), **headers},
        )
    return photo_id, guest, response


async def test_a_keyed_comment_whose_answer_was_lost_after_commit_is_answered_and_published_once(
    api: Api, provider: MemoryProvider
) -> None:
    _, _, response = await _comment_whose_answer_is_lost(api, {"Idempotency-Key": "lost-answer"})

    assert response.status_code == 201, response.text
    async with api.runtime.engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM comments")) == 1
        # the lost run's leases were taken over, not left to expire
        assert await conn.scalar(text("SELECT count(*) FROM channel_sequences WHERE publisher IS NOT NULL")) == 0
    published = sorted((event.channel, event.name) for call in provider.publish_calls for event in call)
    assert published == [("admin", "notification:new-comment"), ("event:wedding", "comment:added")]
    assert [event.data["comment"] for call in provider.publish_calls for event in call] == [response.json()] * 2


async def test_a_comment_without_a_key_whose_answer_was_lost_is_not_stored_twice(
    api: Api, provider: MemoryProvider
) -> None:
    photo_id, guest, response = await _comment_whose_answer_is_lost(api, {})

    # nothing tells a repeat that the lost run committed: the client is told, and decides
    assert response.status_code == 503, response.text
    async with api.runtime.engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM comments")) == 1
        # the leases the lost run took are freed for the channels' next writer or the relay, not held for 30 s by a
        # request that has ended
        assert await conn.scalar(text("SELECT count(*) FROM channel_sequences WHERE publisher IS NOT NULL")) == 0

    # the channels' next writer publishes what the lost run left along with its own
    after = await api.client.post(
        f"/api/photos/{photo_id}/comments", json={"authorName": "Bo", "content": "next"}, headers=bearer(guest)
    )
    assert after.status_code == 201, after.text
    published = [event for call in provider.publish_calls for event in call]
    contents = sorted(inner["data"]["comment"]["content"] for event in published for inner in event.data["events"])
    assert contents == ["lovely", "lovely", "next", "next"]  # on the event's channel and the admins'
    async with api.runtime.engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM outbox WHERE published_at IS NULL")) == 0

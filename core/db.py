"""The database engine, built for serverless: one pooled connection per sandbox, reused while warm.

A pooled connection may have been dropped while it sat idle (a frozen sandbox, a pooler's idle timeout, a restarted
server). Instead of pinging it before every use (a round trip on every request), the pool looks at its socket,
which costs no round trip: a server that ends a connection says so (PostgreSQL sends a FATAL message, then closes),
and an idle connection has nothing else to read, since nothing here LISTENs. Such a connection is replaced before
anything is sent on it. A connection lost without a word (a network path that silently went away) is only found by
the statement that uses it; ``core.unit_of_work`` retries that once where doing so cannot repeat a change."""

from __future__ import annotations

import re
import select
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from psycopg import OperationalError
from sqlalchemy import TextualSelect, column, event, text
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from core.settings import Settings


def create_engine(settings: Settings, *, pool_size: int | None = None) -> AsyncEngine:
    """The engine's connections are in autocommit: each statement commits by itself, and ``engine.begin()`` does
    not make a transaction; ``begin`` below does. Nearly everything here is one statement (a like, a comment, every
    read), and switching each checked-out connection to autocommit and back cost a fourteenth of a like's Python."""
    engine = create_async_engine(
        settings.require_database_url(),
        pool_size=pool_size or settings.db_pool_size,
        max_overflow=0,
        pool_recycle=300,
        isolation_level="AUTOCOMMIT",
        connect_args={
            # A statement is prepared on its second run on a connection, so one-off statements never are.
            "prepare_threshold": 1 if settings.db_prepared_statements else None,
            "connect_timeout": settings.db_connect_timeout,
        },
    )
    event.listen(engine.sync_engine, "checkout", _replace_if_closed_by_server)
    return engine


@asynccontextmanager
async def begin(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection in a transaction, at the server's default isolation level, committed at the end (rolled back
    on an exception)."""
    async with engine.connect() as conn:
        await in_transactions(conn)
        async with conn.begin():
            yield conn


async def in_transactions(conn: AsyncConnection) -> None:
    """Makes ``conn`` (autocommit, as the engine's are) run its ``begin()`` blocks as transactions, at the server's
    default level, until it goes back to the pool (which puts it back in autocommit)."""
    await conn.execution_options(isolation_level=conn.default_isolation_level)


def closed_by_server(dbapi_connection: Any) -> bool:
    """Whether an idle connection has something to read: the server's goodbye, or the end of the stream."""
    try:
        socket = dbapi_connection.driver_connection.pgconn.socket
    except OperationalError:  # libpq already knows it is gone
        return True
    # poll, not select: select() cannot watch a descriptor numbered 1,024 or above, which every connection of a
    # process holding thousands of sockets (a Socket.IO node) is.
    watcher = select.poll()
    watcher.register(socket, select.POLLIN)
    return bool(watcher.poll(0))


def _replace_if_closed_by_server(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    # The pool answers DisconnectionError by discarding this connection and checking out another (a new one).
    if closed_by_server(dbapi_connection):
        raise DisconnectionError("the server closed this pooled connection while it was idle")


def is_connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` is the loss of the connection (SQLAlchemy has invalidated it, and the pool will not reuse it)."""
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


_SPACE_AROUND_PARENTHESES_AND_COMMAS = re.compile(r"(?<=[(,])\s+|\s+(?=[),])")


# What compacting could change the meaning of: a comment (which would swallow what a newline ended), a dollar-quoted
# string, and whitespace inside a quoted literal or identifier (where it is data).
_COMMENT_OR_DOLLAR_QUOTE = re.compile(r"--|/\*|\$\$")
_QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")


def compact_sql(sql: str) -> str:
    """``sql`` with each run of whitespace made one space, and none just inside parentheses or around a comma:
    psycopg caches its conversion of a statement's placeholders only for statements up to 4 KB, and the like's is
    over that as written (measured at about 5% of a like's CPU). Refuses SQL that compacting could change (a
    comment, or whitespace inside quotes)."""
    found = _COMMENT_OR_DOLLAR_QUOTE.search(sql)
    spaced = [quoted for quoted in _QUOTED.findall(sql) if any(character.isspace() for character in quoted)]
    if found or spaced:
        raise ValueError(f"compacting would change this SQL at {found.group() if found else spaced[0]!r}")
    return _SPACE_AROUND_PARENTHESES_AND_COMMAS.sub("", " ".join(sql.split()))


def returning(sql: str, *columns: str) -> TextualSelect:
    """``sql``, compacted, as a statement answering rows with these columns: all of them, in the order the SQL
    answers them (SQLAlchemy maps them by position; tests/test_db.py checks each statement that declares them).
    Declared, they let SQLAlchemy map a result's columns once, when it compiles the statement, instead of from the
    cursor's description on every run: about 25 µs of a like, whose answer has 16 columns."""
    return text(compact_sql(sql)).columns(*(column(name) for name in columns))

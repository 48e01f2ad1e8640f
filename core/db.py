"""The database engine and sessions, built for serverless: one pooled connection per sandbox, reused while warm."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from core.errors import AppError, BadRequestError, UnavailableError
from core.settings import Settings


def create_engine(settings: Settings, *, pool_size: int | None = None) -> AsyncEngine:
    return create_async_engine(
        settings.require_database_url(),
        pool_size=pool_size or settings.db_pool_size,
        max_overflow=0,
        # A frozen sandbox may find its connection dropped by the server or a pooler; ping before use.
        pool_pre_ping=True,
        pool_recycle=300,
        connect_args={
            # Server-side prepared statements break behind PgBouncer/Neon/Supavisor in transaction mode.
            "prepare_threshold": None,
            "connect_timeout": settings.db_connect_timeout,
        },
    )


def database_error(exc: BaseException) -> AppError | None:
    """What a database failure means to the caller: unreachable or overloaded (503) or a value it refused (422).
    None for anything else, which is a bug in our SQL."""
    from psycopg import DataError, OperationalError

    if isinstance(exc, PoolTimeoutError) or (
        isinstance(exc, DBAPIError) and (exc.connection_invalidated or isinstance(exc.orig, OperationalError))
    ):
        return UnavailableError("database_unavailable", "The database is not reachable; try again shortly")
    if isinstance(exc, DBAPIError) and isinstance(exc.orig, DataError):
        # Values our validation let through but Postgres cannot store, such as NUL characters in text.
        reason = str(exc.orig).splitlines()[0]
        return BadRequestError("invalid_input", f"The database refused a value: {reason}")
    return None

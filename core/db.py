"""The database engine, built for serverless: one pooled connection per sandbox, reused while warm."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

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

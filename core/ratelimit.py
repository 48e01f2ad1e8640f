"""Fixed one-minute windows of actions per identity, counted in Postgres (a stateless function has no memory)."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from core.errors import ForbiddenError, RateLimitedError, UnauthorizedError

_HIT = text(
    """
    INSERT INTO rate_limits AS r (key, window_start, hits)
    VALUES (:key, date_trunc('minute', now()), 1)
    ON CONFLICT (key, window_start) DO UPDATE SET hits = r.hits + 1
    RETURNING hits, extract(epoch FROM (r.window_start + interval '1 minute' - now())) AS seconds_left
    """
)


async def count(conn: AsyncConnection, key: str) -> tuple[int, int]:
    """Counts one action for ``key``; returns the actions in this minute and the seconds until the next."""
    row = (await conn.execute(_HIT, {"key": key})).one()
    return int(row.hits), max(1, math.ceil(float(row.seconds_left)))


async def hit(conn: AsyncConnection, key: str, *, limit: int) -> None:
    """Counts one action for ``key`` and raises ``RateLimitedError`` past ``limit`` in the current minute."""
    hits, seconds_left = await count(conn, key)
    if hits > limit:
        raise RateLimitedError(seconds_left)


_PEEK = text(
    """
    SELECT hits, extract(epoch FROM (window_start + interval '1 minute' - now())) AS seconds_left
    FROM rate_limits WHERE key = :key AND window_start = date_trunc('minute', now())
    """
)


@asynccontextmanager
async def limit_failures(conn: AsyncConnection, key: str, *, limit: int) -> AsyncIterator[None]:
    """Refuses once ``key`` has failed ``limit`` times this minute, and counts the body's refusals (401, 403) only.

    For credentials checks (access codes, logins): a guessing attacker is slowed down, while a wedding's guests
    entering the right code at once from the venue's one address are never refused. ``conn`` must be autocommit,
    so that a failure is counted although the request fails."""
    row = (await conn.execute(_PEEK, {"key": key})).one_or_none()
    if row is not None and row.hits >= limit:
        raise RateLimitedError(max(1, math.ceil(float(row.seconds_left))))
    try:
        yield
    except (UnauthorizedError, ForbiddenError):
        await count(conn, key)
        raise

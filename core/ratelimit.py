"""Sliding one-minute limits on actions per identity, kept in Postgres (a stateless function has no memory).

Each identity has one row holding the times of its attempts in the last minute, at most ``limit + 1`` of them: enough
to tell that the limit is passed, and small (under 1 KB). A sliding window has no edge at which a fresh minute lets a
second burst through, and the row never grows however hard a client hammers."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from core.errors import ForbiddenError, RateLimitedError, UnauthorizedError

# A refused attempt is not recorded (its transaction rolls back; failed credentials are not checked once refused),
# so when one is refused the window holds ``limit`` recorded attempts, and there is room once the oldest leaves.
_SECONDS_UNTIL_OLDEST_LEAVES = "extract(epoch FROM {times}[1] + interval '1 minute' - now())"

_RECORD = text(
    f"""
    INSERT INTO rate_limits AS r (key, attempts) VALUES (:key, ARRAY[now()])
    ON CONFLICT (key) DO UPDATE SET attempts = ARRAY(
        SELECT t FROM (
            SELECT t FROM unnest(r.attempts || now()) AS t
            WHERE t > now() - interval '1 minute' ORDER BY t DESC LIMIT :limit + 1
        ) AS newest ORDER BY t
    )
    RETURNING cardinality(attempts) AS attempts, {_SECONDS_UNTIL_OLDEST_LEAVES.format(times="attempts")} AS seconds_left
    """
)

_PEEK = text(
    f"""
    SELECT cardinality(recent) AS attempts, {_SECONDS_UNTIL_OLDEST_LEAVES.format(times="recent")} AS seconds_left
    FROM (
        SELECT ARRAY(SELECT t FROM unnest(attempts) AS t WHERE t > now() - interval '1 minute' ORDER BY t) AS recent
        FROM rate_limits WHERE key = :key
    ) AS window_of_key
    """
)


_PRUNE = text("DELETE FROM rate_limits WHERE attempts[cardinality(attempts)] <= now() - interval '1 minute'")


async def prune(conn: AsyncConnection) -> None:
    """Deletes the rows of identities with no attempt in the last minute; the relay calls it on its schedule."""
    await conn.execute(_PRUNE)


def _refusal(seconds_left: float) -> RateLimitedError:
    return RateLimitedError(max(1, math.ceil(seconds_left)))


async def record(conn: AsyncConnection, key: str, *, limit: int) -> tuple[int, float]:
    """Records one attempt by ``key``; returns the attempts in the last minute (at most ``limit + 1``) and the seconds
    until the oldest of them leaves the window."""
    row = (await conn.execute(_RECORD, {"key": key, "limit": limit})).one()
    return int(row.attempts), float(row.seconds_left)


async def hit(conn: AsyncConnection, key: str, *, limit: int) -> None:
    """Records one attempt by ``key`` and raises ``RateLimitedError`` if it is more than ``limit`` in a minute."""
    attempts, seconds_left = await record(conn, key, limit=limit)
    if attempts > limit:
        raise _refusal(seconds_left)


@asynccontextmanager
async def limit_failures(conn: AsyncConnection, key: str, *, limit: int) -> AsyncIterator[None]:
    """Refuses once ``key`` has failed ``limit`` times in the last minute, and records the body's refusals (401, 403)
    only.

    For credentials checks (access codes, logins): a guessing attacker is slowed down, while a wedding's guests
    entering the right code at once from the venue's one address are never refused. ``conn`` must be autocommit,
    so that a failure is recorded although the request fails."""
    row = (await conn.execute(_PEEK, {"key": key})).one_or_none()
    if row is not None and row.attempts >= limit:
        raise _refusal(float(row.seconds_left))
    try:
        yield
    except (UnauthorizedError, ForbiddenError):
        await record(conn, key, limit=limit)
        raise

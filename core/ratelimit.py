"""Sliding-window limits kept in Postgres (a stateless function has no memory): actions per identity and per client
address, identities minted per address, credential checks and failures.

Each key has one row counting its admitted attempts within its window per second: the seconds in which attempts
were admitted, and how many in each. An attempt is admitted, and counted in its second, only while fewer than
``limit`` are in the window; the check and the count are one statement under the row's lock, so concurrent attempts
cannot all slip under the limit. A refused attempt writes nothing, so the row never grows however hard a client
hammers, and there is room again once the oldest admitted second leaves the window. A row lists at most one entry
per second of its window however high its limit (a venue's address makes up to 1,200 attempts a minute), so what an
attempt reads and writes under the lock stays small.

The window slides by whole seconds: an attempt counts from the start of its second for ``window_seconds``, so it
leaves the window up to a second before it would at full resolution, and a ``Retry-After`` is at most the window.
There is no edge at which a fresh minute lets a second burst through: at most ``limit`` attempts fall in any
``window_seconds - 1`` seconds."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import DateTime, String

from core.errors import ForbiddenError, RateLimitedError, UnauthorizedError
from core.settings import Settings

# The column is varchar(200); keys carry client input (a slug, an address), so longer ones are shortened with a hash
# of the whole rather than refused by the database (which would leave the attempt uncounted).
KEY_MAX_LENGTH = 200


@dataclass(frozen=True)
class Limit:
    """At most ``limit`` attempts by ``key`` in a window of ``window_seconds``, sliding by whole seconds."""

    key: str
    limit: int
    window_seconds: int = 60


@dataclass(frozen=True)
class _Outcome:
    key: str
    admitted: bool
    admitted_at: datetime
    seconds_left: float


def bounded_key(key: str) -> str:
    if len(key) <= KEY_MAX_LENGTH:
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{key[: KEY_MAX_LENGTH - len(digest) - 1]}#{digest}"


# Every key's row is locked in one order by every statement, so two that lock the same keys cannot deadlock. Of the
# row, what is still in the window is kept (``s``, ``c``: seconds and counts). An admitted attempt is counted in the
# second its statement began, or in the row's latest second where that one is later (``late``: the statement began
# earlier but got the lock later; null when nothing is kept), so the seconds stay in order and each is listed once.
# How long a refused attempt waits is counted from when it is answered (such a statement's now() is older).
_ADMIT_SQL = """
    INSERT INTO rate_limits AS r (key, seconds, counts, admitted_at, window_seconds)
    SELECT g.key, ARRAY[date_trunc('second', now())], ARRAY[1], now(), g.window_seconds
    FROM jsonb_to_recordset(CAST(:limits AS jsonb)) AS g(key text, window_seconds int) ORDER BY g.key
    ON CONFLICT (key) DO UPDATE SET window_seconds = excluded.window_seconds,
        (seconds, counts, admitted_at) = (
            SELECT CASE WHEN NOT admit OR late THEN s ELSE s || excluded.seconds END,
                CASE WHEN NOT admit THEN c WHEN late THEN c[1 : cardinality(c) - 1] || (c[cardinality(c)] + 1)
                    ELSE c || 1 END,
                CASE WHEN admit THEN now() ELSE r.admitted_at END
            FROM (
                SELECT coalesce(array_agg(b.t ORDER BY b.t), '{}') AS s,
                    coalesce(array_agg(b.n ORDER BY b.t), '{}') AS c,
                    max(b.t) >= excluded.seconds[1] AS late,
                    coalesce(sum(b.n), 0) < (
                        SELECT g.most FROM jsonb_to_recordset(CAST(:limits AS jsonb)) AS g(key text, most int)
                        WHERE g.key = r.key
                    ) AS admit
                FROM unnest(r.seconds, r.counts) AS b(t, n)
                WHERE b.t > now() - make_interval(secs => excluded.window_seconds) AND b.n > 0
            ) AS kept
        )
    RETURNING key, admitted_at = now() AS admitted, admitted_at,
        extract(epoch FROM seconds[1] - clock_timestamp()) + window_seconds AS seconds_left
"""
_ADMIT = text(_ADMIT_SQL)

# The attempt counted inside an action's own statement, saving the action a round trip of its own: CTEs to put in
# front of the statement's own, ending in ``admission``, one row that says whether every limit had room and, when
# not, how long until the tightest has. The statement makes its change only where ``admission.admitted`` (its
# parameters: ``admission_params``); the keys that had room count the attempt either way, as ``hit`` does.
ADMISSION_CTES = f"""
    limited AS ({_ADMIT_SQL}),
    admission AS (
        SELECT coalesce(bool_and(admitted), true) AS admitted,
               max(seconds_left) FILTER (WHERE NOT admitted) AS retry_after_seconds
        FROM limited
    )
"""


# Takes back one admitted attempt (the one made at :at) from each key: a credential check that turned out right. It
# was counted in :at's second or a later one (see _ADMIT_SQL); the first of those still counting one gives it back.
# Locks its rows in key order, as _ADMIT does: an UPDATE alone takes them in whatever order it finds them, and two
# statements taking the same rows in opposite orders deadlock (seen with a venue's guests unlocking at once).
_GIVE_BACK = text(
    """
    UPDATE rate_limits AS r SET counts = (
        SELECT array_agg(CASE WHEN b.i = taken.i THEN b.n - 1 ELSE b.n END ORDER BY b.i)
        FROM unnest(r.counts) WITH ORDINALITY AS b(n, i), (
            SELECT min(c.i) AS i FROM unnest(r.seconds, r.counts) WITH ORDINALITY AS c(second, n, i)
            WHERE c.second >= date_trunc('second', :at) AND c.n > 0
        ) AS taken
    )
    FROM (SELECT key FROM rate_limits WHERE key = ANY(:keys) ORDER BY key FOR UPDATE) AS locked
    WHERE r.key = locked.key
    """
).bindparams(bindparam("keys", type_=ARRAY(String())), bindparam("at", type_=DateTime(timezone=True)))

_PRUNE = text(
    "DELETE FROM rate_limits WHERE coalesce("
    "seconds[cardinality(seconds)] <= now() - make_interval(secs => window_seconds), true)"
)


async def prune(conn: AsyncConnection) -> None:
    """Deletes the rows of keys with no attempt within their window; the relay calls it on its schedule."""
    await conn.execute(_PRUNE)


def _refusal(seconds_left: float) -> RateLimitedError:
    return RateLimitedError(max(1, math.ceil(seconds_left)))


def admission_params(limits: Sequence[Limit]) -> dict[str, Any]:
    """The parameters of ``_ADMIT`` and of ``ADMISSION_CTES``: the limits as one JSON array, one limit per key. One
    text parameter, not three arrays: psycopg inspects an array's items to pick its type on every execution, and
    those three were a tenth of a like's Python in a profile of 200 concurrent likes."""
    by_key = {bounded_key(limit.key): limit for limit in limits}
    return {
        "limits": json.dumps(
            [{"key": key, "window_seconds": limit.window_seconds, "most": limit.limit} for key, limit in by_key.items()]
        )
    }


def refuse_unless_admitted(admitted: bool, retry_after_seconds: float | None) -> None:
    """Raises ``RateLimitedError`` for a statement whose ``admission`` row refused the attempt."""
    if not admitted:
        raise _refusal(retry_after_seconds or 1)


async def _admit(conn: AsyncConnection, limits: Sequence[Limit]) -> list[_Outcome]:
    rows = await conn.execute(_ADMIT, admission_params(limits))
    return [_Outcome(row.key, bool(row.admitted), row.admitted_at, float(row.seconds_left)) for row in rows]


async def _give_back(conn: AsyncConnection, outcomes: Sequence[_Outcome]) -> None:
    admitted = [outcome for outcome in outcomes if outcome.admitted]
    if admitted:
        await conn.execute(_GIVE_BACK, {"keys": [o.key for o in admitted], "at": admitted[0].admitted_at})


async def count(conn: AsyncConnection, limits: Sequence[Limit]) -> None:
    """Counts one attempt against every limit that has room, refusing nothing (for an attempt already refused for
    another reason)."""
    await _admit(conn, limits)


async def hit(conn: AsyncConnection, limits: Sequence[Limit]) -> None:
    """Counts one attempt against every limit, in one statement; raises ``RateLimitedError`` if any is used up.

    Inside a transaction a refusal rolls back what the statement admitted on the other keys; in autocommit they
    stay counted (the attempt was made)."""
    outcomes = await _admit(conn, limits)
    refused = [outcome.seconds_left for outcome in outcomes if not outcome.admitted]
    if refused:
        raise _refusal(max(refused))


@asynccontextmanager
async def limit_failures(
    conn: AsyncConnection, *, failures: Sequence[Limit], attempts: Sequence[Limit] = ()
) -> AsyncIterator[None]:
    """For credentials checks (access codes, logins): counts the body's refusals (401, 403) against ``failures``,
    and every check against ``attempts``; refuses without checking once any of them is used up.

    A failure is counted before the check runs and taken back if the check passes, so concurrent guesses cannot
    outrun the limit. While a failure limit is used up the right credential is refused too (429): answering it would
    tell a guesser which of its guesses is right. ``conn`` must be autocommit, so that a failure stays recorded
    although the request fails."""
    outcomes = await _admit(conn, [*failures, *attempts])
    refused = [outcome for outcome in outcomes if not outcome.admitted]
    if refused:
        await _give_back(conn, outcomes)
        raise _refusal(max(outcome.seconds_left for outcome in refused))
    failure_keys = {bounded_key(limit.key) for limit in failures}
    reserved = [outcome for outcome in outcomes if outcome.key in failure_keys]
    try:
        yield
    except (UnauthorizedError, ForbiddenError):
        raise
    except Exception:
        await _give_back(conn, reserved)
        raise
    await _give_back(conn, reserved)


# The limits this backend applies, in one place (README "Limits" gives the numbers and why a venue fits them).
HOUR = 3600


def action_limits(settings: Settings, *, identity: str | None, address: str | None) -> list[Limit]:
    """Likes, comments and moderation: per identity, and per client address, since identities are cheap to mint."""
    limits = []
    if identity:
        limits.append(Limit(identity, settings.rate_limit_per_minute))
    if address:
        limits.append(Limit(f"actions:{address}", settings.address_actions_per_minute))
    return limits


def guest_session_limit(settings: Settings, address: str) -> Limit:
    return Limit(f"guest-sessions:{address}", settings.guest_sessions_per_address_per_hour, HOUR)


def credential_check_limit(settings: Settings, address: str) -> Limit:
    """Every access code or password checked, right or wrong: each costs a scrypt (tens of ms of CPU)."""
    return Limit(f"credential-checks:{address}", settings.credential_checks_per_address_per_minute)


def access_code_failure_limits(settings: Settings, *, address: str, slug: str) -> list[Limit]:
    """Per address, and per event, so that guessers spread over many addresses are bounded too."""
    return [
        Limit(f"access-code:{address}", settings.rate_limit_per_minute),
        Limit(f"access-code-event:{slug}", settings.access_code_failures_per_event_per_hour, HOUR),
    ]


def admin_login_failure_limits(settings: Settings, *, address: str) -> list[Limit]:
    return [Limit(f"admin-login:{address}", settings.rate_limit_per_minute)]

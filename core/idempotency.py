"""Retry-safe mutations: a request repeated with the same idempotency key by the same identity gets the first
answer, and writes and publishes nothing new (the IETF ``Idempotency-Key`` header, or the ``X-Mutation-Id`` our
clients already send).

The key is looked up at the start of the action's transaction and stored with the answer at its end. Two copies
racing each other both find nothing at the start; the second one's insert waits on the first's uncommitted row and
then conflicts, so it rolls back everything it did and answers what the first stored.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from core.errors import InvalidInputError

# Kept long enough for any client's retries (a guest's phone coming back to the venue's network), then pruned.
RETENTION_HOURS = 24


class RepeatedRequestError(Exception):
    """Another copy of this request committed first; the caller rolls back and answers what it stored."""


def fingerprint(operation: str, **request: Any) -> str:
    """What the key promises to stand for: the operation and its input. A key reused for another request is refused
    rather than answered with an unrelated first answer."""
    canonical = json.dumps({"operation": operation, **request}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


_EARLIER = text("SELECT fingerprint, answer FROM idempotent_requests WHERE identity = :identity AND key = :key")
_REMEMBER = text(
    """
    INSERT INTO idempotent_requests (identity, key, fingerprint, answer)
    VALUES (:identity, :key, :fingerprint, CAST(:answer AS jsonb))
    ON CONFLICT DO NOTHING
    RETURNING 1
    """
)
_PRUNE = text(
    """
    DELETE FROM idempotent_requests WHERE ctid IN (
        SELECT ctid FROM idempotent_requests WHERE created_at < now() - make_interval(hours => :hours) LIMIT 10000
    )
    """
)


async def earlier_answer(conn: AsyncConnection, *, identity: str, key: str, fingerprint: str) -> dict[str, Any] | None:
    row = (await conn.execute(_EARLIER, {"identity": identity, "key": key})).one_or_none()
    if row is None:
        return None
    if row.fingerprint != fingerprint:
        raise InvalidInputError("idempotency_key_reused", "This idempotency key was used for another request")
    answer: dict[str, Any] = row.answer
    return answer


async def remember(conn: AsyncConnection, *, identity: str, key: str, fingerprint: str, answer: dict[str, Any]) -> None:
    """Stores the answer inside the action's transaction; raises ``RepeatedRequestError`` where a copy of the
    request committed first."""
    params = {"identity": identity, "key": key, "fingerprint": fingerprint, "answer": json.dumps(answer)}
    if (await conn.execute(_REMEMBER, params)).first() is None:
        raise RepeatedRequestError


async def prune(conn: AsyncConnection) -> int:
    result = await conn.execute(_PRUNE, {"hours": RETENTION_HOURS})
    return result.rowcount

"""Retry-safe mutations: a request repeated with the same idempotency key by the same identity gets the first
answer, and writes and publishes nothing new (the IETF ``Idempotency-Key`` header, or the ``X-Mutation-Id`` our
clients already send).

The key is looked up at the start of the action's transaction and stored with the answer at its end (a comment
does both in its one statement, ``core/services/comments.py``). Two copies racing each other both find nothing at
the start; the second one's insert waits on the first's uncommitted row and then conflicts, so it rolls back
everything it did and answers what the first stored.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from core.errors import InvalidInputError
from core.models import idempotent_request_table

# Kept long enough for any client's retries (a guest's phone coming back to the venue's network), then pruned.
RETENTION_HOURS = 24
_TABLE = idempotent_request_table.name


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


@dataclass(frozen=True)
class Key:
    """A request's idempotency key and the fingerprint of what it stands for."""

    key: str
    fingerprint: str


@dataclass(frozen=True)
class EarlierAnswer:
    """What the first request under a key answered (its JSON), for a repeat to answer again."""

    answer: dict[str, Any]


def key_for(given: str | None, operation: str, **request: Any) -> Key | None:
    """The key a request was sent with (None where it was sent with none), with the fingerprint of ``operation``
    on ``request``."""
    return Key(given, fingerprint(operation, **request)) if given is not None else None


def answer_under(key: Key, stored_fingerprint: str, stored_answer: dict[str, Any]) -> EarlierAnswer:
    """The answer stored under ``key``, where it was stored for the same request."""
    if stored_fingerprint != key.fingerprint:
        raise InvalidInputError("idempotency_key_reused", "This idempotency key was used for another request")
    return EarlierAnswer(stored_answer)


def is_repeated_request(exc: IntegrityError) -> bool:
    """Whether ``exc`` is a statement's insert of an answer failing on its key: a copy of the request stored first."""
    diag = getattr(exc.orig, "diag", None)
    return getattr(exc.orig, "sqlstate", None) == "23505" and getattr(diag, "table_name", None) == _TABLE


async def earlier_answer(conn: AsyncConnection, *, identity: str, key: Key) -> dict[str, Any] | None:
    row = (await conn.execute(_EARLIER, {"identity": identity, "key": key.key})).one_or_none()
    if row is None:
        return None
    return answer_under(key, row.fingerprint, row.answer).answer


async def remember(conn: AsyncConnection, *, identity: str, key: Key, answer: dict[str, Any]) -> None:
    """Stores the answer inside the action's transaction; raises ``RepeatedRequestError`` where a copy of the
    request committed first."""
    params = {"identity": identity, "key": key.key, "fingerprint": key.fingerprint, "answer": json.dumps(answer)}
    if (await conn.execute(_REMEMBER, params)).first() is None:
        raise RepeatedRequestError


async def prune(conn: AsyncConnection) -> int:
    result = await conn.execute(_PRUNE, {"hours": RETENTION_HOURS})
    return result.rowcount

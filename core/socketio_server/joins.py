"""What ``join:event`` may cost: bounds per socket, and one database lookup for many joins.

Limits per socket (a socket is one page; a venue's thousands of guests are thousands of sockets, each well inside):

- ``MAX_EVENT_ROOMS`` event rooms held at once (a gallery page follows one event; an admin's page a few);
- joins at ``JOIN_RATE_PER_SECOND`` with bursts of ``JOIN_BURST`` (a page joins once per connection, again after
  each reconnection, which is a new socket anyway); past it a join is refused ``rate_limited``;
- a socket refused ``REFUSALS_BEFORE_DISCONNECT`` joins past the rate, or events no client may emit, is
  disconnected: no page does that, and each refusal costs a log line and two packets back, so a flood is ended
  instead of answered.

The lookup: what a join decides (does the event exist, may this caller see it) depends only on the slug, whether
the caller is an admin, and whether its token carries the slug. That outcome, 404 and 403 included, is kept for
``LOOKUP_TTL_SECONDS``, and joins that ask for it while it is being looked up wait for that one lookup: 5,000
guests arriving at once cost one query, not 5,000 pool connections. Staleness is bounded by the TTL: an event
made protected a moment ago admits a public join for at most that long, as a join a moment earlier would have
been (rooms are not re-checked when an event changes); an event just created is unknown to it only if someone
asked for it before it existed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from core.auth import Principal
from core.errors import AppError

MAX_EVENT_ROOMS = 10
JOIN_BURST = 20
JOIN_RATE_PER_SECOND = 1.0
REFUSALS_BEFORE_DISCONNECT = 20
LOOKUP_TTL_SECONDS = 5.0
MAX_CACHED_LOOKUPS = 10_000


@dataclass
class SocketBudget:
    """A token bucket of joins for one socket, and how often it was refused."""

    tokens: float = JOIN_BURST
    updated: float = field(default_factory=time.monotonic)
    refusals: int = 0

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(JOIN_BURST, self.tokens + (now - self.updated) * JOIN_RATE_PER_SECOND)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        self.refused()
        return False

    def refused(self) -> None:
        self.refusals += 1

    @property
    def exhausted(self) -> bool:
        return self.refusals >= REFUSALS_BEFORE_DISCONNECT


Access = tuple[str, bool, bool]  # (slug, caller is an admin, caller's token carries the slug)
T = TypeVar("T")


def access_key(principal: Principal | None, slug: str) -> Access:
    return (slug, principal is not None and principal.is_admin, principal is not None and slug in principal.events)


class Lookups(Generic[T]):
    """Outcomes (a value or an ``AppError``) kept briefly per key, with one lookup at a time per key."""

    def __init__(self, *, ttl: float = LOOKUP_TTL_SECONDS, max_entries: int = MAX_CACHED_LOOKUPS) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._entries: dict[Access, tuple[float, asyncio.Task[T]]] = {}

    async def get(self, key: Access, lookup: Callable[[], Awaitable[T]]) -> T:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is None or entry[0] <= now:
            entry = (now + self._ttl, asyncio.ensure_future(lookup()))
            self._entries.pop(key, None)
            self._entries[key] = entry
            entry[1].add_done_callback(lambda task: self._forget_failure(key, task))
            while len(self._entries) > self._max_entries:
                del self._entries[next(iter(self._entries))]  # the oldest
        # Shielded: a joiner that goes away must not cancel the lookup the others wait for.
        return await asyncio.shield(entry[1])

    def _forget_failure(self, key: Access, task: asyncio.Task[T]) -> None:
        """An answer (the event, or 404/403) is kept; a failure (the database, say) is not: the next join retries."""
        if task.cancelled() or not isinstance(task.exception(), AppError | None):
            entry = self._entries.get(key)
            if entry is not None and entry[1] is task:
                del self._entries[key]

"""The transaction of one action: rate limit and change together with the messages it causes, then, after commit,
the publish of those messages on each channel whose publish lease the action took (docs/architecture.md). Reads get
an autocommit connection instead."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncConnection

from core import ratelimit
from core.errors import AppError, RateLimitedError
from core.messages import PendingMessage
from core.models import OutboxMessage
from core.outbox import publishing, store
from core.runtime import Runtime
from core.settings import Settings


@dataclass
class UnitOfWork:
    """A service's handle on the open transaction: the connection, and where its realtime messages go."""

    conn: AsyncConnection
    settings: Settings
    publisher: str = field(default_factory=publishing.new_publisher)
    enqueued: store.Enqueued = field(default_factory=store.Enqueued)

    async def emit(self, events: Sequence[PendingMessage]) -> list[OutboxMessage]:
        stored = await store.insert_messages(
            self.conn,
            events,
            publisher=self.publisher,
            lease_seconds=self.settings.outbox_lease_seconds,
            backlog_limit=self.settings.relay_batch_size,
        )
        self.enqueued.merge(stored)
        return stored.own


@asynccontextmanager
async def transaction(
    runtime: Runtime, *, rate_limit_key: str | None = None, client_address: str | None = None
) -> AsyncIterator[UnitOfWork]:
    """Runs the body in one transaction, counting it against ``rate_limit_key`` (the identity) and ``client_address``
    first; after commit, publishes what is pending on the channels whose lease it took (its own messages on the
    others are left to their lease's holder). A publish failure does not fail the action: its messages stay pending
    for the relay.

    A request refused with a 4xx still counts against the limit (it is the attempts that are limited, so guessing
    access codes or passwords is slowed too); nothing else of it is written.
    """
    settings = runtime.settings
    limits = ratelimit.action_limits(settings, identity=rate_limit_key, address=client_address)
    async with runtime.engine.connect() as conn:
        try:
            async with conn.begin():
                if limits:
                    await ratelimit.hit(conn, limits)
                unit = UnitOfWork(conn, settings)
                yield unit
        except AppError as exc:
            if limits and not isinstance(exc, RateLimitedError):
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await ratelimit.count(conn, limits)
            raise
        if unit.enqueued.turns:
            # A request publishes for others only as long as one publish may take; then it hands the lease off.
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await publishing.publish_turns(
                conn,
                runtime.provider,
                unit.publisher,
                list(unit.enqueued.turns.values()),
                settings,
                hand_off_after=settings.publish_timeout_seconds,
            )


@asynccontextmanager
async def read_only(runtime: Runtime) -> AsyncIterator[AsyncConnection]:
    """A connection for reads only: autocommit, so a read is one round trip with no BEGIN or COMMIT."""
    async with runtime.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn

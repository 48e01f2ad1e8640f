"""The work of one action: its attempt counted against the rate limits, then the change together with the messages
it causes (in one transaction, or in one statement, atomic by itself, that counts the attempt too), then, after
commit, the publish of those messages on each channel whose publish lease the action took (docs/architecture.md).
Reads get an autocommit connection instead."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import Executable

from core import ratelimit
from core.db import in_transactions, is_connection_lost
from core.messages import PendingMessage, StoredMessage
from core.outbox import publishing, store
from core.runtime import Runtime
from core.settings import Settings

log = logging.getLogger("hafi.outbox")


@dataclass
class UnitOfWork:
    """A service's handle on the action: the connection, and where its realtime messages go."""

    conn: AsyncConnection
    settings: Settings
    publisher: str = field(default_factory=publishing.new_publisher)
    enqueued: store.Enqueued = field(default_factory=store.Enqueued)
    # The limits of a ``single_statement`` action, whose one statement counts the attempt itself.
    limits: Sequence[ratelimit.Limit] = ()
    admission_checked: bool = False

    async def emit(self, events: Sequence[PendingMessage]) -> list[StoredMessage]:
        stored = await store.insert_messages(self.conn, events, **self._lease_terms())
        self.enqueued.merge(stored)
        return stored.own

    def insert_params(self) -> dict[str, object]:
        """The outbox insert's parameters, for a service whose own statement ends with it (``store.insert_sql``)."""
        return store.insert_params(**self._lease_terms())

    def _lease_terms(self) -> dict[str, Any]:
        """Who takes a channel's publish lease with this action's messages, for how long, and how many earlier
        pending events per channel it reads along."""
        return {
            "publisher": self.publisher,
            "lease_seconds": self.settings.outbox_lease_seconds,
            "backlog_limit": self.settings.relay_batch_size,
        }

    async def execute_action(
        self, statement: Executable, params: dict[str, Any], *, repeatable: bool
    ) -> Sequence[Row[Any]]:
        """Runs the one statement of a ``single_statement`` action, which begins with ``ratelimit.ADMISSION_CTES``
        (parameters added here) and answers at least one row carrying ``admission``'s columns; refuses the action
        (``RateLimitedError``) as that row says.

        A ``repeatable`` action is run once more, on a new connection, when the connection turns out to be lost (a
        pooled connection that died unseen, or one lost while the statement ran): setting a like's state is (had the
        first run committed, the repeat finds the state set and changes nothing more), and so is a comment under an
        idempotency key (the repeat finds the first run's answer). Where the first run did commit, it took the
        leases of its channels under this action's publisher: after a repeat the action publishes what is pending
        there too; an action that is not repeated frees them before it fails."""
        params = {**params, **ratelimit.admission_params(self.limits)}
        try:
            rows = (await self.conn.execute(statement, params)).all()
        except Exception as exc:
            if not is_connection_lost(exc):
                raise
            await _reconnect(self.conn)
            if not repeatable:
                await publishing.release_leases_of(self.conn, self.publisher)
                raise
            rows = (await self.conn.execute(statement, params)).all()
            await self._take_over_leases_of_the_lost_run()
        self.admission_checked = True
        ratelimit.refuse_unless_admitted(rows[0].admitted, rows[0].retry_after_seconds)
        return rows

    async def _take_over_leases_of_the_lost_run(self) -> None:
        held = await publishing.channels_held_by(self.conn, self.publisher)
        if held:
            turns = await publishing.claim_channels(self.conn, self.publisher, self.settings, only=held)
            self.enqueued.merge(store.Enqueued(turns={turn.channel: turn for turn in turns}))

    def stored(self, enqueued: store.Enqueued) -> None:
        """What a service's own statement wrote to the outbox, to be published after it like emitted messages."""
        self.enqueued.merge(enqueued)


# What a publish after the answer leaves of its lease for the bookkeeping after its first provider call.
_LEASE_MARGIN_SECONDS = 2.0


async def _reconnect(conn: AsyncConnection) -> None:
    """Replaces a lost connection's DBAPI connection with a new one from the pool, in autocommit (the engine's
    level) as the lost one was."""
    await conn.rollback()


async def _count_attempt(conn: AsyncConnection, limits: Sequence[ratelimit.Limit]) -> None:
    """The action's first statement, on its own (autocommit): no limit row stays locked while the action runs.

    It is the one statement retried, once, when it finds the pooled connection lost: it changes nothing but the
    count of attempts, so at worst (the server ran it and the answer was lost) one attempt counts twice."""
    try:
        await ratelimit.hit(conn, limits)
    except Exception as exc:
        if not is_connection_lost(exc):
            raise
        await _reconnect(conn)
        await ratelimit.hit(conn, limits)


@asynccontextmanager
async def _action(
    runtime: Runtime, rate_limit_key: str | None, client_address: str | None, *, in_transaction: bool
) -> AsyncIterator[UnitOfWork]:
    settings = runtime.settings
    limits = ratelimit.action_limits(settings, identity=rate_limit_key, address=client_address)
    async with runtime.engine.connect() as conn:  # in autocommit (core.db.create_engine)
        if in_transaction and limits:
            await _count_attempt(conn, limits)
        unit = UnitOfWork(conn, settings, limits=() if in_transaction else limits)
        if in_transaction:
            await conn.commit()  # nothing to commit (autocommit); it lets the isolation level change
            await in_transactions(conn)
            async with conn.begin():
                yield unit
            await conn.execution_options(isolation_level="AUTOCOMMIT")
        else:
            yield unit
            if not unit.admission_checked:
                raise RuntimeError("a single-statement action must run its statement with UnitOfWork.execute_action")
        if unit.enqueued.turns:
            turns = list(unit.enqueued.turns.values())
            if runtime.publishes_after_answer:
                runtime.after_answer(_publish_on_a_connection_of_its_own(runtime, unit.publisher, turns))
            else:
                await _publish(conn, runtime, unit.publisher, turns)


async def _publish(conn: AsyncConnection, runtime: Runtime, publisher: str, turns: list[store.ChannelTurn]) -> None:
    # A request publishes for others only as long as one publish may take; then it hands the lease off.
    settings = runtime.settings
    await publishing.publish_turns(
        conn, runtime.provider, publisher, turns, settings, hand_off_after=settings.publish_timeout_seconds
    )


async def _publish_on_a_connection_of_its_own(runtime: Runtime, publisher: str, turns: list[store.ChannelTurn]) -> None:
    """The publish of an action that has answered: the action's connection went back to the pool with the answer.

    The leases were taken by the action's statement, for ``OUTBOX_LEASE_SECONDS``, and the first publish renews them
    only once it is over (up to ``PUBLISH_TIMEOUT_SECONDS``). A connection that comes later than the lease leaves
    room for is not used to publish: the lease might run out mid-publish and another publisher send the same events
    again. The leases are given up instead, for the channel's next writer (which takes what is pending along) or
    the relay."""
    settings = runtime.settings
    loop = asyncio.get_running_loop()
    latest = loop.time() + settings.outbox_lease_seconds - settings.publish_timeout_seconds - _LEASE_MARGIN_SECONDS
    async with runtime.engine.connect() as conn:
        if loop.time() > latest:
            await publishing.release_leases_of(conn, publisher)
            log.warning("publish left to the next writer or the relay: no connection within the lease")
            return
        await _publish(conn, runtime, publisher, turns)


@asynccontextmanager
async def transaction(
    runtime: Runtime, *, rate_limit_key: str | None = None, client_address: str | None = None
) -> AsyncIterator[UnitOfWork]:
    """Counts the attempt against ``rate_limit_key`` (the identity) and ``client_address``, then runs the body in
    one transaction; after commit, publishes what is pending on the channels whose lease it took (its own messages
    on the others are left to their lease's holder). A publish failure does not fail the action: its messages stay
    pending for the relay.

    The attempt is counted first and on its own: a request refused with a 4xx still counts against the limit (it is
    the attempts that are limited, so guessing access codes or passwords is slowed too); nothing else of it is
    written."""
    async with _action(runtime, rate_limit_key, client_address, in_transaction=True) as unit:
        yield unit


@asynccontextmanager
async def single_statement(
    runtime: Runtime, *, rate_limit_key: str | None = None, client_address: str | None = None
) -> AsyncIterator[UnitOfWork]:
    """As ``transaction``, for a body that makes its change, outbox rows included, in one statement run with
    ``UnitOfWork.execute_action``: autocommit, so the statement is atomic by itself, and counting the attempt
    itself, so the whole action is one round trip (and, after a publish, the mark)."""
    async with _action(runtime, rate_limit_key, client_address, in_transaction=False) as unit:
        yield unit


@asynccontextmanager
async def read_only(runtime: Runtime) -> AsyncIterator[AsyncConnection]:
    """A connection for reads only: autocommit (the engine's), so a read is one round trip with no BEGIN or
    COMMIT."""
    async with runtime.engine.connect() as conn:
        yield conn

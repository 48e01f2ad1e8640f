"""Publishing a channel's pending events while holding its lease, in groups, and the bookkeeping of each attempt.

**One publish in flight per channel.** Each channel's row in ``channel_sequences`` carries its publish lease
(``publisher``, ``publisher_until``). The statement that stores a writer's events (core.outbox.store) takes the
lease when it is free or expired; a writer that took it publishes after commit everything pending on the channel,
as one provider message (a ``group`` when there are several events, core.messages); a writer that did not leaves
its events to the holder. After each publish the holder, in one statement that also marks the events published,
either releases the lease (nothing newer committed) or keeps it and reads the next pending events, which it
publishes as the next group no sooner than the channel's ceiling (``CHANNEL_PUBLISH_CEILING_PER_SECOND``,
``next_publish_at``) allows. Both statements update the same row, so a writer whose events the holder cannot see
yet holds that row locked: the holder's statement waits for the writer's commit and then sees ``last_seq`` moved
on, and keeps the lease; no writer is left unpublished by a release it raced with.

A request publishes for others for a bounded time (its publish timeout): then it releases the lease, gives a
writer one ceiling interval to take it, and takes it back itself if nobody did (at most twice); what it still
leaves is the relay's, which takes a channel's lease like anyone else (free or expired: a holder that died) and
respects the ceiling.

Two kinds of failure are kept apart:

- A **rejection** (bad key, malformed message) is about the message: that row is retried with a growing backoff and
  parked after ``OUTBOX_MAX_ATTEMPTS``. The provider answered, so it is not failing.
- A **transient failure** (unreachable, 5xx, timeout) is about the provider: it is recorded once per provider in
  ``provider_health`` and the rows stay due. While the provider is failing, one publisher at a time probes it:
  taking the probe is an atomic ``UPDATE … WHERE next_probe_at <= now()`` whose winner publishes (a request its own
  messages, the relay its oldest batch) and everyone else leaves their messages to the relay without calling the
  provider. Probes follow each other after 1, 2, 4, 8, then every 10 s: short enough that ``relay --loop``
  delivers a backlog within seconds of the provider's return and the scheduled relay (every minute) at its next
  run, and one request per 10 s is nothing a recovering provider notices. The first success clears the failure and
  the relay drains the backlog at once.

A healthy publish pays no extra round trip: the provider's health is written in the same statement as the rows'
outcome, and a process asks Postgres whether it may publish only after it saw the provider fail (a process that
last saw it healthy calls it once before it learns of an outage, as a freshly started one does).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from core import metrics
from core.messages import StoredMessage, group_message, next_group
from core.outbox.store import PENDING_DUE, ChannelTurn, row_to_message
from core.realtime.base import RealtimeError, RealtimeProvider
from core.settings import Settings

log = logging.getLogger("hafi.outbox")

_MAX_BACKOFF_SECONDS = 300
PROBE_BACKOFF_CAP_SECONDS = 10
# A probe's lease outlives its publish attempt (cut off by the publish timeout) and the bookkeeping after it, so a
# publisher that dies while probing delays the next probe by this much at most.
_PROBE_BOOKKEEPING_SECONDS = 5
_ERROR_TEXT_LIMIT = 1000
# How often a request that handed its channels' leases off takes them back because no writer took them.
HAND_OFF_RETAKES = 2

# Processes whose last word from Postgres or from the provider was that the provider is failing; only they ask
# Postgres before publishing. A hint, never the decision: the decision is the probe lease in ``provider_health``.
_seen_failing: weakref.WeakSet[RealtimeProvider] = weakref.WeakSet()

# The provider answered: whatever failure was recorded is over. Cheap on the hot path: the row is written only when
# the provider was failing or its last success is more than 10 s old, so busy likes do not queue on one row.
_ANSWERED = """
    answered AS (
        UPDATE provider_health SET consecutive_failures = 0, failing_since = NULL, next_probe_at = NULL,
            last_success_at = CASE WHEN :success THEN now() ELSE last_success_at END
        WHERE provider = :provider AND :answered
            AND (failing_since IS NOT NULL OR last_success_at IS NULL OR last_success_at < now() - interval '10 s')
    )
"""
# A publisher gives up the leases it holds (after a failure, or when the provider may not be called).
_RELEASED = """
    released AS (
        UPDATE channel_sequences SET publisher = NULL, publisher_until = NULL
        WHERE channel = ANY(CAST(:channels AS text[])) AND publisher = :publisher
    )
"""

# Hot-path statements are built once: constructing a SQLAlchemy statement per request costs more than sending it.
_MARK_PUBLISHED = text(
    f"""
    WITH {_ANSWERED}
    UPDATE outbox SET published_at = now(), attempts = attempts + 1, last_error = NULL
    WHERE id = ANY(CAST(:ids AS bigint[])) AND published_at IS NULL
    """
)
_MARK_REJECTED = text(
    f"""
    WITH {_ANSWERED}, {_RELEASED}
    UPDATE outbox SET attempts = attempts + 1, last_error = :error,
        next_attempt_at = now() + make_interval(secs => :backoff),
        parked_at = CASE WHEN :park THEN now() END
    WHERE id = ANY(CAST(:ids AS bigint[]))
    """
)
# The rows stay due, without an attempt counted against parking: the provider's backoff decides when they go.
_MARK_UNREACHABLE = text(
    f"""
    WITH failing AS (
        INSERT INTO provider_health AS h
            (provider, consecutive_failures, failing_since, next_probe_at, last_error, last_failure_at)
        VALUES (:provider, 1, now(), now() + make_interval(secs => 1), :error, now())
        ON CONFLICT (provider) DO UPDATE SET
            consecutive_failures = h.consecutive_failures + 1,
            failing_since = coalesce(h.failing_since, now()),
            next_probe_at = now() + make_interval(secs => least(power(2, least(h.consecutive_failures, 10)), :cap)),
            last_error = excluded.last_error,
            last_failure_at = now()
    ), {_RELEASED}
    UPDATE outbox SET last_error = :error, next_attempt_at = now()
    WHERE id = ANY(CAST(:ids AS bigint[])) AND published_at IS NULL
    """
)
# May this publisher call the provider? Yes when it is not failing, or when this publisher takes its due probe.
# Otherwise the given rows (a request's own) are handed to the relay at once, and their channels' leases with them.
_MAY_PUBLISH = text(
    """
    WITH health AS (SELECT failing_since FROM provider_health WHERE provider = :provider),
    probe AS (
        UPDATE provider_health SET next_probe_at = now() + make_interval(secs => :probe_lease)
        WHERE provider = :provider AND failing_since IS NOT NULL AND next_probe_at <= now()
        RETURNING provider
    ),
    verdict AS (
        SELECT NOT EXISTS (SELECT FROM health WHERE failing_since IS NOT NULL) OR EXISTS (SELECT FROM probe) AS may
    ),
    held AS (
        UPDATE outbox SET next_attempt_at = now(), last_error = :held
        WHERE id = ANY(CAST(:ids AS bigint[])) AND published_at IS NULL AND NOT (SELECT may FROM verdict)
    ),
    released AS (
        UPDATE channel_sequences SET publisher = NULL, publisher_until = NULL
        WHERE channel = ANY(CAST(:channels AS text[])) AND publisher = :publisher AND NOT (SELECT may FROM verdict)
    )
    SELECT may FROM verdict
    """
)

# Whether a channel has events its holder has not dealt with: some committed while this statement waited for the
# row (a writer held it: ``last_seq`` moved past what this statement's snapshot shows, and those events are not
# visible to it yet), or some visible, pending and due after the seq the holder got to.
_LEFT = f"""(
    cs.last_seq > (SELECT s.last_seq FROM channel_sequences s WHERE s.channel = cs.channel)
    OR EXISTS (SELECT FROM outbox o WHERE o.channel = cs.channel AND o.seq > t.through AND {PENDING_DUE})
)"""
# After a publish (or to read what a freshly taken lease covers), in one statement: mark the published events,
# start the ceiling's interval on the channels just published, and for each channel either release the lease
# (nothing left, or ``keep`` is false: handing off) or keep it and read the next pending events.
_CONTINUE = text(
    f"""
    WITH {_ANSWERED},
    marked AS (
        UPDATE outbox SET published_at = now(), attempts = attempts + 1, last_error = NULL
        WHERE id = ANY(CAST(:ids AS bigint[])) AND published_at IS NULL
    ),
    turns AS (
        SELECT * FROM unnest(CAST(:channels AS text[]), CAST(:through AS bigint[]), CAST(:published AS boolean[]))
            AS t(channel, through, published)
    ),
    lease AS (
        UPDATE channel_sequences cs SET
            publisher = CASE WHEN :keep AND {_LEFT} THEN cs.publisher END,
            publisher_until = CASE WHEN :keep AND {_LEFT} THEN now() + make_interval(secs => :lease) END,
            published_seq = CASE WHEN t.published THEN greatest(cs.published_seq, t.through) ELSE cs.published_seq END,
            next_publish_at = CASE WHEN t.published THEN clock_timestamp() + make_interval(secs => :spacing)
                                   ELSE cs.next_publish_at END
        FROM turns t
        WHERE cs.channel = t.channel AND cs.publisher = :publisher
        RETURNING cs.channel, t.through, cs.publisher IS NOT NULL AS kept, {_LEFT} AS pending_left,
            greatest(extract(epoch FROM cs.next_publish_at - clock_timestamp()), 0)::float8 AS wait_seconds
    )
    SELECT l.channel, l.kept, l.pending_left, l.wait_seconds,
           o.id, o.seq, o.event, o.payload, o.created_at, o.attempts
    FROM lease l LEFT JOIN LATERAL (
        SELECT * FROM outbox o
        WHERE l.kept AND o.channel = l.channel AND o.seq > l.through AND {PENDING_DUE}
        ORDER BY o.seq LIMIT :limit
    ) o ON true
    ORDER BY l.channel, o.seq
    """
)
# Takes the lease of channels that have due pending events and whose lease is free or expired (its holder died),
# skipping any a writer holds locked (that writer takes the lease itself). Their events are read by the holder's
# first ``_CONTINUE``, whose snapshot comes after this claim: this one's may predate a holder's last release.
_CLAIM = text(
    f"""
    WITH due AS (
        SELECT DISTINCT o.channel FROM outbox o
        WHERE {PENDING_DUE} AND (CAST(:only AS text[]) IS NULL OR o.channel = ANY(CAST(:only AS text[])))
    ),
    free AS (
        SELECT cs.channel FROM channel_sequences cs
        WHERE cs.channel IN (SELECT channel FROM due)
            AND (cs.publisher IS NULL OR cs.publisher_until <= statement_timestamp() OR cs.publisher = :publisher)
        ORDER BY cs.channel
        LIMIT :channel_limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE channel_sequences cs SET publisher = :publisher,
        publisher_until = statement_timestamp() + make_interval(secs => :lease)
    FROM free WHERE cs.channel = free.channel
    RETURNING cs.channel
    """
)


def longest_publishing_seconds(settings: Settings) -> float:
    """How long a request may go on publishing for others (``publish_turns`` with ``hand_off_after`` set to the
    publish timeout): its turn and each retake, each up to one publish timeout past its deadline."""
    spacing = 1 / settings.channel_publish_ceiling_per_second
    return (1 + HAND_OFF_RETAKES) * (2 * settings.publish_timeout_seconds + spacing) + 1


def _backoff_seconds(attempts: int) -> int:
    return int(min(2 ** max(attempts - 1, 0), _MAX_BACKOFF_SECONDS))


def _messages_allowed(now: float, last_send: float | None, settings: Settings) -> int:
    """How many messages each channel may get in this provider call: one, or, when the previous call of this
    publisher was longer ago than one interval of the ceiling (a busy process, a slow provider), as many intervals
    as have passed, so a channel's throughput does not fall to one group per round trip. Never more than a quarter
    of a second's worth at once, so no second holds more than 1.25 times the ceiling."""
    if last_send is None:
        return 1
    per_second = settings.channel_publish_ceiling_per_second
    return max(1, min(int((now - last_send) * per_second), max(1, per_second // 4)))


def _next_groups(rows: Sequence[StoredMessage], count: int) -> list[list[StoredMessage]]:
    """Up to ``count`` groups (``next_group``) from the front of one channel's pending rows, contiguous in seq."""
    run: list[list[StoredMessage]] = []
    remaining = list(rows)
    while remaining and len(run) < count:
        group = next_group(remaining)
        if run and group[0].seq != run[-1][-1].seq + 1:
            break
        run.append(group)
        remaining = remaining[len(group) :]
    return run


def new_publisher() -> str:
    """A publisher's token in the channels' leases: one per request or relay run."""
    return secrets.token_hex(12)


@dataclass
class PublishOutcome:
    published: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    parked: list[int] = field(default_factory=list)
    # Not sent: the provider is failing and another publisher holds its probe; the relay sends them.
    held: list[int] = field(default_factory=list)
    error: str | None = None
    # Provider calls made (each carrying one message per channel published).
    calls: int = 0
    # Provider messages sent: one per group.
    messages: int = 0

    def add(self, other: PublishOutcome) -> None:
        self.published += other.published
        self.failed += other.failed
        self.parked += other.parked
        self.held += other.held
        self.error = other.error or self.error
        self.calls += other.calls
        self.messages += other.messages


async def may_publish(
    conn: AsyncConnection,
    provider: RealtimeProvider,
    settings: Settings,
    *,
    holding: Sequence[int] = (),
    publisher: str = "",
    channels: Sequence[str] = (),
) -> bool:
    """Whether this publisher may call the provider now: it is healthy, or this call took its due probe.

    When it may not, the rows ``holding`` are left due for the relay and the leases of ``channels`` are released.
    One autocommit statement.
    """
    result = await conn.execute(
        _MAY_PUBLISH,
        {
            "provider": provider.name,
            "probe_lease": settings.publish_timeout_seconds + _PROBE_BOOKKEEPING_SECONDS,
            "ids": list(holding),
            "held": f"{provider.name}: held while the provider is failing",
            "channels": list(channels),
            "publisher": publisher,
        },
    )
    may = bool(result.scalar_one())
    # Only a success clears what this process saw: taking the probe does not, or the requests running beside it in
    # this process (an API served by uvicorn, a Socket.IO node) would call the provider while the probe is out.
    if not may:
        _seen_failing.add(provider)
    return may


_HELD_BY = text("SELECT channel FROM channel_sequences WHERE publisher = :publisher ORDER BY channel")
_RELEASE_ALL_OF = text(
    "UPDATE channel_sequences SET publisher = NULL, publisher_until = NULL WHERE publisher = :publisher"
)


async def channels_held_by(conn: AsyncConnection, publisher: str) -> list[str]:
    return list((await conn.scalars(_HELD_BY, {"publisher": publisher})).all())


async def release_leases_of(conn: AsyncConnection, publisher: str) -> None:
    """Frees every lease ``publisher`` holds, for each channel's next writer (which reads its pending events along)
    or the relay."""
    await conn.execute(_RELEASE_ALL_OF, {"publisher": publisher})


async def claim_channels(
    conn: AsyncConnection,
    publisher: str,
    settings: Settings,
    *,
    only: Sequence[str] | None = None,
    channel_limit: int | None = None,
) -> list[ChannelTurn]:
    """Takes the lease of channels with due pending events whose lease is free, expired or already ``publisher``'s
    (of ``only``, where given). Their events are read by the first round of ``publish_turns``."""
    result = await conn.execute(
        _CLAIM,
        {
            "publisher": publisher,
            "lease": settings.outbox_lease_seconds,
            "only": list(only) if only is not None else None,
            "channel_limit": channel_limit or settings.relay_batch_size,
        },
    )
    return [ChannelTurn(row.channel) for row in result]


async def publish_turns(
    conn: AsyncConnection,
    provider: RealtimeProvider,
    publisher: str,
    turns: Sequence[ChannelTurn],
    settings: Settings,
    *,
    cleared: bool = False,
    hand_off_after: float | None = None,
    max_calls: int | None = None,
) -> PublishOutcome:
    """Publishes, while ``publisher`` holds their leases, the pending events of ``turns``' channels: one group per
    channel per provider call, each channel no more often than its ceiling, until nothing is left, the leases are
    handed off (after ``hand_off_after`` seconds, see the module's docstring) or ``max_calls`` calls were made;
    every lease is released by then. ``cleared``: the caller already asked ``may_publish``.

    ``conn`` must not be inside a transaction: each step is one autocommit statement. A failure never raises.
    """
    outcome = PublishOutcome()
    loop = asyncio.get_running_loop()
    spacing = 1 / settings.channel_publish_ceiling_per_second
    deadline = loop.time() + hand_off_after if hand_off_after is not None else None
    retakes = HAND_OFF_RETAKES if hand_off_after is not None else 0
    current = {turn.channel: turn for turn in turns}
    last_send: float | None = None
    while current:
        ready = [turn for turn in current.values() if turn.rows]
        wait = max((turn.wait_seconds for turn in ready), default=0.0)
        if wait > 0:
            await asyncio.sleep(wait)
        allowed = _messages_allowed(loop.time(), last_send, settings)
        groups = {turn.channel: _next_groups(turn.rows, allowed) for turn in ready}
        published: list[int] = []
        started = time.perf_counter()
        if groups:
            last_send = loop.time()
            ids = [row.id for run in groups.values() for group in run for row in group]
            if not cleared:
                cleared = True
                known = [row.id for turn in ready for row in turn.rows]
                if provider in _seen_failing and not await may_publish(
                    conn, provider, settings, holding=known, publisher=publisher, channels=list(current)
                ):
                    metrics.incr("events_held", len(known))
                    log.info("publish held", extra={"provider": provider.name, "event_ids": known, "outcome": "held"})
                    outcome.held += known
                    return outcome
            if not await _send(conn, provider, publisher, list(current), groups, settings, outcome):
                return outcome
            published = ids
        out_of_time = (deadline is not None and loop.time() >= deadline) or (
            max_calls is not None and outcome.calls >= max_calls
        )
        for channel, run in groups.items():
            current[channel].through = max(current[channel].through, run[-1][-1].seq)
        result = await conn.execute(
            _CONTINUE,
            {
                "provider": provider.name,
                "answered": bool(published),
                "success": True,
                "ids": published,
                "publisher": publisher,
                "channels": list(current),
                "through": [turn.through for turn in current.values()],
                "published": [channel in groups for channel in current],
                "keep": not out_of_time,
                "lease": settings.outbox_lease_seconds,
                "spacing": max(spacing - (time.perf_counter() - started), 0.0),
                "limit": settings.relay_batch_size,
            },
        )
        following: dict[str, ChannelTurn] = {}
        left: list[str] = []
        for row in result:
            if not row.kept:
                if row.pending_left:
                    left.append(row.channel)
                continue
            through = current[row.channel].through
            turn = following.setdefault(
                row.channel, ChannelTurn(row.channel, wait_seconds=row.wait_seconds, through=through)
            )
            if row.id is not None:
                turn.rows.append(row_to_message(row))
        current = following
        if out_of_time and left and retakes and deadline is not None:
            # Handed off: a writer that comes within one interval takes the lease (and what is pending) itself.
            retakes -= 1
            await asyncio.sleep(spacing)
            current = {turn.channel: turn for turn in await claim_channels(conn, publisher, settings, only=left)}
            deadline = loop.time() + (hand_off_after or 0)
    return outcome


async def _send(
    conn: AsyncConnection,
    provider: RealtimeProvider,
    publisher: str,
    holding: list[str],
    runs: dict[str, list[list[StoredMessage]]],
    settings: Settings,
    outcome: PublishOutcome,
) -> bool:
    """One provider call with one message per group (each channel's in seq order). On a failure records it,
    releases the leases held and returns False; the bookkeeping of a success is the caller's (it rides the next
    ``_CONTINUE``)."""
    groups = [group for run in runs.values() for group in run]
    rows = [row for group in groups for row in group]
    messages = [group_message(group) for group in groups]
    by_message = {message.id: group for message, group in zip(messages, groups, strict=True)}
    started = time.perf_counter()
    outcome.calls += 1
    try:
        async with asyncio.timeout(settings.publish_timeout_seconds):
            await provider.publish(messages)
    except (RealtimeError, TimeoutError) as exc:
        transient = exc.transient if isinstance(exc, RealtimeError) else True
        delivered_messages = exc.delivered if isinstance(exc, RealtimeError) else frozenset()
        delivered = [row for message_id in delivered_messages for row in by_message.get(message_id, [])]
        error = str(exc) or f"publish timed out after {settings.publish_timeout_seconds} s"
        outcome.error = error
        if delivered:
            outcome.published += [row.id for row in delivered]
            outcome.messages += len(delivered_messages)
            await conn.execute(
                _MARK_PUBLISHED,
                {"ids": [row.id for row in delivered], "provider": provider.name, "success": True, "answered": True},
            )
            _log_publish(provider, delivered, started, "published", None)
        delivered_ids = {row.id for row in delivered}
        undelivered = [row for row in rows if row.id not in delivered_ids]
        if transient:
            await _record_unreachable(conn, provider, publisher, holding, undelivered, outcome)
        else:
            await _record_rejection(conn, provider, publisher, holding, undelivered, outcome, settings)
        _log_publish(provider, undelivered, started, "failed" if transient else "rejected", error)
        return False
    _seen_failing.discard(provider)
    outcome.published += [row.id for row in rows]
    outcome.messages += len(groups)
    _log_publish(provider, rows, started, "published", None)
    return True


async def _record_unreachable(
    conn: AsyncConnection,
    provider: RealtimeProvider,
    publisher: str,
    holding: list[str],
    rows: Sequence[StoredMessage],
    outcome: PublishOutcome,
) -> None:
    _seen_failing.add(provider)
    failed = [row.id for row in rows]
    outcome.failed += failed
    await conn.execute(
        _MARK_UNREACHABLE,
        {
            "ids": failed,
            "provider": provider.name,
            "error": (outcome.error or "")[:_ERROR_TEXT_LIMIT],
            "cap": PROBE_BACKOFF_CAP_SECONDS,
            "channels": holding,
            "publisher": publisher,
        },
    )


async def _record_rejection(
    conn: AsyncConnection,
    provider: RealtimeProvider,
    publisher: str,
    holding: list[str],
    rows: Sequence[StoredMessage],
    outcome: PublishOutcome,
    settings: Settings,
) -> None:
    _seen_failing.discard(provider)
    ids = [row.id for row in rows]
    attempts = max((row.attempts for row in rows), default=0) + 1
    reason = f"rejected: {(outcome.error or '')[:_ERROR_TEXT_LIMIT]}"
    park = attempts >= settings.outbox_max_attempts
    if park:
        outcome.parked += ids
        log.error("outbox events parked after %d attempts", attempts, extra={"event_ids": ids, "error": reason})
    else:
        outcome.failed += ids
    await conn.execute(
        _MARK_REJECTED,
        {
            "ids": ids,
            "error": reason,
            "backoff": _backoff_seconds(attempts),
            "park": park,
            "provider": provider.name,
            "success": False,
            "answered": True,
            "channels": holding,
            "publisher": publisher,
        },
    )


def _log_publish(
    provider: RealtimeProvider, rows: Sequence[StoredMessage], started: float, outcome: str, error: str | None
) -> None:
    metrics.incr(f"events_{outcome}", len(rows))
    level = logging.INFO if outcome == "published" else logging.WARNING if outcome == "failed" else logging.ERROR
    log.log(
        level,
        "publish",
        extra={
            "provider": provider.name,
            "events": len(rows),
            "event_ids": [row.id for row in rows],
            "outcome": outcome,
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            **({"error": error} if error else {}),
        },
    )

"""Group publishing through the real path: concurrent HTTP likes into the app, a real Postgres, and a provider that
records every publish as it happens (how many are in flight per channel, when each starts)."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from core import messages
from core.db import in_transactions
from core.messages import GROUP, StoredMessage
from core.models import channel_sequence_table, outbox_table
from core.outbox import publishing, relay, store
from core.realtime.base import RealtimeMessage
from core.realtime.memory import MemoryProvider
from core.realtime.wire import MAX_PAYLOAD_BYTES, encode
from core.settings import Settings
from tests.support.api import Api, api_with, bearer
from tests.support.environment import make_settings
from tests.support.groups import unpacked
from tests.support.outbox import hold_channel_lease

CHANNEL = "event:wedding"


class WatchingProvider(MemoryProvider):
    """Records, per channel, when each publish starts and how many are in flight at once; each publish takes
    ``pause`` seconds, so that likes keep committing while one is in flight."""

    def __init__(self, pause: float = 0.01) -> None:
        super().__init__()
        self.pause = pause
        self.in_flight: Counter[str] = Counter()
        self.most_in_flight = 0
        self.starts: defaultdict[str, list[float]] = defaultdict(list)
        self.messages_per_call: defaultdict[str, list[int]] = defaultdict(list)
        self.release: asyncio.Event | None = None  # when set, every publish waits for it
        self.publishing = asyncio.Event()

    async def publish(self, events: Sequence[RealtimeMessage]) -> None:
        channels = {event.channel for event in events}
        for channel in channels:
            self.in_flight[channel] += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight[channel])
            self.starts[channel].append(time.monotonic())
            self.messages_per_call[channel].append(sum(1 for event in events if event.channel == channel))
        self.publishing.set()
        try:
            if self.release is not None:
                await self.release.wait()
            if self.pause:
                await asyncio.sleep(self.pause)
            await super().publish(events)
        finally:
            for channel in channels:
                self.in_flight[channel] -= 1


def _settings(database_url: str, **overrides: Any) -> Settings:
    # A pool of a few connections is concurrency enough, and leaves the shared server room for others.
    return make_settings(database_url, rate_limit_per_minute=10_000, db_pool_size=6, **overrides)


@pytest.fixture
async def watched(database_url: str) -> AsyncIterator[tuple[Api, WatchingProvider]]:
    provider = WatchingProvider()
    async with api_with(_settings(database_url), provider=provider) as api:
        yield api, provider


async def _outbox(api: Api) -> list[Any]:
    async with api.runtime.engine.connect() as conn:
        return list((await conn.execute(select(outbox_table).order_by(outbox_table.c.seq))).all())


async def _lease(api: Api, channel: str = CHANNEL) -> Any:
    async with api.runtime.engine.connect() as conn:
        return (
            await conn.execute(
                select(
                    channel_sequence_table.c.publisher,
                    channel_sequence_table.c.published_seq,
                    channel_sequence_table.c.last_seq,
                ).where(channel_sequence_table.c.channel == channel)
            )
        ).one()


async def _set_lease(api: Api, publisher: str, *, seconds: float, channel: str = CHANNEL) -> None:
    await hold_channel_lease(api.runtime, channel, publisher, seconds=seconds)


def _most_in_any_second(starts: list[float]) -> int:
    return max((sum(1 for s in starts if start <= s < start + 1) for start in starts), default=0)


async def test_a_storm_of_likes_goes_out_in_groups_one_publish_in_flight_within_the_ceiling(
    watched: tuple[Api, WatchingProvider],
) -> None:
    api, provider = watched
    photos = await api.event("wedding", photos=10)
    guests = [await api.guest() for _ in range(20)]
    likes = [(guest, photo) for guest in guests for photo in photos]
    random.Random(12).shuffle(likes)

    async def like(guest: str, photo: str) -> httpx.Response:
        await asyncio.sleep(random.uniform(0, 1.0))
        return await api.client.post(f"/api/photos/{photo}/like", headers=bearer(guest))

    responses = await asyncio.gather(*(like(guest, photo) for guest, photo in likes))
    rows = await _outbox(api)
    events = unpacked(provider.published)

    assert [r.status_code for r in responses] == [200] * 200
    assert len(rows) == 200 and all(row.published_at is not None for row in rows)
    # Every event exactly once, and in publish order the channel's seqs run 1..200: groups are contiguous, ordered.
    assert sorted(int(event.id) for event in events) == sorted(row.id for row in rows)
    assert [event.data["seq"] for event in events] == list(range(1, 201))
    # One provider message per like before groups; now fewer, as many as the ceiling allows over the storm.
    starts = provider.starts[CHANNEL]
    ceiling = api.runtime.settings.channel_publish_ceiling_per_second
    assert len(provider.published) < 200 and any(message.name == GROUP for message in provider.published)
    assert len(provider.published) <= ceiling * (starts[-1] - starts[0]) + 1
    assert provider.most_in_flight == 1
    assert _most_in_any_second(starts) <= ceiling
    assert min(b - a for a, b in itertools.pairwise(starts)) >= 0.04
    lease = await _lease(api)
    assert lease.publisher is None and lease.published_seq == lease.last_seq == 200


async def test_a_lone_like_on_a_quiet_channel_is_published_before_the_answer_without_waiting(
    watched: tuple[Api, WatchingProvider], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, provider = watched
    provider.pause = 0
    photo_id, other = await api.event("wedding")
    guest = await api.guest()
    await api.client.post(f"/api/photos/{other}/like", headers=bearer(guest))
    await asyncio.sleep(1 / api.runtime.settings.channel_publish_ceiling_per_second)  # the channel is quiet again
    sleeps: list[float] = []
    real_sleep = asyncio.sleep

    async def recording_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        await real_sleep(seconds)

    monkeypatch.setattr("core.outbox.publishing.asyncio.sleep", recording_sleep)
    response = await api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(guest))
    published_when_answered = list(provider.published)

    assert response.status_code == 200
    assert [(m.name, m.data["photoId"], m.data["seq"]) for m in published_when_answered[1:]] == [
        ("photo:liked", photo_id, 2)
    ]
    assert sleeps == []


async def test_a_holder_that_died_has_its_lease_taken_over_by_the_next_writer(
    watched: tuple[Api, WatchingProvider],
) -> None:
    api, provider = watched
    photo_a, photo_b = await api.event("wedding")
    guest = await api.guest()
    await api.client.post(f"/api/photos/{photo_a}/like", headers=bearer(guest))  # makes the channel's row
    await _set_lease(api, "a-holder-that-died", seconds=30)

    left = await api.client.post(f"/api/photos/{photo_b}/like", headers=bearer(guest))
    published_while_held = len(provider.published)
    await _set_lease(api, "a-holder-that-died", seconds=-1)  # its lease ran out
    taking_over = await api.client.delete(f"/api/photos/{photo_a}/like", headers=bearer(guest))

    assert (left.status_code, taking_over.status_code) == (200, 200)
    assert published_while_held == 1  # the first like only: the second was left to the holder
    group = provider.published[-1]
    assert group.name == GROUP and (group.data["fromSeq"], group.data["toSeq"]) == (2, 3)
    assert [event["name"] for event in group.data["events"]] == ["photo:liked", "photo:unliked"]
    assert all(row.published_at is not None for row in await _outbox(api))
    assert (await _lease(api)).publisher is None


async def test_the_relay_respects_a_held_lease_and_takes_over_an_expired_one_within_the_ceiling(
    database_url: str,
) -> None:
    provider = WatchingProvider(pause=0)
    # Ten per second, and groups of few events: the backlog takes several publishes, spaced by the ceiling.
    settings = _settings(database_url, channel_publish_ceiling_per_second=10)
    async with api_with(settings, provider=provider) as api:
        photos = await api.event("wedding", photos=1)
        guests = [await api.guest() for _ in range(3)]
        await api.client.post(f"/api/photos/{photos[0]}/like", headers=bearer(guests[0]))
        await _set_lease(api, "a-live-holder", seconds=30)
        for _ in range(40):  # long comments fill groups quickly
            for guest in guests:
                response = await api.client.post(
                    f"/api/photos/{photos[0]}/comments",
                    json={"authorName": "Ann", "content": "ü" * 450},
                    headers=bearer(guest),
                )
                assert response.status_code == 201, response.text
        before = len(provider.published)

        held = await relay.relay(api.runtime.engine, provider, settings)
        await _set_lease(api, "a-live-holder", seconds=-1)
        taken_over = await relay.relay(api.runtime.engine, provider, settings)
        rows = await _outbox(api)

    channel_rows = [row for row in rows if row.channel == CHANNEL]
    events = [event for event in unpacked(provider.published[before:]) if event.channel == CHANNEL]
    starts = provider.starts[CHANNEL][1:]
    assert held.published == 0  # the event channel's lease is held (the admin channel's went out at once)
    assert taken_over.published == 120
    assert [event.data["seq"] for event in events] == [row.seq for row in channel_rows[1:]] == list(range(2, 122))
    assert len(starts) >= 6
    assert min(b - a for a, b in itertools.pairwise(starts)) >= 0.09
    assert _most_in_any_second(starts) <= 10
    assert all(row.published_at is not None for row in rows)


async def test_a_slow_provider_gets_several_groups_per_call_and_the_ceiling_still_holds(database_url: str) -> None:
    # Each call takes 0.3 s, six intervals of a 20-per-second ceiling: one group per call would cap the channel at
    # about three messages a second; the intervals that passed allow more, a quarter second's worth at most.
    provider = WatchingProvider(pause=0.3)
    settings = _settings(database_url, channel_publish_ceiling_per_second=20)
    async with api_with(settings, provider=provider) as api:
        photos = await api.event("wedding", photos=1)
        guest = await api.guest()
        await api.client.post(f"/api/photos/{photos[0]}/like", headers=bearer(guest))  # the channel's row
        await _set_lease(api, "a-live-holder", seconds=30)
        for _ in range(60):  # long comments: a group holds a few of them
            response = await api.client.post(
                f"/api/photos/{photos[0]}/comments",
                json={"authorName": "Ann", "content": "ü" * 450},
                headers=bearer(guest),
            )
            assert response.status_code == 201, response.text
        await _set_lease(api, "a-live-holder", seconds=-1)
        before, calls_before = len(provider.published), len(provider.starts[CHANNEL])
        outcome = await relay.relay(api.runtime.engine, provider, settings)
        rows = await _outbox(api)

    sent = [message for message in provider.published[before:] if message.channel == CHANNEL]
    starts = provider.starts[CHANNEL][calls_before:]
    per_call = provider.messages_per_call[CHANNEL][calls_before:]
    assert outcome.published >= 60
    assert [event.data["seq"] for event in unpacked(sent)] == [row.seq for row in rows if row.channel == CHANNEL][1:]
    assert all(row.published_at is not None for row in rows)
    assert len(per_call) < len(sent) and max(per_call) > 1  # calls carried several groups
    assert max(per_call) <= 20 // 4
    # Messages (not calls) in any second: at most the ceiling and the one burst a quarter second's worth allows.
    most = max(sum(n for t, n in zip(starts, per_call, strict=True) if start <= t < start + 1) for start in starts)
    assert most <= 20 + 20 // 4


async def test_a_writer_that_commits_while_the_holder_releases_is_published_by_the_holder(
    watched: tuple[Api, WatchingProvider],
) -> None:
    """The lost wake-up: the holder's releasing statement waits for the writer's lock and then sees its events."""
    api, provider = watched
    (photo_id,) = await api.event("wedding", photos=1)
    guest = await api.guest()
    provider.release = asyncio.Event()
    holder = asyncio.create_task(api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(guest)))
    await asyncio.wait_for(provider.publishing.wait(), timeout=10)

    async with api.runtime.engine.connect() as conn:
        await in_transactions(conn)
        writer = await conn.begin()
        stored = await store.insert_messages(
            conn,
            [messages.comment_removed(slug="wedding", photo_id=int(photo_id), comment_id=7, mutation_id=None)],
            publisher="a-writer",
            lease_seconds=30,
        )
        provider.release.set()  # the holder publishes its like, then its releasing statement waits for this row
        await asyncio.sleep(0.3)
        await writer.commit()
    response = await holder

    assert response.status_code == 200
    assert stored.turns == {}  # the writer did not get the lease: its event is the holder's to publish
    assert [(e.name, e.data["seq"]) for e in unpacked(provider.published)] == [
        ("photo:liked", 1),
        ("comment:removed", 2),
    ]
    assert (await _lease(api)).publisher is None


async def test_a_request_hands_its_lease_off_after_its_bound_and_no_event_is_left_behind(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = WatchingProvider()
    bound = 0.3
    settings = _settings(database_url, publish_timeout_seconds=bound)
    publishing_times: list[tuple[float, int]] = []  # per request that published: how long, how many calls
    real_publish_turns = publishing.publish_turns

    async def timed_publish_turns(*args: Any, **kwargs: Any) -> publishing.PublishOutcome:
        started = time.monotonic()
        outcome = await real_publish_turns(*args, **kwargs)
        publishing_times.append((time.monotonic() - started, outcome.calls))
        return outcome

    monkeypatch.setattr(publishing, "publish_turns", timed_publish_turns)
    async with api_with(settings, provider=provider) as api:
        photos = await api.event("wedding", photos=10)
        guests = [await api.guest() for _ in range(10)]
        likes = [(guest, photo) for guest in guests for photo in photos]

        async def like(index: int, guest: str, photo: str) -> httpx.Response:
            await asyncio.sleep(index * 0.015)  # a steady stream for 1.5 s, five times the bound
            return await api.client.post(f"/api/photos/{photo}/like", headers=bearer(guest))

        responses = await asyncio.gather(*(like(i, guest, photo) for i, (guest, photo) in enumerate(likes)))
        rows = await _outbox(api)

    assert all(response.status_code == 200 for response in responses)
    # No relay ran: every event was published by the requests, each exactly once, in order.
    assert [event.data["seq"] for event in unpacked(provider.published)] == list(range(1, 101))
    assert all(row.published_at is not None for row in rows)
    assert provider.most_in_flight == 1
    # The lease went from request to request, none publishing for others much beyond its bound (and its re-takes).
    holders = [elapsed for elapsed, calls in publishing_times if calls]
    assert len(holders) >= 3
    assert max(holders) < (1 + publishing.HAND_OFF_RETAKES) * (bound + 0.2) + 0.5, sorted(holders)


def test_a_long_run_is_split_into_groups_within_the_size_limit() -> None:
    rows = [
        StoredMessage(
            id=100 + seq,
            channel=CHANNEL,
            seq=seq,
            event="comment:removed",
            payload={"photoId": "1", "eventSlug": "wedding", "commentId": "9" * 18, "mutationId": "m" * 64},
            created_at=datetime.now(UTC),
            attempts=0,
        )
        for seq in range(1, 201)
    ]
    rows.pop(150)  # seq 151 is not pending: a group never spans the hole

    groups: list[list[StoredMessage]] = []
    remaining = rows
    while remaining:
        groups.append(messages.next_group(remaining))
        remaining = remaining[len(groups[-1]) :]
    sizes = [len(encode(messages.group_message(group).data).encode()) for group in groups]

    assert max(sizes) <= MAX_PAYLOAD_BYTES
    assert sum(len(group) for group in groups) == 199
    assert all([row.seq for row in group] == list(range(group[0].seq, group[-1].seq + 1)) for group in groups)
    assert any(group[-1].seq == 150 for group in groups) and any(group[0].seq == 152 for group in groups)
    assert len(groups) < 10


async def test_a_claim_takes_only_free_channels_with_pending_events_of_those_asked_for(
    watched: tuple[Api, WatchingProvider],
) -> None:
    api, provider = watched
    photos = {slug: (await api.event(slug, photos=1))[0] for slug in ("one", "two", "three")}
    guest = await api.guest()
    provider.failure = ConnectionRefusedError("down")  # every like's publish fails: its event stays pending
    for photo in photos.values():
        await api.client.post(f"/api/photos/{photo}/like", headers=bearer(guest))
    provider.failure = None
    await _set_lease(api, "a-live-holder", seconds=30, channel="event:two")
    settings = api.runtime.settings

    async with api.runtime.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        asked = await publishing.claim_channels(conn, "retaker", settings, only=["event:one", "event:two"])
        again = await publishing.claim_channels(conn, "another", settings)

    assert [turn.channel for turn in asked] == ["event:one"]  # two's lease is held
    assert [turn.channel for turn in again] == ["event:three"]  # one is now the retaker's
    assert (await _lease(api, "event:one")).publisher == "retaker"

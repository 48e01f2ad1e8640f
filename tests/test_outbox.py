from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from pydantic import SecretStr
from sqlalchemy import select, text

from core.models import outbox_table
from core.outbox import relay
from core.realtime.base import RealtimeError, RealtimeMessage
from core.realtime.memory import MemoryProvider
from core.runtime import Runtime
from tests.support.api import Api, api_with, bearer
from tests.support.environment import make_settings
from tests.support.groups import unpacked
from tests.support.outbox import make_due


async def _pending(runtime: Runtime) -> Sequence[Any]:
    async with runtime.engine.connect() as conn:
        rows = await conn.execute(
            select(outbox_table.c.id, outbox_table.c.event, outbox_table.c.attempts, outbox_table.c.last_error)
            .where(outbox_table.c.published_at.is_(None))
            .order_by(outbox_table.c.id)
        )
        return rows.all()


async def _like_and_comment(api: Api, photo_id: str, token: str) -> None:
    liked = await api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(token))
    commented = await api.client.post(
        f"/api/photos/{photo_id}/comments", json={"authorName": "Al", "content": "hi"}, headers=bearer(token)
    )
    assert liked.status_code == 200, liked.text
    assert commented.status_code == 201, commented.text


async def test_a_failing_provider_leaves_the_request_successful_and_the_events_pending(
    api: Api, provider: MemoryProvider
) -> None:
    photo_id, _ = await api.event("wedding")
    guest = await api.guest()
    provider.failure = ConnectionRefusedError("provider down")

    await _like_and_comment(api, photo_id, guest)

    pending = await _pending(api.runtime)
    # An unreachable provider counts no attempt against parking. The comment's request, which took the channel's
    # lease and with it the like left pending, found the provider known to be failing and its probe not due: it
    # did not call it at all, and left all three to the relay.
    assert [(row.event, row.attempts) for row in pending] == [
        ("photo:liked", 0),
        ("comment:added", 0),
        ("notification:new-comment", 0),
    ]
    assert all("held while the provider is failing" in (row.last_error or "") for row in pending)
    assert provider.published == []

    provider.failure = None
    await make_due(api.runtime)
    result = await relay.relay(api.runtime.engine, provider, api.runtime.settings)
    again = await relay.relay(api.runtime.engine, provider, api.runtime.settings)

    assert result.published == 3 and again.published == 0
    assert sorted(int(e.id) for e in unpacked(provider.published)) == [row.id for row in pending]
    assert await _pending(api.runtime) == []


async def test_a_provider_slower_than_the_timeout_does_not_hold_the_request(api: Api, provider: MemoryProvider) -> None:
    photo_id, _ = await api.event("wedding")
    guest = await api.guest()
    provider.delay_seconds = 5  # the test settings cut a publish off after 0.5 s

    started = asyncio.get_running_loop().time()
    response = await api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(guest))
    elapsed = asyncio.get_running_loop().time() - started

    assert response.status_code == 200
    assert elapsed < 3
    [row] = await _pending(api.runtime)
    assert "timed out" in (row.last_error or "")


class _HeldProvider(MemoryProvider):
    """Holds its first publish until released: a request is then known to be publishing, holding its lease."""

    def __init__(self) -> None:
        super().__init__()
        self.publishing = asyncio.Event()
        self.release = asyncio.Event()

    async def publish(self, events: Sequence[RealtimeMessage]) -> None:
        if not self.publishing.is_set():
            self.publishing.set()
            await self.release.wait()
        await super().publish(events)


async def test_the_relay_leaves_a_request_its_own_events_while_it_publishes_them(database_url: str) -> None:
    held = _HeldProvider()
    # A publish timeout well beyond the test, so only the release ends the request's publish.
    settings = make_settings(database_url, publish_timeout_seconds=10)
    async with api_with(settings, provider=held) as api:
        photo_id, _ = await api.event("wedding")
        guest = await api.guest()
        request = asyncio.create_task(api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(guest)))
        await asyncio.wait_for(held.publishing.wait(), timeout=10)
        committed = await _pending(api.runtime)

        relayed = await relay.relay(api.runtime.engine, held, settings)
        held.release.set()
        response = await request

    assert [row.event for row in committed] == ["photo:liked"]  # committed and unpublished while the relay ran
    assert response.status_code == 200
    assert (relayed.batches, relayed.published) == (0, 0)
    assert len(held.publish_calls) == 1


class _CountingProvider(MemoryProvider):
    """Slow enough that two relays overlap."""

    async def publish(self, events: Sequence[RealtimeMessage]) -> None:
        await asyncio.sleep(0.05)
        await super().publish(events)


async def test_two_relays_started_together_publish_each_event_once_in_seq_order(
    api: Api, provider: MemoryProvider
) -> None:
    # Three events' channels: a relay takes a channel's lease, so two relays share the work by channel.
    photo_ids = [photo for slug in ("one", "two", "three") for photo in await api.event(slug, photos=10)]
    (last_photo,) = await api.event("quiet", photos=1)
    guest = await api.guest()
    provider.failure = RuntimeError("down")
    for photo_id in photo_ids:
        await api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(guest))
    provider.failure = None
    await make_due(api.runtime)
    # This like, on a channel of its own, takes the provider's probe and finds it back, so both relays may publish.
    await api.client.post(f"/api/photos/{last_photo}/like", headers=bearer(guest))
    slow = _CountingProvider()
    settings = api.runtime.settings.model_copy(update={"relay_batch_size": 2})

    first, second = await asyncio.gather(
        relay.relay(api.runtime.engine, slow, settings), relay.relay(api.runtime.engine, slow, settings)
    )

    events = unpacked(slow.published)
    ids = [e.id for e in events]
    assert first.published + second.published == 30
    assert first.published > 0 and second.published > 0
    assert len(ids) == len(set(ids)) == 30
    for channel in {e.channel for e in events}:
        assert [e.data["seq"] for e in events if e.channel == channel] == list(range(1, 11))
    assert all(len({e.channel for e in call}) == len(call) for call in slow.publish_calls)  # one group per channel
    assert await _pending(api.runtime) == []


async def test_a_rejected_event_is_parked_after_the_configured_attempts_and_shown_in_metrics(
    api: Api, provider: MemoryProvider
) -> None:
    photo_id, _ = await api.event("wedding")
    guest, admin = await api.guest(), await api.admin()
    settings = api.runtime.settings.model_copy(update={"outbox_max_attempts": 3})

    class Rejecting(MemoryProvider):
        async def publish(self, events: Sequence[RealtimeMessage]) -> None:
            raise RealtimeError("401 invalid key", transient=False)

    provider.failure = RuntimeError("down")
    await api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(guest))
    rejecting = Rejecting()
    for _ in range(3):
        await make_due(api.runtime)
        await relay.relay(api.runtime.engine, rejecting, settings)

    async with api.runtime.engine.connect() as conn:
        row = (
            await conn.execute(select(outbox_table.c.attempts, outbox_table.c.parked_at, outbox_table.c.last_error))
        ).one()
    metrics = await api.client.get("/api/metrics", headers=bearer(admin))
    await make_due(api.runtime)
    after_parking = await relay.relay(api.runtime.engine, provider, settings)

    assert row.attempts == 3 and row.parked_at is not None
    assert row.last_error == "rejected: 401 invalid key"
    assert metrics.json()["outbox"]["parked"] == 1
    assert after_parking.published == 0


async def test_a_scheduler_can_run_the_relay_over_http_only_with_the_cron_secret(
    api: Api, provider: MemoryProvider
) -> None:
    photo_id, _ = await api.event("wedding")
    guest = await api.guest()
    provider.failure = RuntimeError("down")
    await api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(guest))
    provider.failure = None
    await make_due(api.runtime)

    disabled = await api.client.get("/api/cron/relay")
    api.runtime.settings = api.runtime.settings.model_copy(update={"cron_secret": SecretStr("cron-secret-123")})
    try:
        wrong = await api.client.get("/api/cron/relay", headers=bearer("guess"))
        ran = await api.client.get("/api/cron/relay", headers=bearer("cron-secret-123"))
    finally:
        api.runtime.settings = api.runtime.settings.model_copy(update={"cron_secret": None})

    assert disabled.status_code == 404 and disabled.json()["error"]["code"] == "cron_disabled"
    assert wrong.status_code == 401
    assert ran.status_code == 200 and ran.json()["published"] == 1
    assert [e.name for e in provider.published] == ["photo:liked"]


async def test_the_relay_deletes_published_events_past_the_retention_and_keeps_the_rest(
    api: Api, provider: MemoryProvider
) -> None:
    photo_ids = await api.event("wedding", photos=3)
    guest = await api.guest()
    for photo_id in photo_ids:
        await api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(guest))
    async with api.runtime.engine.begin() as conn:  # the first like was published 31 days ago
        await conn.execute(text("UPDATE outbox SET published_at = now() - interval '31 days' WHERE seq = 1"))

    result = await relay.relay(api.runtime.engine, provider, api.runtime.settings)
    updates = await api.client.get("/api/events/wedding/updates?after=0", headers=bearer(guest))

    assert result.pruned == 1
    assert [event["seq"] for event in updates.json()["events"]] == [2, 3]

"""A provider outage of several minutes, with time controlled: the provider is probed once at a time while it is
down, requests do not call it, and once it is back the backlog goes out within seconds (not after each row's own
backoff, as it did when backoff was per row and grew to five minutes).

Minutes pass in the database, not in the test: moving ``next_probe_at`` (and with it ``failing_since``) into the
past is what the passing of the probe's backoff would do. Recovery is measured on the real clock, from the moment
the service is back after a failed probe (the worst case: a full backoff to wait) until every message is delivered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Row, text

from core.models import provider_health_table
from core.outbox import relay
from core.outbox.publishing import PROBE_BACKOFF_CAP_SECONDS
from core.outbox.relay import relay_forever, relay_once
from core.realtime.base import RealtimeError, RealtimeMessage
from core.realtime.memory import MemoryProvider
from core.runtime import Runtime
from tests import test_provider_contract as contract
from tests.support.api import Api, api_with, bearer
from tests.support.environment import make_settings
from tests.support.outbox import make_due, outbox_rows
from tests.test_provider_contract import LoopbackService, Service

# The contract suite's Ably and Pusher stand-ins, served and reset the same way.
any_service = contract.any_service
service = contract.service

OUTAGE_PROBES = 40  # 1 + 2 + 4 + 8 + 36 times 10 s: a little over six minutes
# The relay loop's interval (the CLI's default) and room for a slow, shared machine; the old per-row backoff would
# have held rows for up to 300 s.
RELAY_INTERVAL_SECONDS = 1.0
DELIVERY_BOUND_SECONDS = PROBE_BACKOFF_CAP_SECONDS + RELAY_INTERVAL_SECONDS + 9


async def _provider_health(runtime: Runtime) -> Row[Any] | None:
    async with runtime.engine.connect() as conn:
        return (await conn.execute(provider_health_table.select())).one_or_none()


async def _wait_out_the_probe_backoff(runtime: Runtime) -> float:
    """Moves the provider's recorded moments back by what is left of its backoff, so its probe is due now; returns
    the seconds that passed (as far as every publisher can tell)."""
    async with runtime.engine.begin() as conn:
        waited = (
            await conn.execute(
                text(
                    """
                    WITH left_over AS (
                        SELECT provider, greatest(next_probe_at - now(), interval '0') AS wait
                        FROM provider_health WHERE next_probe_at IS NOT NULL
                    )
                    UPDATE provider_health AS h SET next_probe_at = h.next_probe_at - l.wait,
                        failing_since = h.failing_since - l.wait, last_failure_at = h.last_failure_at - l.wait
                    FROM left_over AS l WHERE h.provider = l.provider
                    RETURNING extract(epoch FROM l.wait)
                    """
                )
            )
        ).scalar_one()
    return float(waited)


@pytest.mark.parametrize("any_service", ["ably", "pusher"], indirect=True)
async def test_after_minutes_of_outage_the_backlog_is_delivered_within_seconds_of_recovery(
    database_url: str, service: Service
) -> None:
    assert isinstance(service, LoopbackService)
    settings = service.settings(database_url, relay_batch_size=10)
    async with api_with(settings) as api:
        photo_ids = await api.event("wedding", photos=OUTAGE_PROBES // 2)
        guests = [await api.guest(), await api.guest()]
        late_guest = await api.guest()
        await service.server.stop()

        simulated_seconds = 0.0
        likes = []
        for step in range(OUTAGE_PROBES):
            if step:
                simulated_seconds += await _wait_out_the_probe_backoff(api.runtime)
            # The like takes the due probe, which fails; the relay then finds no probe due and claims nothing.
            like = await api.client.post(f"/api/photos/{photo_ids[step // 2]}/like", headers=bearer(guests[step % 2]))
            likes.append(like.status_code)
            assert (await relay_once(api.runtime))["batches"] == 0
        # A like while the probe is not due does not call the provider: its messages wait for the relay.
        held = await api.client.post(f"/api/photos/{photo_ids[0]}/like", headers=bearer(late_guest))
        health = await _provider_health(api.runtime)
        pending = await outbox_rows(api.runtime)
        async with api.runtime.engine.connect() as conn:
            now = (await conn.execute(text("SELECT now()"))).scalar_one()

        await service.server.start()
        recovered = time.monotonic()
        stop = asyncio.Event()
        loop = asyncio.create_task(relay_forever(api.runtime, interval_seconds=RELAY_INTERVAL_SECONDS, stop=stop))
        try:
            while time.monotonic() - recovered < DELIVERY_BOUND_SECONDS * 2:
                rows = await outbox_rows(api.runtime)
                if all(row.published_at is not None for row in rows):
                    break
                await asyncio.sleep(0.1)
            delivered_after = time.monotonic() - recovered
        finally:
            stop.set()
            await loop
        received = await service.received(api.runtime.provider, at_least=len(rows))

    assert likes == [200] * OUTAGE_PROBES and held.status_code == 200
    assert simulated_seconds >= 5 * 60
    assert health is not None and health.failing_since is not None and health.next_probe_at is not None
    assert health.last_failure_at is not None
    assert now - health.failing_since >= timedelta(minutes=5)
    # One provider call per probe, the backoff capped: the next probe is never more than the cap away.
    assert health.consecutive_failures == OUTAGE_PROBES
    assert health.next_probe_at - health.last_failure_at <= timedelta(seconds=PROBE_BACKOFF_CAP_SECONDS)
    # No row carries a backoff of its own, nor an attempt counted towards parking.
    assert len(pending) == OUTAGE_PROBES + 1
    assert all(row.next_attempt_at <= now and row.attempts == 0 and row.parked_at is None for row in pending)
    assert held.json()["changed"] is True and pending[-1].last_error.endswith("held while the provider is failing")

    assert delivered_after < DELIVERY_BOUND_SECONDS
    assert all(row.published_at is not None for row in rows)
    ids = [r.id for r in received]
    assert set(ids) == {str(row.id) for row in rows}
    if service.deduplicates:
        assert len(ids) == len(rows)
    by_id = {r.id: r for r in received}
    assert all(by_id[str(row.id)].data["seq"] == row.seq for row in rows)


class _CountingDownProvider(MemoryProvider):
    """Down, and slow to say so: every call is counted and overlaps the others'."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.in_flight = self.most_in_flight = 0
        self.failure = ConnectionRefusedError("down")

    async def publish(self, events: Sequence[RealtimeMessage]) -> None:
        self.calls += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.2)
            await super().publish(events)
        finally:
            self.in_flight -= 1


class _RefusingProvider(MemoryProvider):
    """Answers every publish with a rejection, as a provider does a malformed message or a wrong key."""

    async def publish(self, events: Sequence[RealtimeMessage]) -> None:
        raise RealtimeError("memory: 400 malformed", transient=False)


async def _like_each(api: Api, photo_ids: Sequence[str], guest: str) -> list[int]:
    return [
        (await api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(guest))).status_code
        for photo_id in photo_ids
    ]


async def test_while_the_provider_is_down_requests_and_relays_together_send_one_probe(database_url: str) -> None:
    provider = _CountingDownProvider()
    async with api_with(make_settings(database_url), provider=provider) as api:
        photo_ids = await api.event("wedding", photos=13)
        guests = [await api.guest() for _ in range(6)]
        await _like_each(api, photo_ids[:1], guests[0])  # finds the provider down
        before_probe = provider.calls
        await make_due(api.runtime)

        answers = await asyncio.gather(
            *(_like_each(api, photo_ids[1 + 2 * i : 3 + 2 * i], guest) for i, guest in enumerate(guests)),
            *(relay.relay(api.runtime.engine, provider, api.runtime.settings) for _ in range(3)),
        )
        health = await _provider_health(api.runtime)

    assert before_probe == 1
    assert answers[:6] == [[200, 200]] * 6
    # Of 12 likes and 3 relays, one took the due probe; on a slow machine the next probe (2 s later) may fall due
    # before they are all done, but probes never overlap and each one is counted.
    assert provider.most_in_flight == 1
    assert health is not None and provider.calls == health.consecutive_failures
    assert 2 <= provider.calls <= 4


async def test_a_rejection_is_the_message_s_fault_and_does_not_mark_the_provider_down(database_url: str) -> None:
    provider = MemoryProvider()
    async with api_with(make_settings(database_url), provider=provider) as api:
        photo_a, photo_b = await api.event("wedding")
        guest = await api.guest()
        provider.failure = ConnectionRefusedError("down")
        await _like_each(api, [photo_a], guest)
        provider.failure = None
        await make_due(api.runtime)

        refused = await relay.relay(api.runtime.engine, _RefusingProvider(), api.runtime.settings)
        after_rejection = await _provider_health(api.runtime)
        liked = await _like_each(api, [photo_b], guest)
        rows = await outbox_rows(api.runtime)

    assert refused.failed == 1
    # The provider answered: the outage is over, and the rejected row waits out its own backoff.
    assert after_rejection is not None and after_rejection.failing_since is None
    assert after_rejection.consecutive_failures == 0
    assert liked == [200] and [e.id for e in provider.published] == [str(rows[1].id)]
    assert rows[0].last_error == "rejected: memory: 400 malformed" and rows[0].attempts == 1
    assert rows[0].published_at is None and rows[1].published_at is not None

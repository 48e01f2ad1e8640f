from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select, text, update

from core import ratelimit
from core.auth import verify_token
from core.db import in_transactions
from core.errors import RateLimitedError
from core.models import outbox_table, rate_limit_table
from core.outbox import relay
from core.realtime.memory import MemoryProvider
from tests.support.api import Api, bearer


async def _make_earlier_attempts(api: Api, token: str, *, count: int, seconds_ago: int) -> None:
    """Replaces the recorded attempts of ``token``'s identity by ``count`` made ``seconds_ago``, as if it acted then."""
    identity = verify_token(token, api.runtime.settings).subject
    second = text(f"ARRAY[date_trunc('second', now() - interval '{seconds_ago} seconds')]")
    async with api.runtime.engine.begin() as conn:
        changed = await conn.execute(
            update(rate_limit_table).where(rate_limit_table.c.key == identity).values(seconds=second, counts=[count])
        )
    assert changed.rowcount == 1


async def _toggle_likes(api: Api, photo_id: str, token: str, times: int) -> list[int]:
    statuses = []
    for i in range(times):
        method = api.client.post if i % 2 == 0 else api.client.delete
        statuses.append((await method(f"/api/photos/{photo_id}/like", headers=bearer(token))).status_code)
    return statuses


async def test_the_61st_action_in_a_minute_is_refused_with_retry_after(api: Api) -> None:
    photo_id, _ = await api.event("wedding")
    guest, other = await api.guest(), await api.guest()

    responses = []
    for i in range(61):
        method = api.client.post if i % 2 == 0 else api.client.delete
        responses.append(await method(f"/api/photos/{photo_id}/like", headers=bearer(guest)))
    others = await api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(other))

    assert [r.status_code for r in responses[:60]] == [200] * 60
    refused = responses[60]
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert others.status_code == 200
    async with api.runtime.engine.connect() as conn:
        # 60 accepted toggles and the other guest's like; the refused one wrote nothing.
        assert await conn.scalar(select(func.count()).select_from(outbox_table)) == 61


async def test_the_minute_slides_so_attempts_just_before_a_clock_minute_still_count(api: Api) -> None:
    photo_id, _ = await api.event("wedding")
    guest = await api.guest()
    assert await _toggle_likes(api, photo_id, guest, 2) == [200, 200]
    await _make_earlier_attempts(api, guest, count=30, seconds_ago=50)

    statuses = [
        (await api.client.request(method, f"/api/photos/{photo_id}/like", headers=bearer(guest)))
        for method in ["POST", "DELETE"] * 15 + ["POST"]
    ]

    assert [r.status_code for r in statuses] == [200] * 30 + [429]
    # The 30 attempts of 50 s ago leave the window 10 s after they were made to look so, and then there is room.
    assert 5 <= int(statuses[-1].headers["Retry-After"]) <= 10


async def test_attempts_older_than_a_minute_no_longer_count(api: Api) -> None:
    photo_id, _ = await api.event("wedding")
    guest = await api.guest()
    assert await _toggle_likes(api, photo_id, guest, 2) == [200, 200]
    await _make_earlier_attempts(api, guest, count=100, seconds_ago=61)

    assert await _toggle_likes(api, photo_id, guest, 61) == [200] * 60 + [429]


async def test_the_relay_forgets_identities_idle_for_a_minute(api: Api) -> None:
    photo_id, _ = await api.event("wedding")
    idle, active = await api.guest(), await api.guest()
    assert await _toggle_likes(api, photo_id, idle, 1) == [200]
    await _make_earlier_attempts(api, idle, count=5, seconds_ago=61)
    assert await _toggle_likes(api, photo_id, active, 1) == [200]

    await relay.relay(api.runtime.engine, MemoryProvider(), api.runtime.settings)

    async with api.runtime.engine.connect() as conn:
        kept = set((await conn.execute(select(rate_limit_table.c.key))).scalars())
    assert verify_token(active, api.runtime.settings).subject in kept
    assert verify_token(idle, api.runtime.settings).subject not in kept


async def test_refused_attempts_are_not_recorded_so_a_hammering_client_keeps_one_bounded_row(api: Api) -> None:
    photo_id, _ = await api.event("wedding")
    guest = await api.guest()

    statuses = await _toggle_likes(api, photo_id, guest, 100)

    assert statuses == [200] * 60 + [429] * 40
    async with api.runtime.engine.connect() as conn:
        row = (
            await conn.execute(
                select(rate_limit_table).where(
                    rate_limit_table.c.key == verify_token(guest, api.runtime.settings).subject
                )
            )
        ).one()
    assert sum(row.counts) == api.runtime.settings.rate_limit_per_minute


async def test_a_venues_address_row_stays_small_however_many_attempts_it_counts(api: Api) -> None:
    # Every action from the venue reads and rewrites its address's row while holding its lock: what it holds must
    # not grow with the attempts counted (up to ADDRESS_ACTIONS_PER_MINUTE, 1,200), or the venue's actions queue on it.
    photo_id, _ = await api.event("wedding")
    guests = [await api.guest() for _ in range(10)]

    statuses = [
        (await api.client.request(method, f"/api/photos/{photo_id}/like", headers=bearer(guest))).status_code
        for guest in guests
        for method in ["POST", "DELETE"] * 5
    ]

    assert statuses == [200] * 100
    venue = rate_limit_table.c.key.startswith("actions:")
    async with api.runtime.engine.connect() as conn:
        row = (await conn.execute(select(rate_limit_table).where(venue))).one()
        stored_bytes = await conn.scalar(
            text("SELECT pg_column_size(r.*) FROM rate_limits r WHERE key = :key"), {"key": row.key}
        )
    assert sum(row.counts) == 100
    # one entry per second the 100 likes took, whatever their number (a list of their times: about 880 bytes)
    assert len(row.seconds) <= 60
    assert stored_bytes is not None and stored_bytes < 500


async def test_wrong_access_codes_count_against_the_limit_so_codes_cannot_be_guessed(api: Api) -> None:
    await api.event("private-party", access_code="s3cret-code")

    statuses = [
        (
            await api.client.post("/api/auth/guest", json={"eventSlug": "private-party", "accessCode": f"guess-{i}"})
        ).status_code
        for i in range(61)
    ]
    right_code_too_late = await api.client.post(
        "/api/auth/guest", json={"eventSlug": "private-party", "accessCode": "s3cret-code"}
    )

    assert statuses == [403] * 60 + [429]
    assert right_code_too_late.status_code == 429


async def test_a_whole_wedding_entering_the_right_code_from_the_venues_one_address_is_never_refused(
    api: Api,
) -> None:
    await api.event("private-party", access_code="s3cret-code")

    statuses = [
        (
            await api.client.post("/api/auth/guest", json={"eventSlug": "private-party", "accessCode": "s3cret-code"})
        ).status_code
        for _ in range(70)
    ]

    assert statuses == [200] * 70


async def test_wrong_admin_passwords_are_limited_per_address(api: Api) -> None:
    await api.admin()
    body = {"email": "admin@example.com", "password": "not the password"}

    statuses = [(await api.client.post("/api/auth/admin/login", json=body)).status_code for _ in range(61)]

    assert statuses == [401] * 60 + [429]


async def test_retry_after_stays_within_the_window_for_a_statement_that_began_before_the_key_filled(api: Api) -> None:
    # A like queued on its venue's address row reaches its identity's row late: what it answers is how long from
    # when it answers, never more than the window.
    limit = ratelimit.Limit("guest-late", 3, window_seconds=2)
    async with api.runtime.engine.connect() as late:
        await in_transactions(late)
        await late.begin()
        await late.execute(text("SELECT now()"))  # its now() is fixed from here
        await asyncio.sleep(1.1)
        async with api.runtime.engine.connect() as conn:  # autocommit, as the engine's connections are
            for _ in range(3):
                await ratelimit.hit(conn, [limit])

        with pytest.raises(RateLimitedError) as refused:
            await ratelimit.hit(late, [limit])

    assert 1 <= refused.value.retry_after_seconds <= 2

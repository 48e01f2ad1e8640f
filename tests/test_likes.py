from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import func, select, text

from core.auth import Principal, verify_token
from core.db import begin
from core.errors import InvalidInputError
from core.models import like_table, outbox_table, photo_table
from core.realtime.memory import MemoryProvider
from core.schemas.base import MUTATION_ID_MAX_LENGTH
from core.services import comments, likes
from core.unit_of_work import UnitOfWork
from core.use_cases.likes import set_like
from tests.support.api import Api, bearer
from tests.support.groups import unpacked


async def test_a_like_commits_only_once_it_is_on_disk_as_a_comment_does(api: Api) -> None:
    """Tried and dropped (bench/README.md): a like committing without waiting for the WAL flush. A crash would take
    back the outbox ids and channel seqs such commits handed out, already published perhaps, and hand them out
    again, to later events (comments too) that clients then drop as seen."""
    photo_id, _ = await api.event("wedding")
    guest = Principal(role="GUEST", subject="guest-1")

    async with begin(api.runtime.engine) as conn:
        uow = UnitOfWork(conn, api.runtime.settings)
        await likes.set_like(uow, principal=guest, photo_id=int(photo_id), liked=True, mutation_id=None)
        after_a_like = await conn.scalar(text("SHOW synchronous_commit"))
    async with begin(api.runtime.engine) as conn:
        uow = UnitOfWork(conn, api.runtime.settings)
        await comments.add_comment(
            uow, principal=guest, photo_id=int(photo_id), author_name="Ann", content="Hi", mutation_id=None, key=None
        )
        after_a_comment = await conn.scalar(text("SHOW synchronous_commit"))

    assert (after_a_like, after_a_comment) == ("on", "on")


async def test_a_like_is_counted_stored_and_published_with_the_documented_payload(
    api: Api, provider: MemoryProvider
) -> None:
    photo_id, _ = await api.event("wedding")
    guest = await api.guest()

    response = await api.client.post(f"/api/photos/{photo_id}/like", headers={**bearer(guest), "X-Mutation-Id": "m-1"})

    assert response.status_code == 200, response.text
    assert response.json() == {"photoId": photo_id, "likeCount": 1, "liked": True, "changed": True}
    [event] = provider.published
    assert event.channel == "event:wedding"
    assert event.name == "photo:liked"
    assert set(event.data) == {"id", "seq", "timestamp", "mutationId", "photoId", "eventSlug", "likeCount"}
    assert event.data["photoId"] == photo_id
    assert event.data["eventSlug"] == "wedding"
    assert event.data["likeCount"] == 1
    assert event.data["seq"] == 1
    assert event.data["mutationId"] == "m-1"
    assert event.data["id"] == event.id and isinstance(event.id, str)
    async with api.runtime.engine.connect() as conn:
        row = (await conn.execute(select(outbox_table.c.id))).scalar_one_or_none()
        stored = (await conn.execute(select(outbox_table.c.published_at, outbox_table.c.seq))).one()
        count = await conn.scalar(select(photo_table.c.like_count).where(photo_table.c.id == int(photo_id)))
    assert row is not None and stored.published_at is not None and stored.seq == 1
    assert count == 1


async def test_liking_twice_counts_once_and_unliking_publishes_the_new_count(
    api: Api, provider: MemoryProvider
) -> None:
    photo_id, _ = await api.event("wedding")
    guest = await api.guest()

    first = await api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(guest))
    second = await api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(guest))
    unliked = await api.client.delete(f"/api/photos/{photo_id}/like", headers=bearer(guest))
    again = await api.client.delete(f"/api/photos/{photo_id}/like", headers=bearer(guest))

    assert first.json()["likeCount"] == 1 and first.json()["changed"] is True
    assert second.json() == {"photoId": photo_id, "likeCount": 1, "liked": True, "changed": False}
    assert unliked.json() == {"photoId": photo_id, "likeCount": 0, "liked": False, "changed": True}
    assert again.json()["changed"] is False
    assert [(e.name, e.data["likeCount"], e.data["seq"]) for e in provider.published] == [
        ("photo:liked", 1, 1),
        ("photo:unliked", 0, 2),
    ]


async def test_two_hundred_guests_liking_at_once_count_exactly_two_hundred_with_gapless_seq(
    api: Api, provider: MemoryProvider
) -> None:
    photo_id, _ = await api.event("wedding")
    guests = [await api.guest() for _ in range(200)]

    async def like(token: str) -> httpx.Response:
        return await api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(token))

    responses = await asyncio.gather(*(like(token) for token in guests), like(guests[0]), like(guests[1]))

    assert all(r.status_code == 200 for r in responses), {r.status_code for r in responses}
    async with api.runtime.engine.connect() as conn:
        count = await conn.scalar(select(photo_table.c.like_count).where(photo_table.c.id == int(photo_id)))
        rows = await conn.scalar(select(func.count()).select_from(like_table))
        seqs = (await conn.execute(select(outbox_table.c.seq).order_by(outbox_table.c.seq))).scalars().all()
    assert count == rows == 200
    assert list(seqs) == list(range(1, 201))
    # Likes committed while the channel's publish was in flight went out together, as groups.
    published = unpacked(provider.published)
    assert sorted(e.data["likeCount"] for e in published) == list(range(1, 201))
    assert sorted(e.data["seq"] for e in published) == list(range(1, 201))


async def test_a_like_with_the_longest_mutation_id_is_published_and_a_longer_one_is_refused_writing_nothing(
    api: Api, provider: MemoryProvider
) -> None:
    # A like's message is checked against the size limit once, for the longest mutation id (core/messages.py);
    # a caller of the use case that passes a longer one is refused, not published oversize.
    photo_id, other_photo_id = await api.event("wedding")
    guest = await api.guest()
    longest = "m" * MUTATION_ID_MAX_LENGTH

    response = await api.client.post(
        f"/api/photos/{photo_id}/like", headers={**bearer(guest), "X-Mutation-Id": longest}
    )
    assert response.status_code == 200, response.text
    assert [event.data["mutationId"] for event in provider.published] == [longest]

    principal = verify_token(guest, api.runtime.settings)
    with pytest.raises(InvalidInputError):
        await set_like(api.runtime, principal, photo_id=int(other_photo_id), liked=True, mutation_id=longest + "m")
    async with api.runtime.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(like_table)) == 1

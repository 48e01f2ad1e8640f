"""Retried mutations are safe: a repeated Idempotency-Key (or X-Mutation-Id) from the same identity gets the first
answer, and writes and publishes nothing new. A venue's flaky network retries; the gallery must not show a comment
twice."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from core.models import comment_table, outbox_table
from core.realtime.memory import MemoryProvider
from tests.support.api import Api, bearer


async def _counts(api: Api) -> tuple[int, int]:
    async with api.runtime.engine.connect() as conn:
        comments = await conn.scalar(select(func.count()).select_from(comment_table))
        messages = await conn.scalar(select(func.count()).select_from(outbox_table))
    return int(comments or 0), int(messages or 0)


@pytest.mark.parametrize("header", ["Idempotency-Key", "X-Mutation-Id"])
async def test_a_retried_comment_is_posted_once_and_answered_as_the_first_time(
    api: Api, provider: MemoryProvider, header: str
) -> None:
    photo_id, _ = await api.event("wedding")
    guest = await api.guest()
    headers = {**bearer(guest), header: "retry-me-1"}
    body = {"authorName": "Ana", "content": "Congratulations!"}

    first = await api.client.post(f"/api/photos/{photo_id}/comments", json=body, headers=headers)
    retried = await api.client.post(f"/api/photos/{photo_id}/comments", json=body, headers=headers)

    assert first.status_code == retried.status_code == 201
    assert retried.json() == first.json()
    assert await _counts(api) == (1, 2)
    assert len(provider.publish_calls) == 1


async def test_retries_racing_each_other_still_post_once(api: Api, provider: MemoryProvider) -> None:
    photo_id, _ = await api.event("wedding")
    guest = await api.guest()
    headers = {**bearer(guest), "Idempotency-Key": "racing"}
    body = {"authorName": "Ana", "content": "Congratulations!"}

    answers = await asyncio.gather(
        *(api.client.post(f"/api/photos/{photo_id}/comments", json=body, headers=headers) for _ in range(5))
    )

    assert [a.status_code for a in answers] == [201] * 5
    assert len({a.json()["id"] for a in answers}) == 1
    assert await _counts(api) == (1, 2)


async def test_the_key_is_per_identity_and_a_new_key_is_a_new_comment(api: Api) -> None:
    photo_id, _ = await api.event("wedding")
    ana, bo = await api.guest(), await api.guest()
    body = {"authorName": "Ana", "content": "Lovely"}

    await api.client.post(
        f"/api/photos/{photo_id}/comments", json=body, headers={**bearer(ana), "Idempotency-Key": "k1"}
    )
    await api.client.post(
        f"/api/photos/{photo_id}/comments", json=body, headers={**bearer(bo), "Idempotency-Key": "k1"}
    )
    await api.client.post(
        f"/api/photos/{photo_id}/comments", json=body, headers={**bearer(ana), "Idempotency-Key": "k2"}
    )

    assert (await _counts(api))[0] == 3


async def test_a_key_reused_for_another_request_is_refused(api: Api) -> None:
    photo_id, _ = await api.event("wedding")
    guest = await api.guest()
    headers = {**bearer(guest), "Idempotency-Key": "once"}

    await api.client.post(
        f"/api/photos/{photo_id}/comments", json={"authorName": "A", "content": "one"}, headers=headers
    )
    reused = await api.client.post(
        f"/api/photos/{photo_id}/comments", json={"authorName": "A", "content": "two"}, headers=headers
    )

    assert reused.status_code == 422, reused.text
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    assert (await _counts(api))[0] == 1


@pytest.mark.parametrize("bad", ["", "x" * 256, "tab\there", "ünicode"])
async def test_a_malformed_idempotency_key_is_refused(api: Api, bad: str) -> None:
    photo_id, _ = await api.event("wedding")
    guest = await api.guest()

    response = await api.client.post(
        f"/api/photos/{photo_id}/comments",
        json={"authorName": "A", "content": "hi"},
        # As bytes: httpx sends them as given, where it would refuse a non-ASCII str.
        headers={name.encode(): value.encode() for name, value in {**bearer(guest), "Idempotency-Key": bad}.items()},
    )

    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_idempotency_key"
    assert (await _counts(api))[0] == 0


async def test_a_retried_moderation_answers_as_the_first_time_and_publishes_once(
    api: Api, provider: MemoryProvider
) -> None:
    photo_id, _ = await api.event("wedding")
    guest, admin = await api.guest(), await api.admin()
    created = await api.client.post(
        f"/api/photos/{photo_id}/comments", json={"authorName": "A", "content": "spam"}, headers=bearer(guest)
    )
    comment_id = created.json()["id"]
    provider.reset()

    deleted = [
        await api.client.delete(
            f"/api/admin/comments/{comment_id}", headers={**bearer(admin), "Idempotency-Key": "del-1"}
        )
        for _ in range(2)
    ]
    hide = {**bearer(admin), "Idempotency-Key": "hide-1"}
    other = await api.client.post(
        f"/api/photos/{photo_id}/comments", json={"authorName": "A", "content": "more"}, headers=bearer(guest)
    )
    hidden = [
        await api.client.patch(f"/api/admin/comments/{other.json()['id']}", json={"status": "hidden"}, headers=hide)
        for _ in range(2)
    ]

    assert [d.status_code for d in deleted] == [204, 204]
    assert [h.status_code for h in hidden] == [200, 200] and hidden[0].json() == hidden[1].json()
    assert [m.name for m in provider.published] == [
        "comment:removed",
        "comment:added",
        "notification:new-comment",
        "comment:removed",
    ]

from __future__ import annotations

from sqlalchemy import func, select

from core.models import comment_table, outbox_table
from core.realtime.memory import MemoryProvider
from core.realtime.wire import MAX_PAYLOAD_BYTES, encode
from tests.support.api import Api, bearer


async def test_a_comment_reaches_the_event_channel_and_the_admins_in_one_publish_call(
    api: Api, provider: MemoryProvider
) -> None:
    photo_id, _ = await api.event("wedding")
    guest = await api.guest()

    response = await api.client.post(
        f"/api/photos/{photo_id}/comments",
        json={"authorName": "  Aunt May ", "content": "So <b>lovely</b>!\nCongrats"},
        headers={**bearer(guest), "X-Mutation-Id": "c-1"},
    )

    assert response.status_code == 201, response.text
    comment = response.json()
    assert comment["authorName"] == "Aunt May"
    assert comment["content"] == "So <b>lovely</b>!\nCongrats"  # stored as given: escaping is the renderer's job
    [call] = provider.publish_calls
    assert [(e.channel, e.name) for e in call] == [
        ("event:wedding", "comment:added"),
        ("admin", "notification:new-comment"),
    ]
    for event in call:
        assert event.data["photoId"] == photo_id
        assert event.data["eventSlug"] == "wedding"
        assert event.data["mutationId"] == "c-1"
        assert event.data["seq"] == 1
        assert event.data["comment"] == comment  # exactly as answered
        assert comment["createdAt"].endswith("Z")
    listed = await api.client.get(f"/api/photos/{photo_id}/comments", headers=bearer(guest))
    assert listed.json()["comments"] == [comment]  # as stored
    assert set(comment) == {"id", "photoId", "authorName", "content", "createdAt"}


async def test_hiding_a_comment_publishes_comment_removed_and_hides_it_from_guests(
    api: Api, provider: MemoryProvider
) -> None:
    photo_id, _ = await api.event("wedding")
    guest, admin = await api.guest(), await api.admin()
    created = await api.client.post(
        f"/api/photos/{photo_id}/comments", json={"authorName": "Bo", "content": "spam"}, headers=bearer(guest)
    )
    comment_id = created.json()["id"]

    hidden = await api.client.patch(
        f"/api/admin/comments/{comment_id}", json={"status": "hidden"}, headers=bearer(admin)
    )
    listed = await api.client.get(f"/api/photos/{photo_id}/comments", headers=bearer(guest))
    queue = await api.client.get("/api/admin/comments?status=hidden", headers=bearer(admin))
    shown = await api.client.patch(
        f"/api/admin/comments/{comment_id}", json={"status": "visible"}, headers=bearer(admin)
    )
    deleted = await api.client.delete(f"/api/admin/comments/{comment_id}", headers=bearer(admin))
    gone = await api.client.delete(f"/api/admin/comments/{comment_id}", headers=bearer(admin))

    assert hidden.status_code == 200 and hidden.json()["status"] == "hidden"
    assert listed.json()["comments"] == []
    assert [c["id"] for c in queue.json()["comments"]] == [comment_id]
    assert shown.json()["status"] == "visible"
    assert deleted.status_code == 204
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "comment_not_found"
    event_channel = [(e.name, e.data["seq"]) for e in provider.published if e.channel == "event:wedding"]
    assert event_channel == [("comment:added", 1), ("comment:removed", 2), ("comment:added", 3), ("comment:removed", 4)]
    removed = next(e for e in provider.published if e.name == "comment:removed")
    assert removed.data["commentId"] == comment_id and removed.data["photoId"] == photo_id


async def test_invalid_comments_are_refused_and_nothing_is_written_or_published(
    api: Api, provider: MemoryProvider
) -> None:
    photo_id, _ = await api.event("wedding")
    guest = await api.guest()
    bad_bodies = [
        {"authorName": "   ", "content": "hi"},
        {"authorName": "Ann", "content": " \n "},
        {"authorName": "A" * 81, "content": "hi"},
        {"authorName": "Ann", "content": "x" * 1001},
        {"authorName": "Ann\x07", "content": "hi"},
        {"authorName": "Ann", "content": "hi\x00there"},
        {"authorName": "Ann", "content": "esc \x1b[31m red"},
        {"authorName": "Ann"},
        {"authorName": 5, "content": "hi"},
        {"authorName": "Ann", "content": "hi", "extra": True},
    ]

    responses = [
        await api.client.post(f"/api/photos/{photo_id}/comments", json=body, headers=bearer(guest))
        for body in bad_bodies
    ]

    assert [r.status_code for r in responses] == [422] * len(bad_bodies)
    assert all(r.json()["error"]["code"] == "invalid_input" for r in responses)
    assert all(r.json()["error"]["message"] for r in responses)
    async with api.runtime.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(comment_table)) == 0
        assert await conn.scalar(select(func.count()).select_from(outbox_table)) == 0
    assert provider.published == []


async def test_a_thousand_character_comment_of_four_byte_characters_fits_the_payload_limit(
    api: Api, provider: MemoryProvider
) -> None:
    photo_id, _ = await api.event("wedding")
    guest = await api.guest()

    response = await api.client.post(
        f"/api/photos/{photo_id}/comments",
        json={"authorName": "\U0001f600" * 80, "content": "\U0001f389" * 1000},
        headers=bearer(guest),
    )

    assert response.status_code == 201, response.text
    # Measured as sent: the compact UTF-8 JSON every provider puts on the wire.
    assert provider.published and all(len(encode(e.data).encode()) <= MAX_PAYLOAD_BYTES for e in provider.published)

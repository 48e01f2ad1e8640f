from __future__ import annotations

from core.realtime.memory import MemoryProvider
from tests.support.api import Api, bearer


async def test_updates_after_a_seq_return_exactly_the_later_events_in_order(api: Api, provider: MemoryProvider) -> None:
    photo_ids = await api.event("wedding", photos=3)
    guest = await api.guest()
    for photo_id in photo_ids:
        await api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(guest))
    await api.client.post(
        f"/api/photos/{photo_ids[0]}/comments", json={"authorName": "Al", "content": "hi"}, headers=bearer(guest)
    )

    everything = await api.client.get("/api/events/wedding/updates?after=0", headers=bearer(guest))
    after_two = await api.client.get("/api/events/wedding/updates?after=2", headers=bearer(guest))
    paged = await api.client.get("/api/events/wedding/updates?after=1&limit=2", headers=bearer(guest))
    none_left = await api.client.get("/api/events/wedding/updates?after=4", headers=bearer(guest))

    published = [e for e in provider.published if e.channel == "event:wedding"]
    assert [e["seq"] for e in everything.json()["events"]] == [1, 2, 3, 4]
    assert [e["data"] for e in everything.json()["events"]] == [e.data for e in published]
    assert [e["name"] for e in after_two.json()["events"]] == ["photo:liked", "comment:added"]
    assert [e["seq"] for e in after_two.json()["events"]] == [3, 4]
    assert paged.json()["lastSeq"] == 3 and paged.json()["hasMore"] is True
    assert [e["seq"] for e in paged.json()["events"]] == [2, 3]
    assert none_left.json() == {"channel": "event:wedding", "events": [], "lastSeq": 4, "hasMore": False}


async def test_the_page_load_tells_the_current_seq_and_the_callers_likes(api: Api) -> None:
    first, second = await api.event("wedding")
    guest, other = await api.guest(), await api.guest()
    await api.client.post(f"/api/photos/{first}/like", headers=bearer(guest))
    await api.client.post(f"/api/photos/{first}/like", headers=bearer(other))

    mine = (await api.client.get("/api/events/wedding", headers=bearer(guest))).json()
    anonymous = (await api.client.get("/api/events/wedding")).json()

    assert mine["seq"] == 2 and mine["channel"] == "event:wedding"
    assert [(p["id"], p["likeCount"], p["likedByMe"]) for p in mine["photos"]] == [(first, 2, True), (second, 0, False)]
    assert [p["likedByMe"] for p in anonymous["photos"]] == [False, False]


async def test_admin_updates_carry_comment_notifications_and_need_an_admin(api: Api) -> None:
    photo_id, _ = await api.event("wedding")
    guest, admin = await api.guest(), await api.admin()
    await api.client.post(
        f"/api/photos/{photo_id}/comments", json={"authorName": "Al", "content": "hi"}, headers=bearer(guest)
    )

    as_admin = await api.client.get("/api/admin/updates?after=0", headers=bearer(admin))
    as_guest = await api.client.get("/api/admin/updates?after=0", headers=bearer(guest))

    assert [(e["name"], e["seq"]) for e in as_admin.json()["events"]] == [("notification:new-comment", 1)]
    assert as_guest.status_code == 403 and as_guest.json()["error"]["code"] == "admin_only"

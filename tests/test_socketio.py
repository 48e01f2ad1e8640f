"""The Socket.IO server with real python-socketio clients over loopback: the API and one node in the test's loop."""

from __future__ import annotations

import asyncio
import time

import jwt
import pytest
import socketio
from sqlalchemy import func, select

from core.models import like_table, outbox_table
from core.settings import Settings
from tests.support.api import bearer
from tests.support.sockets import WAIT_SECONDS, Client, LiveServer, clients, unique

QUIET_SECONDS = 0.5  # how long "nothing arrives" is watched for, after something that does arrive


async def test_a_like_through_the_http_api_reaches_every_client_in_the_event_room_and_none_in_another(
    live: LiveServer,
) -> None:
    wedding, graduation = unique("wedding"), unique("graduation")
    photo_id, _ = await live.api.event(wedding)
    await live.api.event(graduation)
    guest = await live.api.guest()
    async with clients(4) as (first, second, third, elsewhere):
        for client, slug in (
            (first, wedding),
            (second, wedding),
            (third, {"eventSlug": wedding}),
            (elsewhere, graduation),
        ):
            await client.connect(live.url, token=guest if client is first else None)
            joined = await client.call("join:event", slug)
            assert joined["room"].startswith("event:"), joined

        response = await live.api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(guest))
        assert response.status_code == 200, response.text

        received = [await c.wait_for("photo:liked") for c in (first, second, third)]
        await asyncio.sleep(QUIET_SECONDS)
    assert all(data == received[0] for data in received)
    assert received[0]["photoId"] == photo_id and received[0]["likeCount"] == 1
    assert received[0]["eventSlug"] == wedding and received[0]["seq"] == 1
    assert all(len(c.named("photo:liked")) == 1 for c in (first, second, third))
    assert elsewhere.named("photo:liked") == []


async def test_a_new_comment_reaches_the_event_room_and_its_notification_reaches_admins_only(live: LiveServer) -> None:
    slug = unique("party")
    photo_id, _ = await live.api.event(slug)
    admin, guest = await live.api.admin(), await live.api.guest()
    async with clients(2) as (moderator, visitor):
        await moderator.connect(live.url, token=admin)
        await visitor.connect(live.url, token=guest)
        assert await moderator.call("join:admin") == {"room": "admin"}
        refused = await visitor.call("join:admin")
        await visitor.call("join:event", slug)

        response = await live.api.client.post(
            f"/api/photos/{photo_id}/comments", json={"authorName": "Ana", "content": "Lovely"}, headers=bearer(guest)
        )
        assert response.status_code == 201, response.text

        notified = await moderator.wait_for("notification:new-comment")
        added = await visitor.wait_for("comment:added")
        await asyncio.sleep(QUIET_SECONDS)
    assert refused == {"error": {"code": "admin_only", "message": "Only admins may join the admin room"}}
    assert visitor.named("error") == [{"event": "join:admin", "error": refused["error"]}]
    assert notified["comment"]["content"] == "Lovely" and notified["eventSlug"] == slug
    assert added["comment"] == notified["comment"]
    assert visitor.named("notification:new-comment") == []
    assert moderator.named("comment:added") == []  # the admin room is not the event's room


async def test_a_bad_or_expired_token_is_refused_at_connect_and_no_token_is_a_guest(
    live: LiveServer, socket_settings: Settings
) -> None:
    now = int(time.time())
    expired = jwt.encode(
        {
            "iss": socket_settings.jwt_issuer,
            "aud": socket_settings.jwt_audience,
            "sub": "guest-old",
            "role": "GUEST",
            "iat": now - 7200,
            "exp": now - 3600,
        },
        socket_settings.require_jwt_secret(),
        algorithm="HS256",
    )
    forged = jwt.encode({"sub": "admin:1", "role": "ADMIN"}, "not-our-secret-but-long-enough-for-hs256", "HS256")
    for token, code in (("garbage", "invalid_token"), (expired, "token_expired"), (forged, "invalid_token")):
        client = Client()
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(live.url, token=token)
        [refusal] = client.named("connect_error")
        assert refusal["data"]["error"]["code"] == code, refusal
        assert not client.sio.connected

    async with clients(1) as (anonymous,):
        await anonymous.connect(live.url)
        assert anonymous.sio.connected
        assert (await anonymous.call("photo:like", {"photoId": "1"}))["error"]["code"] == "token_required"


async def test_a_protected_event_room_needs_the_events_access_code_in_the_token(live: LiveServer) -> None:
    slug = unique("private")
    await live.api.event(slug, access_code="secret-code")
    outsider = await live.api.guest()
    invited = await live.api.guest(eventSlug=slug, accessCode="secret-code")
    async with clients(3) as (anonymous, without, withcode):
        await anonymous.connect(live.url)
        await without.connect(live.url, token=outsider)
        await withcode.connect(live.url, token=invited)

        # Protected and not unlocked answers as unknown does (issue 9, enumeration).
        assert (await anonymous.call("join:event", slug))["error"]["code"] == "event_not_found"
        assert (await without.call("join:event", {"eventSlug": slug}))["error"]["code"] == "event_not_found"
        assert (await withcode.call("join:event", slug))["room"] == f"event:{slug}"
        assert (await anonymous.call("join:event", "no-such-event"))["error"]["code"] == "event_not_found"
        assert (await anonymous.call("join:event", {"slug": "Bad Slug"}))["error"]["code"] == "invalid_input"
    room = f"event:{slug}"
    async with asyncio.timeout(WAIT_SECONDS):  # the server hears of the disconnects after the clients return
        while True:
            if not (live.node.presence.count(room) or live.node.sio.manager.rooms.get("/", {}).get(room)):
                break
            await asyncio.sleep(0.01)


async def test_a_forged_photo_liked_from_a_client_reaches_nobody(live: LiveServer) -> None:
    slug = unique("forgery")
    photo_id, _ = await live.api.event(slug)
    guest = await live.api.guest()
    async with clients(2) as (forger, watcher):
        for client in (forger, watcher):
            await client.connect(live.url, token=guest)
            await client.call("join:event", slug)
        forged = {"id": "1", "seq": 1, "photoId": photo_id, "eventSlug": slug, "likeCount": 999}

        answer = await forger.call("photo:liked", forged)
        await forger.sio.emit("comment:added", {"eventSlug": slug, "comment": {"content": "spam"}})
        await forger.wait_for("error", lambda data: data["event"] == "comment:added")
        await asyncio.sleep(QUIET_SECONDS)
        assert watcher.named("photo:liked") == [] and watcher.named("comment:added") == []

        # The room is live: a real like (asked for over the socket) does arrive, with the stored count.
        assert (await forger.call("photo:like", {"photoId": photo_id, "eventSlug": slug}))["likeCount"] == 1
        real = await watcher.wait_for("photo:liked")
    assert answer["error"]["code"] == "client_event_refused"
    assert real["likeCount"] == 1
    assert [data["likeCount"] for data in watcher.named("photo:liked")] == [1]


async def test_likes_and_comments_sent_over_the_socket_go_through_the_services_and_are_counted_once(
    live: LiveServer,
) -> None:
    slug = unique("requests")
    photo_id, _ = await live.api.event(slug)
    guest = await live.api.guest()
    async with clients(2) as (sender, watcher):
        for client in (sender, watcher):
            await client.connect(live.url, token=guest if client is sender else None)
            await client.call("join:event", slug)

        first = await sender.call("photo:like", {"photoId": photo_id, "mutationId": "m-1"})
        second = await sender.call("photo:like", {"photoId": int(photo_id)})
        comment = await sender.call("comment:new", {"photoId": photo_id, "authorName": "Bo", "content": " Hi! "})
        invalid = await sender.call("comment:new", {"photoId": photo_id, "authorName": "", "content": "x"})
        liked = await watcher.wait_for("photo:liked")
        added = await watcher.wait_for("comment:added")
        unliked = await sender.call("photo:like", {"photoId": photo_id, "liked": False})
        await watcher.wait_for("photo:unliked")
        await asyncio.sleep(QUIET_SECONDS)

    assert first == {"photoId": photo_id, "likeCount": 1, "liked": True, "changed": True}
    assert second == {"photoId": photo_id, "likeCount": 1, "liked": True, "changed": False}
    assert unliked == {"photoId": photo_id, "likeCount": 0, "liked": False, "changed": True}
    assert liked["mutationId"] == "m-1" and liked["likeCount"] == 1
    assert len(watcher.named("photo:liked")) == 1
    assert comment["content"] == "Hi!" and comment["authorName"] == "Bo"
    assert added["comment"] == comment
    assert invalid["error"]["code"] == "invalid_input"
    async with live.node.runtime.engine.connect() as conn:
        likes = await conn.scalar(
            select(func.count()).select_from(like_table).where(like_table.c.photo_id == int(photo_id))
        )
        names = (
            await conn.execute(
                select(outbox_table.c.event, outbox_table.c.published_at.is_not(None))
                .where(outbox_table.c.channel == f"event:{slug}")
                .order_by(outbox_table.c.seq)
            )
        ).all()
    assert likes == 0
    assert [tuple(row) for row in names] == [("photo:liked", True), ("comment:added", True), ("photo:unliked", True)]


async def test_presence_is_sent_to_the_room_as_it_changes_and_shows_in_metrics(live: LiveServer) -> None:
    slug = unique("presence")
    await live.api.event(slug)
    admin = await live.api.admin()
    async with clients(3) as (first, second, third):
        await first.connect(live.url)
        assert (await first.call("join:event", slug))["count"] == 1
        assert (await first.wait_for("presence:count")) == {"eventSlug": slug, "count": 1}
        for client in (second, third):
            await client.connect(live.url)
            await client.call("join:event", slug)
        await first.wait_for("presence:count", lambda data: data["count"] == 3)
        await second.wait_for("presence:count", lambda data: data["count"] == 3)

        response = await live.api.client.get("/api/metrics", headers=bearer(admin))
        process = response.json()["process"]
        assert process["socketio_connected_clients"] == 3
        assert process["socketio_rooms"] == 1
        assert process["socketio_messages_sent"] >= 1

        first.events.clear()
        await third.call("leave:event", slug)
        await second.close()
        await first.wait_for("presence:count", lambda data: data["count"] == 1)
        await asyncio.sleep(QUIET_SECONDS)
        announced = [data["count"] for data in first.named("presence:count")]
    # Two changes in a burst: announced at once and then at most once more, with the count of that moment.
    assert announced in ([1], [2, 1]), announced


async def test_a_client_that_reconnects_receives_exactly_what_it_missed_through_updates(live: LiveServer) -> None:
    slug = unique("reconnect")
    photos = await live.api.event(slug, photos=4)
    guests = [await live.api.guest() for _ in photos]
    async with clients(2) as (steady, flaky):
        for client in (steady, flaky):
            await client.connect(live.url)
            await client.call("join:event", slug)

        async def like(index: int) -> None:
            response = await live.api.client.post(f"/api/photos/{photos[index]}/like", headers=bearer(guests[index]))
            assert response.status_code == 200, response.text

        await like(0)
        seen = await flaky.wait_for("photo:liked")
        await flaky.close()
        for index in (1, 2, 3):
            await like(index)
        await steady.wait_for("photo:liked", lambda data: data["seq"] == 4)

        back = Client()
        await back.connect(live.url)
        await back.call("join:event", slug)
        token = await live.api.guest()
        response = await live.api.client.get(
            f"/api/events/{slug}/updates", params={"after": seen["seq"]}, headers=bearer(token)
        )
        # The reconnected client is live again: it receives what comes after the gap.
        again = await live.api.client.post(f"/api/photos/{photos[0]}/like", headers=bearer(token))
        assert again.status_code == 200, again.text
        after = await back.wait_for("photo:liked")
        await back.close()
    missed = steady.named("photo:liked")[1:4]
    assert response.status_code == 200, response.text
    updates = response.json()["events"]
    assert [u["data"] for u in updates] == missed
    assert [u["seq"] for u in updates] == [2, 3, 4]
    assert len(flaky.named("photo:liked")) == 1
    assert after["seq"] == 5 and back.named("photo:liked") == [after]


async def test_a_comment_retried_over_the_socket_with_its_mutation_id_is_posted_once(live: LiveServer) -> None:
    slug = unique("retried")
    photo_id, _ = await live.api.event(slug)
    guest = await live.api.guest()
    comment = {"photoId": photo_id, "authorName": "Bo", "content": "Hi!", "mutationId": "c-retry-1"}
    async with clients(2) as (sender, watcher):
        await sender.connect(live.url, token=guest)
        await watcher.connect(live.url)
        await watcher.call("join:event", slug)

        first = await sender.call("comment:new", comment)
        retried = await sender.call("comment:new", comment)
        await watcher.wait_for("comment:added")
        await asyncio.sleep(QUIET_SECONDS)

    assert retried == first and first["content"] == "Hi!"
    assert len(watcher.named("comment:added")) == 1


async def test_a_sockets_rooms_are_known_without_scanning_and_all_left_when_it_goes(live: LiveServer) -> None:
    """The manager keeps each socket's rooms beside python-socketio's room map; both must always agree."""
    slugs = [unique("rooms"), unique("rooms")]
    for slug in slugs:
        await live.api.event(slug)
    manager = live.node.sio.manager

    def scanned(sid: str) -> set[str]:  # what python-socketio's own get_rooms would find
        return {room for room, members in manager.rooms.get("/", {}).items() if room is not None and sid in members}

    async with clients(2) as (staying, going):
        for client in (staying, going):
            await client.connect(live.url)
            for slug in slugs:
                await client.call("join:event", slug)
        await going.call("leave:event", slugs[0])
        sids = {name: client.sio.get_sid("/") for name, client in (("staying", staying), ("going", going))}
        for sid in sids.values():
            assert set(manager.get_rooms(sid, "/")) == scanned(sid)
        assert scanned(sids["going"]) == {sids["going"], f"event:{slugs[1]}"}
        await going.close()
        await asyncio.sleep(QUIET_SECONDS)
        assert manager.get_rooms(sids["going"], "/") == [] and scanned(sids["going"]) == set()
        assert set(manager.get_rooms(sids["staying"], "/")) == {sids["staying"], *(f"event:{s}" for s in slugs)}

"""Attacks on the Socket.IO server by a hostile client: real python-socketio clients and hand-written Engine.IO
packets over polling and websocket, against the API and a node served by uvicorn over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import jwt
import pytest
import socketio
import sqlalchemy
import websockets

from core.auth import Role
from core.db import in_transactions
from core.runtime import Runtime
from core.settings import Settings
from core.socketio_server import handlers
from core.socketio_server.joins import LOOKUP_TTL_SECONDS, MAX_EVENT_ROOMS, REFUSALS_BEFORE_DISCONNECT
from tests.support.api import bearer
from tests.support.database import empty_tables
from tests.support.environment import redis_url
from tests.support.ports import free_port
from tests.support.sockets import (
    WAIT_SECONDS,
    LiveServer,
    Polling,
    clients,
    live_node,
    socketio_process,
    unique,
)

QUIET_SECONDS = 0.5


def token_expiring_in(
    settings: Settings, seconds: float, *, role: Role = "GUEST", subject: str = "", version: int | None = None
) -> str:
    now = time.time()
    claims: dict[str, object] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": subject or ("admin:1" if role == "ADMIN" else unique("guest")),
        "role": role,
        "iat": int(now),
        "exp": int(now + seconds),
    }
    if version is not None:
        claims["ver"] = version  # an admin token names the admin's token version (core.services.accounts)
    return jwt.encode(claims, settings.require_jwt_secret(), algorithm="HS256")


def logged(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> str:
    """Warnings and errors logged since the last call: our JSON lines (stdout) and what other loggers wrote,
    traceback included (asyncio's "Task exception was never retrieved", a library's own handler)."""
    captured = capsys.readouterr()
    ours = [line for line in captured.out.splitlines() if '"level": "info"' not in line]
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    others = [formatter.format(r) for r in caplog.records if r.levelno >= logging.WARNING and r.name[:5] != "hafi."]
    caplog.clear()
    return "".join(line + "\n" for line in [*ours, *captured.err.splitlines(), *others])


async def settled(condition: Callable[[], bool]) -> None:
    """Waits (bounded) until ``condition()`` holds: the server hears of a change after the client returns."""
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


async def test_a_client_emitted_disconnect_event_closes_the_connection_instead_of_running_the_handler(
    live: LiveServer, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Before: the viewer count dropped while the socket stayed in the room and kept receiving. Now the packet is
    refused as the reference server's parser refuses it, and the connection ends: counted and receiving, or
    neither."""
    slug = unique("reserved")
    photo_id, _ = await live.api.event(slug)
    guest = await live.api.guest()
    room = f"event:{slug}"
    async with clients(1) as (cheat,):
        await cheat.connect(live.url, token=guest)
        await cheat.call("join:event", slug)
        logged(capsys, caplog)

        await cheat.sio.emit("disconnect", "io client disconnect")
        await settled(lambda: not cheat.sio.connected)
        response = await live.api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(guest))
        assert response.status_code == 200, response.text
        await asyncio.sleep(QUIET_SECONDS)
    assert live.node.presence.count(room) == 0
    assert cheat.named("photo:liked") == []
    output = logged(capsys, caplog)
    assert "Traceback" not in output and len(output.splitlines()) == 1, output


@pytest.mark.parametrize("arguments", [({}, {"token": "garbage"}), ({}, {"token": "<a guest token>"}), ()])
async def test_a_client_emitted_connect_event_is_refused_without_a_traceback_and_installs_no_token(
    live: LiveServer,
    arguments: tuple[object, ...],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    guest = await live.api.guest()
    arguments = tuple({"token": guest} if arg == {"token": "<a guest token>"} else arg for arg in arguments)
    async with clients(2) as (cheat, watcher):
        await cheat.connect(live.url)
        await watcher.connect(live.url)
        logged(capsys, caplog)

        await cheat.sio.emit("connect", arguments)
        await settled(lambda: not cheat.sio.connected)
        # Not a server-wide effect: another client is served as before.
        assert (await watcher.call("photo:like", {"photoId": 1}))["error"]["code"] == "token_required"
    output = logged(capsys, caplog)
    assert "Traceback" not in output and len(output.splitlines()) == 1, output


async def test_a_refused_event_with_a_huge_name_is_logged_as_one_short_line(
    live: LiveServer, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    name = "x" * 60_000  # the audit's was 500 KB: now more than a message may carry (closed, as tested below)
    logged(capsys, caplog)
    async with clients(1) as (flooder,):
        await flooder.connect(live.url)
        answer = await flooder.call(name, {})
    output = logged(capsys, caplog)
    refusals = [line for line in output.splitlines() if "refused client event" in line]
    assert answer["error"]["code"] == "client_event_refused"
    assert len(answer["error"]["message"]) < 1_000  # nor sent back whole (twice: ack and error event)
    assert len(refusals) == 1 and len(refusals[0]) < 2_000, [len(line) for line in refusals]
    assert len(output) < 5_000


@pytest.mark.parametrize(
    "packet",
    [
        '42["unterminated',
        "42[]",
        "42{}",
        '42[["a"],1]',
        "9",
        "9unknown-engine-io-type",
        "4" + "[" * 20_000,
        '451-["x",{"_placeholder":true,"num":0}]',
    ],
)
async def test_a_malformed_packet_is_logged_as_one_line_without_a_traceback(
    live: LiveServer, packet: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    async with httpx.AsyncClient(base_url=live.url, timeout=WAIT_SECONDS) as http:
        session = Polling(http)
        assert (await session.open()).startswith("40")
        logged(capsys, caplog)
        response = await session.post(packet)
        await asyncio.sleep(QUIET_SECONDS)
    output = logged(capsys, caplog)
    assert response.status_code in (200, 400), response.text
    assert "Traceback" not in output, output
    assert len(output.splitlines()) <= 1 and len(output) < 2_000, output


@pytest.mark.parametrize("body", ["9", "9unknown-engine-io-type", "", "4\x1e9"])
async def test_a_polling_post_engine_io_cannot_decode_is_refused_and_ends_the_session(
    live: LiveServer, body: str
) -> None:
    # As over a WebSocket: python-engineio answered these 200 and kept the session (and its viewer) alive.
    async with httpx.AsyncClient(base_url=live.url, timeout=WAIT_SECONDS) as http:
        session = Polling(http)
        await session.open()
        answer = await http.post(session.path, params=session.query(), content=body)
        after = await http.get(session.path, params=session.query())
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "bad_request"
    assert after.status_code == 400 or after.text == "1", after.text  # the session is over (or says so: CLOSE)
    await settled(lambda: live.node.presence.connected_clients == 0)


OVERSIZED = 1_200_000  # what the audit sent: more than the node's max_http_buffer_size, then 1 MB


async def test_an_oversized_polling_post_is_answered_at_once_and_ends_the_session(live: LiveServer) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(OVERSIZED // 100_000):
            yield b"4" * 100_000

    async with httpx.AsyncClient(base_url=live.url, timeout=WAIT_SECONDS) as http:
        declared, chunked = Polling(http), Polling(http)
        for session in (declared, chunked):
            await session.open()
        by_length = await http.post(declared.path, params=declared.query(), content=b"4" * OVERSIZED)
        by_chunks = await http.post(chunked.path, params=chunked.query(), content=chunks())
        after = await http.get(declared.path, params=declared.query())
    assert (by_length.status_code, by_chunks.status_code) == (413, 413), (by_length.text, by_chunks.text)
    assert by_length.json()["error"]["code"] == "payload_too_large"
    assert by_length.headers["connection"] == "close"
    assert after.status_code == 400 or after.text == "1", after.text  # the session is over (or says so: CLOSE)


# How long a node may take to stop after SIGTERM with clients still attached: its grace period for open requests
# (a long poll waits up to a ping interval) plus a start-up's worth of slack. Before, it never stopped.
STOP_SECONDS = 15


async def test_twenty_oversized_posts_leave_nothing_stuck_and_sigterm_stops_a_node_promptly(
    socket_settings: Settings,
) -> None:
    redis = redis_url()
    if redis is None:
        pytest.skip("no Redis reachable: a standalone node needs one")
    port = free_port()
    env = {
        "APP_ENV": "test",
        "DATABASE_URL": socket_settings.require_database_url(),
        "JWT_SECRET": socket_settings.require_jwt_secret(),
        "SOCKETIO_REDIS_URL": redis,
        "SOCKETIO_REDIS_CHANNEL": unique("hafi-test"),
        "LOG_LEVEL": "WARNING",
    }
    with socketio_process(port, env) as node:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=WAIT_SECONDS) as http:
            sessions = [Polling(http) for _ in range(21)]
            for session in sessions:
                await session.open()
            answers = await asyncio.gather(
                *(http.post(s.path, params=s.query(), content=b"4" * OVERSIZED) for s in sessions[:20])
            )
            waiting = asyncio.create_task(sessions[20].receive())  # a well-behaved long poll, left open
            await asyncio.sleep(QUIET_SECONDS)
            node.terminate()
            stopped = await asyncio.to_thread(node.wait, STOP_SECONDS)
            waiting.cancel()
    assert [a.status_code for a in answers] == [413] * 20
    assert stopped in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down


async def test_sockets_are_disconnected_when_their_tokens_expire_and_hear_nothing_after(live: LiveServer) -> None:
    """Before: after a short token expired, HTTP said 401 and the sockets still received comments and admin
    notifications."""
    slug = unique("expiry")
    photo_id, _ = await live.api.event(slug)
    settings = live.node.runtime.settings
    real_admin = jwt.decode(await live.api.admin(), options={"verify_signature": False})
    async with clients(3) as (guest, admin, steady):
        await guest.connect(live.url, token=token_expiring_in(settings, 2))
        await admin.connect(
            live.url,
            token=token_expiring_in(settings, 2, role="ADMIN", subject=real_admin["sub"], version=real_admin["ver"]),
        )
        await steady.connect(live.url, token=await live.api.guest())
        for client in (guest, steady):
            await client.call("join:event", slug)
        await admin.call("join:admin")

        await settled(lambda: not guest.sio.connected and not admin.sio.connected)
        response = await live.api.client.post(
            f"/api/photos/{photo_id}/comments",
            json={"authorName": "Ana", "content": "Still here?"},
            headers=bearer(await live.api.guest()),
        )
        assert response.status_code == 201, response.text
        await steady.wait_for("comment:added")
        await asyncio.sleep(QUIET_SECONDS)
        # Counted while the steady client is still connected: leaving this block disconnects it too.
        present = live.node.presence.count(f"event:{slug}")
    assert guest.named("comment:added") == [] and admin.named("notification:new-comment") == []
    for client in (guest, admin):
        assert client.named("error") == [
            {"event": "auth", "error": {"code": "token_expired", "message": "The token has expired; ask for a new one"}}
        ]
    assert present == 1


async def test_a_token_refreshed_on_the_live_connection_keeps_it_but_only_for_the_same_identity(
    live: LiveServer,
) -> None:
    slug = unique("refresh")
    photo_id, _ = await live.api.event(slug)
    settings = live.node.runtime.settings
    async with clients(2) as (kept, switched):
        await kept.connect(live.url, token=token_expiring_in(settings, 2, subject="guest-kept"))
        await switched.connect(live.url, token=token_expiring_in(settings, 2, subject="guest-first"))
        for client in (kept, switched):
            await client.call("join:event", slug)

        renewed = await kept.call("auth:refresh", {"token": token_expiring_in(settings, 600, subject="guest-kept")})
        other = await switched.call("auth:refresh", {"token": token_expiring_in(settings, 600, subject="guest-other")})
        garbage = await switched.call("auth:refresh", {"token": "garbage"})
        await settled(lambda: not switched.sio.connected)
        await asyncio.sleep(1)
        response = await live.api.client.post(f"/api/photos/{photo_id}/like", headers=bearer(await live.api.guest()))
        assert response.status_code == 200, response.text
        await kept.wait_for("photo:liked")
    assert renewed["expiresAt"] > time.time() + 500
    assert other["error"]["code"] == "token_mismatch"
    assert garbage["error"]["code"] == "invalid_token"


@contextlib.contextmanager
def event_lookups(live: LiveServer) -> Iterator[list[str]]:
    """The statements reading the events table while inside, as the database received them."""
    seen: list[str] = []

    def record(conn: object, cursor: object, statement: str, *_: object) -> None:
        if "FROM events" in statement:
            seen.append(statement)

    engine = live.node.runtime.engine.sync_engine
    sqlalchemy.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", record)


async def test_a_flood_of_joins_costs_one_lookup_is_refused_past_its_rate_and_ends_the_connection(
    live: LiveServer,
) -> None:
    """Before: 10,000 joins were 10,000 database lookups (and a full pool for everyone else)."""
    slug = unique("flood")
    await live.api.event(slug)
    async with clients(2) as (flooder, bystander):
        await flooder.connect(live.url)
        await bystander.connect(live.url)
        with event_lookups(live) as lookups:
            for _ in range(10_000):
                await flooder.sio.emit("join:event", slug)
            await settled(lambda: not flooder.sio.connected)
            joined = await bystander.call("join:event", slug)
    refusals = [e for e in flooder.named("error") if e["event"] == "join:event"]
    assert len(lookups) <= 1, lookups
    assert joined["count"] == 1  # the flooder is gone from the room too
    assert refusals and {e["error"]["code"] for e in refusals} == {"rate_limited"}
    assert len(refusals) <= 100


async def test_concurrent_joins_of_one_event_share_one_lookup(live: LiveServer) -> None:
    slug = unique("crowd")
    await live.api.event(slug)
    async with clients(50) as crowd:
        for client in crowd:
            await client.connect(live.url)
        with event_lookups(live) as lookups:
            answers = await asyncio.gather(*(client.call("join:event", slug) for client in crowd))
    assert {a["room"] for a in answers} == {f"event:{slug}"}
    assert len(lookups) == 1, lookups


@pytest.mark.parametrize("change", ["protected", "deleted"])
async def test_an_event_protected_or_deleted_stops_being_joinable_within_the_lookups_lifetime(
    live: LiveServer, change: str
) -> None:
    """A join's access answer is kept for LOOKUP_TTL_SECONDS: after that, no join may rest on the old answer."""
    slug = unique(change)
    await live.api.event(slug)
    statement = (
        "UPDATE events SET access_code_hash = 'x' WHERE slug = :slug"
        if change == "protected"
        else "DELETE FROM events WHERE slug = :slug"
    )
    async with clients(1) as (early,):
        await early.connect(live.url)
        assert (await early.call("join:event", slug))["room"] == f"event:{slug}"  # the answer is now kept
        async with live.node.runtime.engine.begin() as conn:
            await conn.execute(sqlalchemy.text(statement), {"slug": slug})
        changed = time.monotonic()
        while True:
            async with clients(1) as (late,):
                await late.connect(live.url)
                answer = await late.call("join:event", slug)
            if "error" in answer:
                break
            assert time.monotonic() - changed < LOOKUP_TTL_SECONDS + 1, "joined on an answer older than its lifetime"
            await asyncio.sleep(0.2)
    assert answer["error"]["code"] == "event_not_found"
    assert time.monotonic() - changed < LOOKUP_TTL_SECONDS + 1


async def test_a_socket_holds_a_bounded_number_of_event_rooms(live: LiveServer) -> None:
    slugs = [unique("room") for _ in range(MAX_EVENT_ROOMS + 1)]
    for slug in slugs:
        await live.api.event(slug, photos=1)
    async with clients(1) as (client,):
        await client.connect(live.url)
        answers = [await client.call("join:event", slug) for slug in slugs]
        again = await client.call("join:event", slugs[0])  # a room already held is no new room
        await client.call("leave:event", slugs[0])
        after_leaving = await client.call("join:event", slugs[-1])
    assert all("room" in answer for answer in answers[:-1]), answers
    assert answers[-1]["error"]["code"] == "too_many_rooms"
    assert again["room"] == f"event:{slugs[0]}"
    assert after_leaving["room"] == f"event:{slugs[-1]}"


async def test_a_socket_that_leaves_while_its_join_is_looked_up_is_not_an_error_nor_counted(
    live: LiveServer, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    slug = unique("leaver")
    await live.api.event(slug)
    room = f"event:{slug}"
    async with clients(1) as (leaver,):
        await leaver.connect(live.url)
        logged(capsys, caplog)
        # The join's lookup waits on this lock until the socket is gone.
        async with live.node.runtime.engine.connect() as blocker:
            await in_transactions(blocker)
            transaction = await blocker.begin()
            await blocker.execute(sqlalchemy.text("LOCK TABLE events IN ACCESS EXCLUSIVE MODE"))
            await leaver.sio.emit("join:event", slug)
            await asyncio.sleep(QUIET_SECONDS)
            await leaver.close()
            await settled(lambda: live.node.presence.connected_clients == 0)
            await transaction.rollback()
        await asyncio.sleep(QUIET_SECONDS)
    output = logged(capsys, caplog)
    assert live.node.presence.count(room) == 0
    assert live.node.sio.manager.rooms.get("/", {}).get(room) is None
    assert "Traceback" not in output and "error" not in output, output


@pytest.mark.parametrize(
    "attack",
    [
        ['451-["x",{"_placeholder":true,"num":0}]', b"\x00" * 1_000],  # a binary event and its attachment
        ['459999999999-["x",{"_placeholder":true,"num":0}]', *[b"\x00" * 60_000] * 20],  # attachments without end
        ["4" + "2" * 1_100_000],  # one message over the limit
        ['42["disconnect"]'],
        [""],  # engine.io cannot decode an empty frame: it raised, and the session lived on without its socket
        [b""],
        ["9xyz"],  # no such engine.io packet type
    ],
    ids=["binary", "endless-attachments", "oversized", "reserved-name", "empty-text", "empty-binary", "unknown-type"],
)
async def test_a_hostile_websocket_message_closes_that_connection_only(
    live: LiveServer, attack: list[str | bytes], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    url = live.url.replace("http://", "ws://") + "/api/socket/?EIO=4&transport=websocket"
    async with clients(1) as (bystander,):
        await bystander.connect(live.url)
        async with websockets.connect(url, max_size=None) as ws:
            assert str(await ws.recv()).startswith("0")
            await ws.send("40")
            assert str(await ws.recv()).startswith("40")
            logged(capsys, caplog)
            with contextlib.suppress(websockets.ConnectionClosed):
                for message in attack:
                    await ws.send(message)
            async with asyncio.timeout(WAIT_SECONDS):
                with contextlib.suppress(websockets.ConnectionClosed):
                    while True:
                        assert await ws.recv() in ("1", "2")  # a close packet or a ping, nothing else
        await settled(lambda: live.node.presence.connected_clients == 1)  # its session is over, not only its socket
        assert (await bystander.call("leave:event", "anything"))["room"] == "event:anything"
    output = logged(capsys, caplog)
    assert "Traceback" not in output and len(output.splitlines()) <= 1, output


async def test_a_flood_of_refused_events_ends_the_connection_after_a_few_log_lines(
    live: LiveServer, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    async with clients(1) as (flooder,):
        await flooder.connect(live.url)
        logged(capsys, caplog)
        for index in range(1_000):
            await flooder.sio.emit(f"photo:liked-{index}", {"likeCount": 999})
        await settled(lambda: not flooder.sio.connected)
    output = logged(capsys, caplog)
    assert len(output.splitlines()) <= REFUSALS_BEFORE_DISCONNECT + 1, output


async def test_an_admin_token_revoked_since_is_refused_on_a_socket_as_over_http(live: LiveServer) -> None:
    # A password reset revokes the admin's earlier tokens (tests/test_security_secrets.py, over HTTP). A socket that
    # connected before it, or a socket that hands the old token over with auth:refresh, may not act as that admin.
    slug = unique("revoked")
    photo_id, _ = await live.api.event(slug, access_code="open sesame")  # protected: only an admin sees it
    old = await live.api.admin()
    async with clients(2) as (connected_before, refreshing):
        await connected_before.connect(live.url, token=old)
        await refreshing.connect(live.url)
        await live.api.admin()  # the password set again: `old` is revoked

        refreshed = await refreshing.call("auth:refresh", {"token": old})
        joined = await connected_before.call("join:event", slug)
        liked = await connected_before.call("photo:like", {"photoId": photo_id, "liked": True})
        commented = await connected_before.call(
            "comment:new", {"photoId": photo_id, "authorName": "Admin", "content": "still me?"}
        )

    for answer in (refreshed, joined, liked, commented):
        assert answer.get("error", {}).get("code") == "token_revoked", answer
    page = await live.api.client.get(f"/api/events/{slug}", headers=bearer(await live.api.admin()))
    assert page.status_code == 200, page.text
    assert [photo["likeCount"] for photo in page.json()["photos"] if photo["id"] == photo_id] == [0], page.text


@pytest.fixture
async def bounded_live(socket_settings: Settings, session_runtime: Runtime) -> AsyncIterator[LiveServer]:
    await empty_tables(session_runtime.engine)
    async with live_node(socket_settings.model_copy(update={"socketio_connections_per_address": 3})) as server:
        yield server


async def test_connections_from_one_address_are_bounded_and_refused_ones_leave_nothing_behind(
    bounded_live: LiveServer,
) -> None:
    # A helper opened 3,000 sessions from one address and the viewer count followed; each session's state stays
    # until it disconnects, and a refused connect never does.
    live = bounded_live
    async with clients(6) as (refused, first, second, third, fourth, later):
        events = live.node.events
        for _ in range(3):
            with pytest.raises(socketio.exceptions.ConnectionError):
                await refused.connect(live.url, token="garbage")
        assert events.tracked_sockets == 0
        for client in (first, second, third):
            await client.connect(live.url)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await fourth.connect(live.url)
        assert fourth.named("connect_error")[-1]["data"]["error"]["code"] == "too_many_connections"
        await first.sio.disconnect()
        await settled(lambda: events.tracked_sockets == 2)
        await later.connect(live.url)  # the place the first one left
        assert events.tracked_sockets == 3 and live.node.presence.connected_clients == 3


async def test_a_like_over_the_socket_takes_a_photo_id_and_a_boolean_not_anything_that_converts(
    live: LiveServer,
) -> None:
    # pydantic's lax mode took {"photoId": true} as photo 1 and {"liked": "yes"} as true.
    photo_id, _ = await live.api.event(unique("strict"))
    async with clients(1) as (guest,):
        await guest.connect(live.url, token=await live.api.guest())
        by_true = await guest.call("photo:like", {"photoId": True})
        by_yes = await guest.call("photo:like", {"photoId": photo_id, "liked": "yes"})
        by_number = await guest.call("photo:like", {"photoId": photo_id, "liked": 0})
        as_string = await guest.call("photo:like", {"photoId": str(photo_id), "liked": False})  # documented
    for refused in (by_true, by_yes, by_number):
        assert refused.get("error", {}).get("code") == "invalid_input", refused
    assert as_string["photoId"] == photo_id and as_string["liked"] is False


async def test_long_polling_answers_carry_the_apis_security_headers(live: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live.url, timeout=WAIT_SECONDS) as http:
        handshake = await http.get("/api/socket/", params={"EIO": "4", "transport": "polling"})
    assert handshake.status_code == 200, handshake.text
    assert handshake.headers.get("x-content-type-options") == "nosniff"
    assert "default-src 'none'" in handshake.headers.get("content-security-policy", "")


async def test_admins_connecting_at_once_from_one_address_stay_within_its_bound(bounded_live: LiveServer) -> None:
    # Each admin connect waits on the database (its token's version) between the bound's check and its count.
    admin = await bounded_live.api.admin()
    async with clients(8) as many:
        outcomes = await asyncio.gather(
            *(client.connect(bounded_live.url, token=admin) for client in many), return_exceptions=True
        )
        accepted = [outcome for outcome in outcomes if outcome is None]
        assert len(accepted) == 3, outcomes
        assert bounded_live.node.events.tracked_sockets == 3


async def test_a_session_closed_while_its_admin_token_is_checked_keeps_no_place(bounded_live: LiveServer) -> None:
    admin = await bounded_live.api.admin()
    engine = bounded_live.node.runtime.engine
    async with httpx.AsyncClient(base_url=bounded_live.url, timeout=WAIT_SECONDS) as http:
        for _ in range(3):
            session = Polling(http)
            opened = await http.get(session.path, params={"EIO": "4", "transport": "polling"})
            session.sid = json.loads(opened.text[1:])["sid"]
            async with engine.connect() as blocker:
                await in_transactions(blocker)
                await blocker.execute(sqlalchemy.text("LOCK TABLE admins IN ACCESS EXCLUSIVE MODE"))
                connecting = asyncio.create_task(session.post("40" + json.dumps({"token": admin})))
                await asyncio.sleep(0.3)  # the connect handler now waits for the admins table
                await session.post("1")  # the client closes the session meanwhile
                await blocker.rollback()
            await connecting
    await asyncio.sleep(QUIET_SECONDS)
    assert bounded_live.node.events.tracked_sockets == 0
    assert bounded_live.node.presence.connected_clients == 0


async def test_an_admin_socket_that_only_listens_is_ended_soon_after_a_password_reset(
    live: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Requests over a socket check the admin's token at once (above); one that only listens for notifications is
    # checked every ADMIN_RECHECK_SECONDS.
    monkeypatch.setattr(handlers, "ADMIN_RECHECK_SECONDS", 0.2)
    photo_id, _ = await live.api.event(unique("listening"))
    async with clients(1) as (listener,):
        await listener.connect(live.url, token=await live.api.admin())
        await listener.call("join:admin")
        await live.api.admin()  # the password set again

        await settled(lambda: not listener.sio.connected)
        comment = await live.api.client.post(
            f"/api/photos/{photo_id}/comments",
            json={"authorName": "Ana", "content": "after the reset"},
            headers=bearer(await live.api.guest()),
        )
        assert comment.status_code == 201, comment.text
        await asyncio.sleep(QUIET_SECONDS)
    revoked = {"code": "token_revoked", "message": "This admin token is no longer valid; log in again"}
    assert listener.named("error") == [{"event": "auth", "error": revoked}]
    assert listener.named("notification:new-comment") == []

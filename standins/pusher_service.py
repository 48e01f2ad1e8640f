"""Pusher Channels on loopback: the HTTP API the backend publishes to, checked the way Pusher documents
(library_auth_reference/rest-api.md): ``auth_signature`` over method, path and the sorted query with ``body_md5``, the
600 s timestamp window, at most 10 events per batch, at most 10 KB of data per event, channel-name rules; and the
WebSocket protocol 7 that ``pusher-js`` speaks (library_auth_reference/pusher-websockets-protocol.md, and pusher-js's
src/core/connection/protocol/protocol.ts, src/core/channels/channel.ts, src/core/pusher.ts):

- ``/app/{key}?protocol=7``: ``pusher:connection_established`` with a socket id and the activity timeout; an unknown
  key is refused with ``pusher:error`` 4001 and an older protocol with 4007, then the socket is closed with that code;
- ``pusher:subscribe``: a ``private-`` channel needs ``auth`` = ``<key>:hex(HMAC-SHA256(secret, socket_id:channel))``,
  else ``pusher:subscription_error`` on that channel and nothing of it is delivered; ``pusher:unsubscribe``;
- ``pusher:ping`` is answered with ``pusher:pong``; ``client-`` events are refused (``pusher:error``), as on an app
  that has not enabled client events: only what the backend publishes reaches a browser. With ``client_events``
  (the app setting), a ``client-`` event on a private channel the sender is subscribed to goes to the channel's
  other subscribers, as Pusher relays it: what a page must then ignore;
- what the HTTP API accepts goes to every socket subscribed to its channel (but the ``socket_id`` it excludes);
- with ``subscription_count`` (Pusher's "subscription counting" app setting), every subscribe and unsubscribe sends
  ``pusher_internal:subscription_count`` to the channel's subscribers.

Pusher bills every message delivered (one publish times every subscriber, pusher.com/docs/channels "How are
messages counted?"), so ``stats`` counts, per channel, the events published (with when, on the monotonic clock) and,
per socket, the events delivered; it refuses nothing for rate.

The signing functions here are written from the documentation, independently of the ``pusher`` SDK, so tests can
check the SDK (and our endpoints) against them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import re
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from standins.in_flight import InFlight
from standins.sockets import Connection, receive_json

CHANNEL_NAME = re.compile(r"\A[-a-zA-Z0-9_=@,.;]{1,164}\Z")
SOCKET_ID = re.compile(r"\A[0-9]+\.[0-9]+\Z")  # as Pusher's own (JavaScript's \d is ASCII; Python's is not)
MAX_BATCH = 10
MAX_DATA_BYTES = 10 * 1024
TIMESTAMP_WINDOW_SECONDS = 600
PROTOCOL = 7
ACTIVITY_TIMEOUT_SECONDS = 120


def hmac_hex(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def string_to_sign(method: str, path: str, params: dict[str, str]) -> str:
    """``METHOD\\nPATH\\nk=v&k=v``: every parameter but auth_signature, keys lowercased and sorted, not URL-escaped."""
    query = "&".join(f"{k.lower()}={v}" for k, v in sorted(params.items()) if k != "auth_signature")
    return f"{method}\n{path}\n{query}"


def channel_auth(key: str, secret: str, socket_id: str, channel: str) -> str:
    """The ``auth`` of a private-channel subscription: ``<key>:hex(HMAC-SHA256(secret, "<socket_id>:<channel>"))``."""
    return f"{key}:{hmac_hex(secret, f'{socket_id}:{channel}')}"


@dataclass
class PusherStats:
    published: Counter[str] = field(default_factory=Counter)  # channel -> events accepted
    published_at: dict[str, list[float]] = field(default_factory=dict)  # channel -> when each was accepted
    delivered: Counter[str] = field(default_factory=Counter)  # socket id -> events sent to it

    def as_dict(self) -> dict[str, Any]:
        return {"published": dict(self.published), "delivered": dict(self.delivered)}


@dataclass
class FakePusher:
    app_id: str = "4242"
    key: str = "fake-pusher-key"
    secret: str = "fake-pusher-secret"
    accepted: list[dict[str, Any]] = field(default_factory=list)  # events, in the order accepted
    requests: list[list[dict[str, Any]]] = field(default_factory=list)  # the events of each accepted request
    refusals: list[tuple[int, str]] = field(default_factory=list)
    fail_status: int | None = None  # answer every request with this status
    fail_from_request: int = 0  # ... once this many requests have been accepted
    delay_seconds: float = 0.0  # answer (and accept) only after this long
    subscription_count: bool = True  # the app setting "subscription counting"
    client_events: bool = False  # the app setting "enable client events"
    in_flight: InFlight = field(default_factory=InFlight)
    sockets: dict[str, Connection] = field(default_factory=dict)  # socket id -> the browser's connection
    subscribers: dict[str, set[str]] = field(default_factory=dict)  # channel -> socket ids
    socket_refusals: list[tuple[str, str]] = field(default_factory=list)  # (socket id, why), newest last
    stats: PusherStats = field(default_factory=PusherStats)

    def __post_init__(self) -> None:
        self.app = Starlette(
            routes=[
                Route("/apps/{app_id}/events", self._events, methods=["POST"]),
                Route("/apps/{app_id}/batch_events", self._batch_events, methods=["POST"]),
                WebSocketRoute("/app/{key}", self._socket),
            ]
        )

    def reset(self) -> None:
        self.accepted.clear()
        self.requests.clear()
        self.refusals.clear()
        self.fail_status = None
        self.fail_from_request = 0
        self.delay_seconds = 0.0
        self.client_events = False
        self.socket_refusals.clear()
        self.stats = PusherStats()

    def _refuse(self, status: int, message: str) -> Response:
        self.refusals.append((status, message))
        return PlainTextResponse(message, status_code=status)

    def check_signature(self, method: str, path: str, params: dict[str, str], body: bytes) -> str | None:
        """Why Pusher would answer 401, or None where the request is properly signed."""
        if params.get("auth_key") != self.key:
            return "Unknown auth_key"
        if params.get("auth_version") != "1.0":
            return "auth_version must be 1.0"
        try:
            skew = abs(int(params.get("auth_timestamp", "")) - time.time())
        except ValueError:
            return "auth_timestamp missing"
        if skew > TIMESTAMP_WINDOW_SECONDS:
            return "Timestamp expired: Given timestamp not within 600s of server time"
        if body and params.get("body_md5") != hashlib.md5(body).hexdigest():
            return "body_md5 does not match the body"
        expected = hmac_hex(self.secret, string_to_sign(method, path, params))
        if not hmac.compare_digest(expected, params.get("auth_signature", "")):
            return "Invalid signature: you should have sent HmacSHA256Hex(...)"
        return None

    async def _events(self, request: Request) -> Response:
        return await self._counted(request, batch=False)

    async def _batch_events(self, request: Request) -> Response:
        return await self._counted(request, batch=True)

    async def _counted(self, request: Request, *, batch: bool) -> Response:
        with self.in_flight.answering():
            return await self._accept(request, batch=batch)

    async def _accept(self, request: Request, *, batch: bool) -> Response:
        body = await request.body()  # read first, as a server does: a slow answer may still accept the events
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        if self.fail_status and len(self.requests) >= self.fail_from_request:
            return self._refuse(self.fail_status, "Internal error (told to fail)")
        if request.path_params["app_id"] != self.app_id:
            return self._refuse(404, "Unknown app")
        problem = self.check_signature(request.method, request.url.path, dict(request.query_params), body)
        if problem:
            return self._refuse(401, problem)
        try:
            payload = json.loads(body)
            events = payload["batch"] if batch else [{**payload, "channel": c} for c in payload["channels"]]
        except (ValueError, KeyError, TypeError):
            return self._refuse(400, "Body must be JSON with 'batch' (or 'name', 'channels', 'data')")
        if batch and len(events) > MAX_BATCH:
            return self._refuse(400, f"Batch too large ({len(events)} > {MAX_BATCH})")
        for event in events:
            problem, status = self._check_event(event)
            if problem:
                return self._refuse(status, problem)
        accepted = [{"channel": e["channel"], "name": e["name"], "data": e["data"]} for e in events]
        self.accepted.extend(accepted)
        self.requests.append(accepted)
        for event in events:
            self._fan_out(event)
        return JSONResponse({})

    def _fan_out(self, event: dict[str, Any]) -> None:
        channel = event["channel"]
        self.stats.published[channel] += 1
        self.stats.published_at.setdefault(channel, []).append(time.monotonic())
        message = {"event": event["name"], "channel": channel, "data": event["data"]}
        for socket_id in self.subscribers.get(channel, ()):
            if socket_id != event.get("socket_id"):
                self.stats.delivered[socket_id] += 1
                self.sockets[socket_id].send(message)

    async def _socket(self, socket: WebSocket) -> None:
        await socket.accept()
        connection = Connection(socket)
        refusal = self._handshake_refusal(socket)
        if refusal is not None:
            code, message = refusal
            connection.send({"event": "pusher:error", "data": {"code": code, "message": message}})
            await connection.close(code)
            return
        socket_id = f"{secrets.randbelow(10**9)}.{secrets.randbelow(10**9)}"
        self.sockets[socket_id] = connection
        established = {"socket_id": socket_id, "activity_timeout": ACTIVITY_TIMEOUT_SECONDS}
        connection.send({"event": "pusher:connection_established", "data": json.dumps(established)})
        try:
            while True:
                self._on_message(socket_id, await receive_json(socket))
        except WebSocketDisconnect:
            pass
        finally:
            del self.sockets[socket_id]
            for channel in [c for c, members in self.subscribers.items() if socket_id in members]:
                self._leave(socket_id, channel)
            await connection.finish()

    def _handshake_refusal(self, socket: WebSocket) -> tuple[int, str] | None:
        if socket.path_params["key"] != self.key:
            return (
                4001,
                f"App key {socket.path_params['key']} not in this cluster. Did you forget to specify the cluster?",
            )
        try:
            protocol = int(socket.query_params.get("protocol", "0"))
        except ValueError:
            protocol = 0
        if protocol < PROTOCOL:
            return 4007, f"Unsupported protocol version {protocol}"
        return None

    def _on_message(self, socket_id: str, message: Any) -> None:
        connection = self.sockets[socket_id]
        if not isinstance(message, dict) or not isinstance(message.get("event"), str):
            self._refuse_on_socket(socket_id, None, "Messages must be JSON objects with an event")
            return
        event, data = message["event"], message.get("data")
        if event == "pusher:ping":
            connection.send({"event": "pusher:pong", "data": {}})
        elif event == "pusher:subscribe" and isinstance(data, dict):
            self._subscribe(socket_id, data)
        elif event == "pusher:unsubscribe" and isinstance(data, dict):
            self._leave(socket_id, str(data.get("channel")))
        elif event.startswith("client-"):
            self._client_event(socket_id, message)
        else:
            self._refuse_on_socket(socket_id, None, f"Unsupported event {event[:50]!r}")

    def _client_event(self, socket_id: str, message: dict[str, Any]) -> None:
        channel = message.get("channel")
        if not self.client_events:
            self._refuse_on_socket(socket_id, None, "Client events are not enabled for this app")
        elif not isinstance(channel, str) or socket_id not in self.subscribers.get(channel, ()):
            self._refuse_on_socket(socket_id, None, "Client event rejected - you must be subscribed to the channel")
        elif not channel.startswith(("private-", "presence-")):
            self._refuse_on_socket(socket_id, None, "Client event rejected - only supported on private channels")
        else:
            relayed = {"event": message["event"], "channel": channel, "data": message.get("data")}
            for member in self.subscribers[channel] - {socket_id}:
                self.sockets[member].send(relayed)

    def _subscribe(self, socket_id: str, data: dict[str, Any]) -> None:
        channel = data.get("channel")
        if not isinstance(channel, str) or not CHANNEL_NAME.match(channel):
            self._refuse_on_socket(socket_id, None, f"Invalid channel name {channel!r}")
            return
        if channel.startswith(("private-", "presence-")):
            expected = channel_auth(self.key, self.secret, socket_id, channel)
            if not hmac.compare_digest(expected, str(data.get("auth", ""))):
                why = f"Invalid signature: Expected HMAC SHA256 hex digest of {socket_id}:{channel}"
                self._refuse_on_socket(socket_id, channel, why)
                return
        self.subscribers.setdefault(channel, set()).add(socket_id)
        self.sockets[socket_id].send(
            {"event": "pusher_internal:subscription_succeeded", "channel": channel, "data": "{}"}
        )
        self._count(channel)

    def _leave(self, socket_id: str, channel: str) -> None:
        members = self.subscribers.get(channel)
        if members is None or socket_id not in members:
            return
        members.discard(socket_id)
        if not members:
            del self.subscribers[channel]
        self._count(channel)

    def _count(self, channel: str) -> None:
        if not self.subscription_count:
            return
        members = self.subscribers.get(channel, set())
        count = json.dumps({"subscription_count": len(members)})
        for socket_id in members:
            self.sockets[socket_id].send(
                {"event": "pusher_internal:subscription_count", "channel": channel, "data": count}
            )

    def _refuse_on_socket(self, socket_id: str, channel: str | None, why: str) -> None:
        self.socket_refusals.append((socket_id, why))
        if channel is None:
            self.sockets[socket_id].send({"event": "pusher:error", "data": {"code": None, "message": why}})
        else:
            error = {"type": "AuthError", "error": why, "status": 401}
            self.sockets[socket_id].send({"event": "pusher:subscription_error", "channel": channel, "data": error})

    async def close_sockets(self) -> None:
        """Every browser is disconnected (as when the service restarts)."""
        for connection in list(self.sockets.values()):
            with contextlib.suppress(Exception):
                await connection.close(4200)

    @staticmethod
    def _check_event(event: Any) -> tuple[str | None, int]:
        if not isinstance(event, dict) or not isinstance(event.get("name"), str) or not event["name"]:
            return "Each event needs a name", 400
        if len(event["name"]) > 200:
            return "Event name too long", 400
        if not isinstance(event.get("channel"), str) or not CHANNEL_NAME.match(event["channel"]):
            return f"Invalid channel name {event.get('channel')!r}", 400
        if not isinstance(event.get("data"), str):
            return "data must be a string", 400
        if len(event["data"].encode()) > MAX_DATA_BYTES:
            return f"Payload too large: data is over {MAX_DATA_BYTES} bytes", 413
        if "socket_id" in event and not SOCKET_ID.match(str(event["socket_id"])):
            return "Invalid socket_id", 400
        return None, 200

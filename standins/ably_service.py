"""Ably on loopback: the REST endpoint checks requests the way Ably documents them (api/rest-api.mdx,
api/token-request-spec.mdx, pub-sub/advanced.mdx#idempotency), and the realtime WebSocket speaks the protocol of
the ``ably`` SDK (ably-js src/common/lib/types/protocolmessagecommon.ts for the actions and flags,
src/common/lib/transport/transport.ts and connectionmanager.ts for connect, heartbeats and re-authentication,
src/common/lib/client/realtimechannel.ts for attach and delivery):

- ``POST /keys/{keyName}/requestToken``: the TokenRequest ``mac``, the 2-minute timestamp window, single-use nonces,
  the TTL limit; answers TokenDetails;
- ``POST /messages`` (batch publish): ``Basic`` (key) or ``Bearer`` (token) auth, the token's capability, the
  BatchSpec shape and limits, message id formats, and the 2-minute deduplication of message ids;
- JSON or msgpack bodies, answered in kind; CORS open, as Ably's is, for the browser's ``requestToken``;
- ``/?access_token=`` (or ``key=``) ``&format=json``: CONNECTED with connectionDetails (clientId, connectionKey,
  maxIdleInterval, ...), a HEARTBEAT every ``heartbeat_seconds`` and an answer to each the client sends; ATTACH is
  answered ATTACHED where the token grants ``subscribe`` on the channel and ERROR 40160 where it does not; what
  ``/messages`` accepts is delivered as MESSAGE to the connections attached to its channel; a publish from the
  browser is refused (NACK 40160: our tokens never grant ``publish``); when the token expires the connection gets
  DISCONNECTED 40142 and is closed, and the SDK comes back with a new token from our ``authUrl``/``authCallback``;
  an AUTH with a new token replaces it in place;
- an attach with the ``occupancy: metrics`` channel param gets ``[meta]occupancy`` messages, whose
  ``metrics.subscribers`` is the number of connections attached to the channel.

Ably's limits (general/limits.mdx; platform/errors/codes 42913, 42915, 80020), over a sliding second:

- at most ``channel_message_rate`` (50) messages published per channel, every publisher together and each message
  of a batch counted: a BatchSpec that would go over is refused whole with 429 / 42913 ("the publish is rejected and
  the message is not delivered"), alone as HTTP 429, beside accepted ones as a 40020 partial failure;
- at most ``connection_message_rate`` (50) messages delivered per connection: the excess is dropped (42915) and
  the channel gets the continuity loss, an ATTACHED without the RESUMED flag carrying error 80020, which ably-js
  turns into the channel's ``update`` event (realtimechannel.ts, ``processMessage`` on ATTACHED while attached).
  One signal covers every message dropped before it; it is sent once the connection may receive again, so a client
  that catches up on it finds every dropped message already stored. Occupancy events are not counted.

What was published per channel and delivered or dropped per connection is counted (``stats``), for the tests and
the storm benchmark.

The mac and capability functions are written from the documentation, independently of the ``ably`` SDK.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack  # type: ignore[import-untyped]
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from standins.in_flight import InFlight
from standins.sockets import Connection, receive_json

DEDUP_WINDOW_MS = 2 * 60 * 1000
TIMESTAMP_WINDOW_MS = 2 * 60 * 1000
MAX_TTL_MS = 24 * 3600 * 1000
MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_CHANNELS_PER_SPEC = 100
MAX_MESSAGES_PER_SPEC = 1000

# ProtocolMessage actions and flags (ably-js src/common/lib/types/protocolmessagecommon.ts)
HEARTBEAT, ACK, NACK, CONNECTED, DISCONNECTED, CLOSE, CLOSED, ERROR = 0, 1, 2, 4, 6, 7, 8, 9
ATTACH, ATTACHED, DETACH, DETACHED, PRESENCE, MESSAGE, AUTH = 10, 11, 12, 13, 14, 15, 17
FLAG_SUBSCRIBE = 1 << 18  # no RESUMED (1 << 2) on any ATTACHED: this stand-in keeps no continuity across attaches
OCCUPANCY_EVENT = "[meta]occupancy"
CONNECTION_STATE_TTL_MS = 120_000
MESSAGE_RATE = 50  # Ably's per-channel inbound and per-connection outbound message rate, every package
RATE_WINDOW_SECONDS = 1.0
CHANNEL_RATE_EXCEEDED = 42913
CONTINUITY_LOST = 80020


def token_request_mac(secret: str, request: dict[str, Any]) -> str:
    """base64(HMAC-SHA256(secret, "keyName\\n ttl\\n capability\\n clientId\\n timestamp\\n nonce\\n"))."""
    fields = ("keyName", "ttl", "capability", "clientId", "timestamp", "nonce")
    text = "".join(f"{'' if request.get(name) is None else request[name]}\n" for name in fields)
    return base64.b64encode(hmac.new(secret.encode(), text.encode(), hashlib.sha256).digest()).decode()


def capability_allows(capability: dict[str, list[str]], channel: str, operation: str) -> bool:
    """Whether a capability grants ``operation`` on ``channel``: ``*`` is every channel, a trailing ``:*`` every
    channel under that prefix (whole ``:``-segments), ``["*"]`` every operation."""
    for resource, operations in capability.items():
        matches = (
            resource == "*"
            or resource == channel
            or (resource.endswith(":*") and channel.startswith(resource[:-1]) and len(channel) > len(resource) - 1)
        )
        if matches and (operation in operations or "*" in operations):
            return True
    return False


@dataclass
class Delivered:
    channel: str
    id: str
    name: str | None
    data: Any
    at_ms: int


class SlidingWindow:
    """Message counts within the last second, on the limits' clock (not the service's, which tests move by minutes)."""

    def __init__(self) -> None:
        self._times: deque[float] = deque()

    def count(self, now: float) -> int:
        while self._times and self._times[0] <= now - RATE_WINDOW_SECONDS:
            self._times.popleft()
        return len(self._times)

    def add(self, now: float, messages: int = 1) -> None:
        self._times.extend([now] * messages)

    def room_again_in(self, now: float) -> float:
        """Seconds until the oldest message counted leaves the window."""
        return max(0.0, self._times[0] + RATE_WINDOW_SECONDS - now) if self._times else 0.0


@dataclass
class Token:
    key_name: str
    capability: dict[str, list[str]]
    client_id: str | None
    expires_ms: int


@dataclass
class RealtimeConnection:
    """One browser's realtime connection: its token, the channels it attached, those that asked for occupancy."""

    id: str
    wire: Connection
    token: Token
    attached: set[str] = field(default_factory=set)
    occupancy: set[str] = field(default_factory=set)
    expiry: asyncio.Task[None] | None = None
    outbound: SlidingWindow = field(default_factory=SlidingWindow)
    continuity_losses: dict[str, asyncio.Task[None]] = field(default_factory=dict)  # channel -> signal to come


class AblyError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class AblyStats:
    """What the limits saw: messages accepted per channel (with when, on the monotonic clock), messages refused by
    the channel rate per channel, and messages delivered, dropped and continuity losses signalled per connection."""

    published: Counter[str] = field(default_factory=Counter)
    published_at: dict[str, list[float]] = field(default_factory=dict)  # on the limits' clock
    refused: Counter[str] = field(default_factory=Counter)
    delivered: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    continuity_losses: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "published": dict(self.published),
            "refused": dict(self.refused),
            "delivered": dict(self.delivered),
            "dropped": dict(self.dropped),
            "continuityLosses": dict(self.continuity_losses),
        }


@dataclass
class FakeAbly:
    key_name: str = "fakeApp.fakeKey"
    secret: str = "fake-ably-secret-0123456789"
    delivered: list[Delivered] = field(default_factory=list)  # what subscribers would receive
    requests: list[list[dict[str, Any]]] = field(default_factory=list)  # the BatchSpecs of each accepted publish
    auth_schemes: list[str] = field(default_factory=list)  # "Basic" or "Bearer", per accepted publish
    tokens: dict[str, Token] = field(default_factory=dict)
    refusals: list[tuple[int, int, str]] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    fail_status: int | None = None
    fail_channels: dict[str, int] = field(default_factory=dict)  # channel -> status: a 40020 partial failure
    delay_seconds: float = 0.0
    clock_offset_ms: int = 0  # moves the service's clock (to step past the dedup window)
    in_flight: InFlight = field(default_factory=InFlight)
    heartbeat_seconds: float = 15.0  # also the maxIdleInterval promised to the client
    connections: dict[str, RealtimeConnection] = field(default_factory=dict)
    realtime_refusals: list[tuple[str, int, str]] = field(default_factory=list)  # (channel or "", code, message)
    rate_clock: Callable[[], float] = time.monotonic  # the limits' clock, in seconds (a test may hold it still)
    channel_message_rate: int = MESSAGE_RATE
    connection_message_rate: int = MESSAGE_RATE
    stats: AblyStats = field(default_factory=lambda: AblyStats())
    _inbound: dict[str, SlidingWindow] = field(default_factory=dict)
    _nonces: set[tuple[str, int]] = field(default_factory=set)
    _first_seen: dict[tuple[str, str], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        cors = Middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"])
        self.app = Starlette(
            routes=[
                Route("/keys/{key_name}/requestToken", self._request_token, methods=["POST"]),
                Route("/messages", self._batch_publish, methods=["POST"]),
                WebSocketRoute("/", self._realtime),
            ],
            middleware=[cors],
        )

    @property
    def key(self) -> str:
        return f"{self.key_name}:{self.secret}"

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.clock_offset_ms

    def reset(self) -> None:
        """A fresh app: nothing delivered, no ids seen, no tokens issued, no failures."""
        self._first_seen.clear()
        self.tokens.clear()
        self.delivered.clear()
        self.requests.clear()
        self.auth_schemes.clear()
        self.refusals.clear()
        self.content_types.clear()
        self.fail_status = None
        self.fail_channels = {}
        self.delay_seconds = 0.0
        self.realtime_refusals.clear()
        self.stats = AblyStats()
        self._inbound.clear()

    def exchange(self, token_request: dict[str, Any]) -> Token:
        """What Ably does with a TokenRequest a browser sends it; raises ``AblyError`` as Ably would refuse it."""
        if token_request.get("keyName") != self.key_name:
            raise AblyError(404, 40400, "No such key")
        if not hmac.compare_digest(token_request_mac(self.secret, token_request), str(token_request.get("mac"))):
            raise AblyError(401, 40101, "Invalid mac")
        timestamp = token_request.get("timestamp")
        if not isinstance(timestamp, int) or abs(timestamp - self.now_ms()) > TIMESTAMP_WINDOW_MS:
            raise AblyError(401, 40104, "Timestamp not current")
        nonce = str(token_request.get("nonce") or "")
        if len(nonce) < 16 or (nonce, timestamp) in self._nonces:
            raise AblyError(401, 40105, "Nonce value replayed or too short")
        self._nonces.add((nonce, timestamp))
        ttl = token_request.get("ttl") or 3600 * 1000
        if not isinstance(ttl, int) or ttl <= 0 or ttl > MAX_TTL_MS:
            raise AblyError(400, 40003, "Invalid ttl")
        capability = json.loads(token_request.get("capability") or '{"*":["*"]}')
        if not capability or not all(isinstance(ops, list) and ops for ops in capability.values()):
            raise AblyError(400, 40000, "Invalid capability")
        return Token(self.key_name, capability, token_request.get("clientId"), self.now_ms() + ttl)

    async def _request_token(self, request: Request) -> Response:
        try:
            body = await self._decode(request)
            if request.path_params["key_name"] != body.get("keyName"):
                raise AblyError(400, 40000, "keyName does not match the path")
            token = self.exchange(body)
        except AblyError as exc:
            return self._error(request, exc)
        value = secrets.token_urlsafe(16)
        self.tokens[value] = token
        details = {
            "token": value,
            "keyName": token.key_name,
            "issued": self.now_ms(),
            "expires": token.expires_ms,
            "capability": json.dumps(token.capability),
            "clientId": token.client_id,
        }
        return self._answer(request, details, 200)

    def _authenticate(self, request: Request) -> Token:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        try:
            decoded = base64.b64decode(credentials, validate=True).decode()
        except ValueError:
            raise AblyError(401, 40101, "Malformed Authorization header") from None
        if scheme == "Basic" and hmac.compare_digest(decoded, self.key):
            return Token(self.key_name, {"*": ["*"]}, None, self.now_ms() + 1)
        if scheme == "Bearer" and decoded in self.tokens:
            token = self.tokens[decoded]
            if token.expires_ms < self.now_ms():
                raise AblyError(401, 40142, "Token expired")
            return token
        raise AblyError(401, 40101, "Invalid credentials")

    async def _batch_publish(self, request: Request) -> Response:
        with self.in_flight.answering():
            return await self._publish(request)

    async def _publish(self, request: Request) -> Response:
        await request.body()  # read first, as a server does: a slow answer may still accept the messages
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        if self.fail_status:
            return self._error(request, AblyError(self.fail_status, self.fail_status * 100, "Told to fail"))
        try:
            token = self._authenticate(request)
            if int(request.headers.get("content-length", "0")) >= MAX_BODY_BYTES:
                raise AblyError(400, 40009, "Request body too large")
            body = await self._decode(request)
            specs = body if isinstance(body, list) else [body]
            checked = [self._check_spec(spec, token) for spec in specs]
        except AblyError as exc:
            return self._error(request, exc)
        results: list[dict[str, Any]] = []
        for channels, messages in checked:
            for channel in channels:
                if channel in self.fail_channels:
                    status = self.fail_channels[channel]
                    error = {"code": status * 100, "statusCode": status, "message": "channel failed"}
                    results.append({"channel": channel, "error": error})
                    continue
                if not self._admit(channel, len(messages)):
                    results.append(
                        {"channel": channel, "error": _error_body(_rate_exceeded(self.channel_message_rate))}
                    )
                    continue
                self._deliver(channel, messages)
                results.append({"channel": channel, "messageId": messages[0].get("id")})
        if results and all(r.get("error", {}).get("code") == CHANNEL_RATE_EXCEEDED for r in results):
            return self._error(request, _rate_exceeded(self.channel_message_rate))
        self.requests.append(specs)
        self.auth_schemes.append(request.headers["authorization"].split(" ")[0])
        if any("error" in result for result in results):
            top = {"code": 40020, "statusCode": 400, "message": "Batched response includes errors"}
            return self._answer(request, {"error": top, "batchResponse": results}, 400)
        return self._answer(request, results, 200)

    def _check_spec(self, spec: Any, token: Token) -> tuple[list[str], list[dict[str, Any]]]:
        if not isinstance(spec, dict) or "channels" not in spec or "messages" not in spec:
            raise AblyError(400, 40000, "A BatchSpec needs 'channels' and 'messages'")
        channels = spec["channels"] if isinstance(spec["channels"], list) else [spec["channels"]]
        messages = spec["messages"] if isinstance(spec["messages"], list) else [spec["messages"]]
        if not 1 <= len(channels) <= MAX_CHANNELS_PER_SPEC or not 1 <= len(messages) <= MAX_MESSAGES_PER_SPEC:
            raise AblyError(400, 40000, "Too many (or no) channels or messages in a BatchSpec")
        for channel in channels:
            if not isinstance(channel, str) or not channel or channel[0] in "[:" or "\n" in channel:
                raise AblyError(400, 40010, f"Invalid channel name {channel!r}")
            if not capability_allows(token.capability, channel, "publish"):
                raise AblyError(401, 40160, f"Action not permitted: publish on {channel}")
        ids = [m.get("id") for m in messages if isinstance(m, dict)]
        if len(messages) > 1 and any(ids):
            base = str(ids[0]).rsplit(":", 1)[0]
            if ids != [f"{base}:{i}" for i in range(len(messages))]:
                raise AblyError(400, 40031, "Client-specified message ids do not match the required format")
        for message in messages:
            if not isinstance(message, dict) or not isinstance(message.get("data"), str | dict | list | None):
                raise AblyError(400, 40011, "Invalid message data")
            if message.get("encoding") == "json":
                try:
                    json.loads(message["data"])
                except (TypeError, ValueError):
                    raise AblyError(400, 40013, "data is not the JSON its encoding says") from None
        return channels, messages

    def _admit(self, channel: str, messages: int) -> bool:
        """Counts ``messages`` published on ``channel`` if the channel's rate has room for all of them."""
        now = self.rate_clock()
        window = self._inbound.setdefault(channel, SlidingWindow())
        if window.count(now) + messages > self.channel_message_rate:
            self.stats.refused[channel] += messages
            return False
        window.add(now, messages)
        self.stats.published[channel] += messages
        self.stats.published_at.setdefault(channel, []).extend([now] * messages)
        return True

    def _deliver(self, channel: str, messages: list[dict[str, Any]]) -> None:
        now = self.now_ms()
        for message in messages:
            if message.get("id") is not None:
                first = self._first_seen.get((channel, message["id"]))
                if first is not None and now - first < DEDUP_WINDOW_MS:
                    continue  # a duplicate within the window: accepted, not delivered again
                self._first_seen[(channel, message["id"])] = now
            data = message.get("data")
            if message.get("encoding") == "json":
                data = json.loads(str(data))
            self.delivered.append(Delivered(channel, str(message.get("id")), message.get("name"), data, now))
            self._send_to_attached(channel, [message])

    def _send_to_attached(self, channel: str, messages: list[dict[str, Any]]) -> None:
        wire = [{k: v for k, v in m.items() if k in ("id", "name", "data", "encoding", "clientId")} for m in messages]
        now = self.rate_clock()
        for connection in self.connections.values():
            if channel not in connection.attached:
                continue
            if connection.outbound.count(now) + len(wire) > self.connection_message_rate:
                self.stats.dropped[connection.id] += len(wire)
                self._lose_continuity(connection, channel, connection.outbound.room_again_in(now))
                continue
            connection.outbound.add(now, len(wire))
            self.stats.delivered[connection.id] += len(wire)
            frame = {"action": MESSAGE, "channel": channel, "timestamp": self.now_ms(), "messages": wire}
            connection.wire.send(frame)

    def _lose_continuity(self, connection: RealtimeConnection, channel: str, delay: float) -> None:
        """Schedules the channel's continuity loss for when the connection may receive again (one per episode)."""
        if channel in connection.continuity_losses:
            return

        async def signal() -> None:
            await asyncio.sleep(delay)
            del connection.continuity_losses[channel]
            if channel in connection.attached:
                self.stats.continuity_losses[connection.id] += 1
                lost = AblyError(429, CONTINUITY_LOST, "Continuity loss due to maximum subscribe message rate exceeded")
                frame = {"action": ATTACHED, "channel": channel, "flags": FLAG_SUBSCRIBE, "error": _error_body(lost)}
                connection.wire.send(frame)

        connection.continuity_losses[channel] = asyncio.create_task(signal())

    # The realtime WebSocket.

    def _connection_token(self, socket: WebSocket) -> Token:
        params = socket.query_params
        if params.get("format", "json") != "json":
            raise AblyError(400, 40000, "This stand-in speaks format=json only")
        if "key" in params:
            if not hmac.compare_digest(params["key"], self.key):
                raise AblyError(401, 40101, "Invalid key")
            return Token(self.key_name, {"*": ["*"]}, params.get("clientId"), self.now_ms() + MAX_TTL_MS)
        token = self.tokens.get(params.get("access_token", ""))
        if token is None:
            raise AblyError(401, 40101, "Invalid accessToken")
        if token.expires_ms <= self.now_ms():
            raise AblyError(401, 40142, "Token expired")
        if params.get("clientId") not in (None, token.client_id):
            raise AblyError(400, 40102, "clientId does not match the token's")
        return token

    async def _realtime(self, socket: WebSocket) -> None:
        await socket.accept()
        wire = Connection(socket)
        try:
            token = self._connection_token(socket)
        except AblyError as exc:
            # A token error leaves the SDK free to get a new token and come back (RTN14b); others fail it.
            self.realtime_refusals.append(("", exc.code, exc.message))
            wire.send({"action": ERROR, "error": _error_body(exc)})
            await wire.close()
            return
        connection = RealtimeConnection(secrets.token_hex(8), wire, token)
        self.connections[connection.id] = connection
        self._send_connected(connection)
        self._watch_expiry(connection)
        heartbeats = asyncio.create_task(self._heartbeats(connection))
        try:
            while True:
                message = await receive_json(socket)
                if await self._on_protocol_message(connection, message):
                    break
        except WebSocketDisconnect:
            pass
        finally:
            heartbeats.cancel()
            if connection.expiry is not None:
                connection.expiry.cancel()
            for pending in connection.continuity_losses.values():
                pending.cancel()
            del self.connections[connection.id]
            for channel in connection.attached:
                self._occupancy_changed(channel)
            await wire.finish()

    def _send_connected(self, connection: RealtimeConnection) -> None:
        details = {
            "clientId": connection.token.client_id,
            "connectionKey": f"{connection.id}!key",
            "maxMessageSize": 65536,
            "maxInboundRate": 50,
            "maxFrameSize": 524288,
            "serverId": "standin",
            "connectionStateTtl": CONNECTION_STATE_TTL_MS,
            "maxIdleInterval": int(self.heartbeat_seconds * 1000),
        }
        connection.wire.send(
            {
                "action": CONNECTED,
                "connectionId": connection.id,
                "connectionKey": details["connectionKey"],
                "connectionDetails": details,
            }
        )

    def _watch_expiry(self, connection: RealtimeConnection) -> None:
        if connection.expiry is not None:
            connection.expiry.cancel()
        connection.expiry = asyncio.create_task(self._expire(connection, connection.token))

    async def _expire(self, connection: RealtimeConnection, token: Token) -> None:
        await asyncio.sleep(max(0.0, (token.expires_ms - self.now_ms()) / 1000))
        expired = AblyError(401, 40142, "Token expired")
        self.realtime_refusals.append(("", expired.code, expired.message))
        connection.wire.send({"action": DISCONNECTED, "error": _error_body(expired)})
        await connection.wire.close()

    async def _heartbeats(self, connection: RealtimeConnection) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            connection.wire.send({"action": HEARTBEAT})

    async def _on_protocol_message(self, connection: RealtimeConnection, message: Any) -> bool:
        """Answers one ProtocolMessage; True where the connection is to end."""
        if not isinstance(message, dict) or not isinstance(message.get("action"), int):
            refused = AblyError(400, 40000, "A ProtocolMessage is a JSON object with an action")
            connection.wire.send({"action": ERROR, "error": _error_body(refused)})
            await connection.wire.close()
            return True
        action, channel = message["action"], message.get("channel")
        if action == HEARTBEAT:
            connection.wire.send({"action": HEARTBEAT, **({"id": message["id"]} if "id" in message else {})})
        elif action == ATTACH and isinstance(channel, str):
            self._attach(connection, channel, message)
        elif action == DETACH and isinstance(channel, str):
            if channel in connection.attached:
                connection.attached.discard(channel)
                connection.occupancy.discard(channel)
                self._occupancy_changed(channel)
            connection.wire.send({"action": DETACHED, "channel": channel})
        elif action in (MESSAGE, PRESENCE):
            refused = AblyError(401, 40160, f"Action not permitted: publish on {channel}")
            self.realtime_refusals.append((str(channel), refused.code, refused.message))
            serial = message.get("msgSerial")
            connection.wire.send({"action": NACK, "msgSerial": serial, "count": 1, "error": _error_body(refused)})
        elif action == AUTH:
            self._reauthorize(connection, message.get("auth"))
        elif action == CLOSE:
            connection.wire.send({"action": CLOSED})
            await connection.wire.close()
            return True
        return False

    def _attach(self, connection: RealtimeConnection, channel: str, message: dict[str, Any]) -> None:
        if not capability_allows(connection.token.capability, channel, "subscribe"):
            refused = AblyError(401, 40160, f"Channel denied access based on given capability; channel = {channel}")
            self.realtime_refusals.append((channel, refused.code, refused.message))
            connection.wire.send({"action": ERROR, "channel": channel, "error": _error_body(refused)})
            return
        params: dict[str, Any] = message["params"] if isinstance(message.get("params"), dict) else {}
        connection.attached.add(channel)
        if params.get("occupancy") == "metrics":
            connection.occupancy.add(channel)
        connection.wire.send({"action": ATTACHED, "channel": channel, "flags": FLAG_SUBSCRIBE, "params": params})
        self._occupancy_changed(channel)

    def _reauthorize(self, connection: RealtimeConnection, auth: Any) -> None:
        token = self.tokens.get(auth.get("accessToken", "")) if isinstance(auth, dict) else None
        if token is None or token.expires_ms <= self.now_ms() or token.client_id != connection.token.client_id:
            refused = AblyError(401, 40101, "Invalid accessToken for this connection")
            self.realtime_refusals.append(("", refused.code, refused.message))
            connection.wire.send({"action": ERROR, "error": _error_body(refused)})
            return
        connection.token = token
        for channel in [c for c in connection.attached if not capability_allows(token.capability, c, "subscribe")]:
            connection.attached.discard(channel)
            refused = AblyError(401, 40160, f"Channel denied access based on given capability; channel = {channel}")
            connection.wire.send({"action": DETACHED, "channel": channel, "error": _error_body(refused)})
        self._send_connected(connection)
        self._watch_expiry(connection)

    def advance_clock(self, milliseconds: int) -> None:
        """Moves the service's clock on: tokens that expire within it expire now, on live connections too."""
        self.clock_offset_ms += milliseconds
        for connection in self.connections.values():
            self._watch_expiry(connection)

    def subscriber_count(self, channel: str) -> int:
        return sum(channel in connection.attached for connection in self.connections.values())

    def _occupancy_changed(self, channel: str) -> None:
        metrics = {
            "connections": self.subscriber_count(channel),
            "subscribers": self.subscriber_count(channel),
            "publishers": 0,
            "presenceConnections": 0,
            "presenceMembers": 0,
            "presenceSubscribers": 0,
        }
        message = {"name": OCCUPANCY_EVENT, "data": {"metrics": metrics}, "id": f"occupancy-{secrets.token_hex(6)}:0"}
        frame = {"action": MESSAGE, "channel": channel, "timestamp": self.now_ms(), "messages": [message]}
        for connection in self.connections.values():
            if channel in connection.occupancy:
                connection.wire.send(frame)

    async def close_connections(self) -> None:
        """Every browser is disconnected (as when a frontend restarts)."""
        for connection in list(self.connections.values()):
            with contextlib.suppress(Exception):
                await connection.wire.close()

    async def _decode(self, request: Request) -> Any:
        raw = await request.body()
        content_type = request.headers.get("content-type", "")
        self.content_types.append(content_type)
        try:
            if content_type.startswith("application/x-msgpack"):
                return msgpack.unpackb(raw, raw=False)
            if content_type.startswith("application/json"):
                return json.loads(raw)
        except ValueError:
            raise AblyError(400, 40000, "Unreadable body") from None
        raise AblyError(415, 41500, f"Unsupported content type {content_type!r}")

    def _answer(self, request: Request, content: Any, status: int) -> Response:
        if request.headers.get("content-type", "").startswith("application/x-msgpack"):
            return Response(msgpack.packb(content), status, media_type="application/x-msgpack")
        return Response(json.dumps(content), status, media_type="application/json")

    def _error(self, request: Request, exc: AblyError) -> Response:
        self.refusals.append((exc.status, exc.code, exc.message))
        response = self._answer(request, {"error": _error_body(exc)}, exc.status)
        response.headers["X-Ably-Errorcode"] = str(exc.code)
        response.headers["X-Ably-Errormessage"] = exc.message
        return response


def _rate_exceeded(rate: int) -> AblyError:
    return AblyError(
        429,
        CHANNEL_RATE_EXCEEDED,
        f"Rate limit exceeded; request rejected (nonfatal); metric = channel.maxRate; permitted rate = {rate}",
    )


def _error_body(exc: AblyError) -> dict[str, Any]:
    return {"code": exc.code, "statusCode": exc.status, "message": exc.message}

"""An Ably REST endpoint on loopback that checks requests the way Ably documents them (api/rest-api.mdx,
api/token-request-spec.mdx, pub-sub/advanced.mdx#idempotency):

- ``POST /keys/{keyName}/requestToken``: the TokenRequest ``mac``, the 2-minute timestamp window, single-use nonces,
  the TTL limit; answers TokenDetails;
- ``POST /messages`` (batch publish): ``Basic`` (key) or ``Bearer`` (token) auth, the token's capability, the
  BatchSpec shape and limits, message id formats, and the 2-minute deduplication of message ids;
- JSON or msgpack bodies, answered in kind.

The mac and capability functions are written from the documentation, independently of the ``ably`` SDK.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import msgpack  # type: ignore[import-untyped]
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from standins.in_flight import InFlight

DEDUP_WINDOW_MS = 2 * 60 * 1000
TIMESTAMP_WINDOW_MS = 2 * 60 * 1000
MAX_TTL_MS = 24 * 3600 * 1000
MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_CHANNELS_PER_SPEC = 100
MAX_MESSAGES_PER_SPEC = 1000


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


@dataclass
class Token:
    key_name: str
    capability: dict[str, list[str]]
    client_id: str | None
    expires_ms: int


class AblyError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


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
    _nonces: set[tuple[str, int]] = field(default_factory=set)
    _first_seen: dict[tuple[str, str], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.app = Starlette(
            routes=[
                Route("/keys/{key_name}/requestToken", self._request_token, methods=["POST"]),
                Route("/messages", self._batch_publish, methods=["POST"]),
            ]
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
                self._deliver(channel, messages)
                results.append({"channel": channel, "messageId": messages[0].get("id")})
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
        response = self._answer(
            request, {"error": {"code": exc.code, "statusCode": exc.status, "message": exc.message}}, exc.status
        )
        response.headers["X-Ably-Errorcode"] = str(exc.code)
        response.headers["X-Ably-Errormessage"] = exc.message
        return response

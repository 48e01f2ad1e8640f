"""A Pusher Channels HTTP API on loopback that checks requests the way Pusher documents
(library_auth_reference/rest-api.md): ``auth_signature`` over method, path and the sorted query with ``body_md5``, the
600 s timestamp window, at most 10 events per batch, at most 10 KB of data per event, channel-name rules.

The signing functions here are written from the documentation, independently of the ``pusher`` SDK, so tests can
check the SDK (and our endpoints) against them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from standins.in_flight import InFlight

CHANNEL_NAME = re.compile(r"\A[-a-zA-Z0-9_=@,.;]{1,164}\Z")
SOCKET_ID = re.compile(r"\A\d+\.\d+\Z")
MAX_BATCH = 10
MAX_DATA_BYTES = 10 * 1024
TIMESTAMP_WINDOW_SECONDS = 600


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
    in_flight: InFlight = field(default_factory=InFlight)

    def __post_init__(self) -> None:
        self.app = Starlette(
            routes=[
                Route("/apps/{app_id}/events", self._events, methods=["POST"]),
                Route("/apps/{app_id}/batch_events", self._batch_events, methods=["POST"]),
            ]
        )

    def reset(self) -> None:
        self.accepted.clear()
        self.requests.clear()
        self.refusals.clear()
        self.fail_status = None
        self.fail_from_request = 0
        self.delay_seconds = 0.0

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
        return JSONResponse({})

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

"""Pusher Channels (or a self-hosted Pusher-protocol server: soketi, Reverb, Sockudo) through the ``pusher`` SDK.

Contract beyond ``RealtimeProvider``:
- logical channels map to ``private-`` channels (``event:{slug}`` <-> ``private-event-{slug}``, ``admin`` <->
  ``private-admin``) by ``wire_channel`` / ``logical_channel``, the only place that knows Pusher's names;
- ``publish`` sends ``batch_events`` requests of at most 10 events, each payload checked to be at most 10 KB of UTF-8
  before anything is sent (the SDK measures Python object size instead, and does not cap the batch);
- ``sign_subscription`` answers pusher-js's channel authorization: it checks the socket id and the channel name,
  asks ``core.access`` (through the check it is given) whether the caller may subscribe, and signs.
Pusher has no server-side deduplication: the payload carries ``id`` and browsers drop ids they have seen.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import httpx
import pusher

from core.errors import ForbiddenError, InvalidInputError
from core.realtime.base import ChannelGrant, RealtimeError, RealtimeMessage, RealtimeProvider, SubscriptionCheck
from core.realtime.channels import ADMIN_CHANNEL, EVENT_PREFIX, parse_channel
from core.realtime.wire import MAX_PAYLOAD_BYTES, encode
from core.settings import Settings

AUTH_ENDPOINT = "/api/realtime/pusher/auth"
MAX_BATCH = 10  # per batch_events request on multi-tenant clusters
MAX_CHANNEL_LENGTH = 164
_PRIVATE_ADMIN = "private-admin"
_PRIVATE_EVENT = "private-event-"
_CHANNEL_CHARS = re.compile(r"\A[-a-zA-Z0-9_=@,.;]+\Z")
_SOCKET_ID = re.compile(r"\A[0-9]+\.[0-9]+\Z")  # ASCII digits: \d takes any script's


def wire_channel(logical: str) -> str:
    """The Pusher channel of a logical channel (Pusher forbids ``:``)."""
    channel = parse_channel(logical)
    if channel is None:
        raise ValueError(f"not a logical channel: {logical!r}")
    wire = _PRIVATE_ADMIN if channel.event_slug is None else f"{_PRIVATE_EVENT}{channel.event_slug}"
    if len(wire) > MAX_CHANNEL_LENGTH or not _CHANNEL_CHARS.match(wire):
        raise ValueError(f"{wire!r} is not a valid Pusher channel name")
    return wire


def logical_channel(wire: str) -> str | None:
    """The logical channel a Pusher channel name stands for, or None where it is not one of ours."""
    if wire == _PRIVATE_ADMIN:
        return ADMIN_CHANNEL
    if wire.startswith(_PRIVATE_EVENT):
        logical = EVENT_PREFIX + wire[len(_PRIVATE_EVENT) :]
        return logical if parse_channel(logical) is not None else None
    return None


def is_valid_socket_id(socket_id: str) -> bool:
    return bool(_SOCKET_ID.match(socket_id))


class HttpxBackend:
    """The SDK's HTTP backend on one shared ``httpx.AsyncClient``, so a warm sandbox reuses its connection.

    Classifies failures itself: 4xx (but 429) is a rejection, 5xx, 429, timeouts and connection errors are transient.
    """

    def __init__(self, client: Any, *, http: httpx.AsyncClient) -> None:
        self._http = http

    async def send_request(self, request: Any) -> Any:
        try:
            response = await self._http.request(
                request.method, request.url, headers=request.headers, content=request.body
            )
        except httpx.TimeoutException as exc:
            raise RealtimeError(f"pusher: timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise RealtimeError(f"pusher: {type(exc).__name__}: {exc}") from exc
        if response.status_code in (200, 202):
            return json.loads(response.text or "{}")
        transient = response.status_code >= 500 or response.status_code == 429
        raise RealtimeError(f"pusher: HTTP {response.status_code}: {response.text[:300]}", transient=transient)


class PusherProvider(RealtimeProvider):
    name: ClassVar[str] = "pusher"

    def __init__(self, client: pusher.Pusher, http: httpx.AsyncClient, *, browser: dict[str, Any]) -> None:
        self._client = client
        self._http = http
        self._browser = browser  # what a browser needs to connect, besides its channels

    @classmethod
    def from_settings(cls, settings: Settings) -> PusherProvider:
        assert settings.pusher_app_id and settings.pusher_key and settings.pusher_secret  # checked by Settings
        ssl = settings.pusher_scheme == "https"
        http = httpx.AsyncClient(timeout=settings.publish_timeout_seconds)
        client = pusher.Pusher(
            app_id=settings.pusher_app_id,
            key=settings.pusher_key,
            secret=settings.pusher_secret.get_secret_value(),
            ssl=ssl,
            host=settings.pusher_host,
            port=settings.pusher_port,
            cluster=settings.pusher_cluster,
            timeout=settings.publish_timeout_seconds,
            backend=HttpxBackend,
            http=http,
        )
        browser: dict[str, Any] = {"key": settings.pusher_key, "cluster": settings.pusher_cluster}
        if settings.pusher_host:
            port = settings.pusher_port or (443 if ssl else 80)
            browser |= {"wsHost": settings.pusher_host, "wsPort": port, "wssPort": port, "forceTLS": ssl}
        return cls(client, http, browser=browser)

    async def publish(self, events: Sequence[RealtimeMessage]) -> None:
        batch = [self._wire_event(event) for event in events]  # all checked before the first request goes out
        delivered: list[str] = []
        for start in range(0, len(batch), MAX_BATCH):
            try:
                # already_encoded: our dicts go out as built; the SDK would re-check size wrongly and rewrite them.
                await self._client.trigger_batch(batch[start : start + MAX_BATCH], already_encoded=True)
            except RealtimeError as exc:
                # Pusher does not deduplicate: say which events went out, so only the rest are sent again.
                raise RealtimeError(str(exc), transient=exc.transient, delivered=delivered) from exc
            delivered.extend(event.id for event in events[start : start + MAX_BATCH])

    @staticmethod
    def _wire_event(event: RealtimeMessage) -> dict[str, str]:
        data = encode(event.data)
        if len(data.encode()) > MAX_PAYLOAD_BYTES:
            raise RealtimeError(f"pusher: event {event.id} is over {MAX_PAYLOAD_BYTES} bytes", transient=False)
        return {"channel": wire_channel(event.channel), "name": event.name, "data": data}

    async def browser_credentials(self, grant: ChannelGrant) -> dict[str, Any]:
        return {
            "provider": self.name,
            **self._browser,
            "authEndpoint": AUTH_ENDPOINT,
            "clientId": grant.client_id,
            "channels": [wire_channel(channel) for channel in grant.channels],
            "channelNames": {channel: wire_channel(channel) for channel in grant.channels},
        }

    async def sign_subscription(self, form: Mapping[str, str], may_subscribe: SubscriptionCheck) -> dict[str, str]:
        """Pusher's ``{"auth": "<key>:<hmac>"}`` for a ``private-`` channel this caller may see; the SDK signs any
        name it is given, so both the name and the access are checked first. An unknown event is refused like a
        forbidden one."""
        socket_id, channel = form.get("socket_id", ""), form.get("channel_name", "")
        if not is_valid_socket_id(socket_id):
            raise InvalidInputError("invalid_socket_id", "socket_id must look like '123.456'")
        logical = logical_channel(channel)
        if logical is None or not await may_subscribe(logical):
            raise ForbiddenError("channel_not_allowed", f"This token may not subscribe to {channel!r}")
        signed: dict[str, str] = self._client.authenticate(channel=channel, socket_id=socket_id)
        return signed

    async def aclose(self) -> None:
        await self._http.aclose()

"""The self-hosted provider: events go to our own Socket.IO server (``core.socketio_server``).

Two ways to reach it, one class:
- from a function (Lambda, an API process, the relay): ``from_settings`` builds python-socketio's Redis manager in
  write-only mode, which publishes each emit on the Redis channel every Socket.IO node listens to;
- inside the server's own process (``hafi-realtime dev``, the standalone server answering client requests): the
  ``AsyncServer`` itself is the emitter, and emits directly (through its Redis manager where it has one).

Socket.IO rooms are the logical channel names as they are (``event:{slug}``, ``admin``). Socket.IO has no message
id of its own, so the event's ``id`` travels in the payload, where clients drop ids they have seen.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol

import socketio

from core import metrics
from core.realtime.base import ChannelGrant, RealtimeError, RealtimeMessage, RealtimeProvider
from core.settings import Settings, SettingsError

log = logging.getLogger("hafi.realtime.socketio")


class Emitter(Protocol):
    """What both ``socketio.AsyncServer`` and ``socketio.AsyncRedisManager`` offer."""

    async def emit(self, event: str, data: Any, *, room: str | None = None, namespace: str | None = None) -> Any: ...


class _RedisPublisher(socketio.AsyncRedisManager):  # type: ignore[misc]
    """The write-only Redis manager, except that a failed publish raises instead of being logged and dropped
    (python-socketio's own ``_publish`` gives up silently; the outbox must know, to keep the event pending)."""

    connected: bool
    redis: Any

    async def _publish(self, data: Any) -> Any:
        for attempt in (1, 2):  # the second attempt reconnects: a pooled connection may have gone stale
            try:
                if not self.connected:
                    self._redis_connect()
                return await self.redis.publish(self.channel, self.json.dumps(data))
            except Exception as exc:
                self.connected = False
                if attempt == 2:
                    raise RealtimeError(f"socketio: cannot publish to Redis: {exc}") from exc
        return None  # pragma: no cover - the loop always returns or raises

    async def aclose(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
            self.redis = None
            self.connected = False


class SocketIOProvider(RealtimeProvider):
    name: ClassVar[str] = "socketio"

    def __init__(self, emitter: Emitter, *, path: str = "/api/socket", public_url: str | None = None) -> None:
        self._emitter = emitter
        self._path = path
        self._public_url = public_url

    @classmethod
    def from_settings(cls, settings: Settings) -> SocketIOProvider:
        """The publisher a function uses: write-only, over ``SOCKETIO_REDIS_URL`` (or ``REDIS_URL``)."""
        url = settings.socketio_redis
        if not url:
            raise SettingsError(
                "SOCKETIO_REDIS_URL (or REDIS_URL) must be set when REALTIME_PROVIDER=socketio: it is how functions "
                "reach the Socket.IO servers (hafi-realtime dev emits in-process instead)"
            )
        timeout = settings.publish_timeout_seconds
        publisher = _RedisPublisher(
            url,
            channel=settings.socketio_redis_channel,
            write_only=True,
            logger=log,
            redis_options={"socket_connect_timeout": timeout, "socket_timeout": timeout},
        )
        return cls(publisher, path=settings.socketio_path, public_url=settings.socketio_public_url)

    async def publish(self, events: Sequence[RealtimeMessage]) -> None:
        # Each emit is one Redis PUBLISH (or one local fan-out): Socket.IO has no batch emit.
        delivered: list[str] = []
        for event in events:
            try:
                await self._emitter.emit(event.name, event.data, room=event.channel, namespace="/")
            except Exception as exc:
                message = str(exc) if isinstance(exc, RealtimeError) else f"socketio: {type(exc).__name__}: {exc}"
                raise RealtimeError(message, delivered=delivered) from exc
            delivered.append(event.id)
            metrics.incr("socketio_messages_sent")

    async def browser_credentials(self, grant: ChannelGrant) -> dict[str, Any]:
        """No signing: the browser connects with its own token (``auth: {token}``) and the server checks every
        join against the same channel policy. This tells it where to connect and which rooms it may join."""
        return {
            "provider": self.name,
            "url": self._public_url,
            "path": self._path,
            "clientId": grant.client_id,
            "channels": list(grant.channels),
            "channelNames": {channel: channel for channel in grant.channels},
            "allEvents": grant.all_events,
        }

    async def aclose(self) -> None:
        if isinstance(self._emitter, _RedisPublisher):
            await self._emitter.aclose()

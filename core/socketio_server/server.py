"""One Socket.IO node: the python-socketio server, its handlers and presence, and the runtime it acts through.

Mounted inside ``hafi-realtime dev`` (same process as the API: the provider emits directly to it) or run alone by
``hafi-realtime socketio`` on a VPS, where several nodes share rooms through ``SOCKETIO_REDIS_URL`` and functions
publish to them through the write-only manager (``core.realtime.socketio``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import socketio
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Receive, Scope, Send

from core import metrics
from core.api.headers import SecurityHeadersMiddleware
from core.gc_tuning import tune_garbage_collection
from core.realtime.socketio import SocketIOProvider
from core.runtime import Runtime, build_runtime
from core.settings import Settings
from core.socketio_server.broadcast import BroadcastingManager, BroadcastingRedisManager
from core.socketio_server.guard import ClientPacket, PollingGuard, close_on_malformed_packets, library_logger
from core.socketio_server.handlers import ClientEvents
from core.socketio_server.presence import Presence, RedisCounts

log = logging.getLogger("hafi.socketio")

ADMIN_UI_ORIGIN = "https://admin.socket.io"


def _allowed_origins(settings: Settings) -> list[str] | None:
    """``CORS_ORIGINS`` as given; with none, python-socketio's default of the server's own origin only."""
    if not settings.cors_origins:
        return None
    return [*settings.cors_origins, *([ADMIN_UI_ORIGIN] if settings.socketio_admin_ui else [])]


def create_server(settings: Settings) -> Any:
    """A ``socketio.AsyncServer`` with the original platform's options; sharing rooms through Redis where
    ``SOCKETIO_REDIS_URL`` (or ``REDIS_URL``) is set, alone in this process otherwise."""
    manager: BroadcastingManager = BroadcastingManager()
    if settings.socketio_redis:
        manager = BroadcastingRedisManager(settings.socketio_redis, channel=settings.socketio_redis_channel, logger=log)
    sio = socketio.AsyncServer(
        async_mode="asgi",
        serializer=ClientPacket,
        client_manager=manager,
        cors_allowed_origins=_allowed_origins(settings),
        ping_interval=settings.socketio_ping_interval,
        ping_timeout=settings.socketio_ping_timeout,
        max_http_buffer_size=settings.socketio_max_message_bytes,
        http_compression=True,
        compression_threshold=settings.socketio_compression_threshold,
        logger=library_logger("server"),
        engineio_logger=library_logger("engine"),
    )
    close_on_malformed_packets(sio)
    return sio


@dataclass
class SocketNode:
    sio: Any
    runtime: Runtime
    presence: Presence
    events: ClientEvents

    def asgi_app(self, other_app: ASGIApp | None = None, *, standalone: bool = False) -> ASGIApp:
        """``SOCKETIO_PATH`` to Socket.IO and everything else to ``other_app`` (the API in ``dev``) or to a
        ``/health`` answer; ``standalone`` makes the app close the node at shutdown (otherwise its owner does)."""
        settings = self.runtime.settings
        app: ASGIApp = socketio.ASGIApp(
            self.sio,
            other_asgi_app=other_app or self._health,
            socketio_path=settings.socketio_path,
            on_shutdown=self.aclose if standalone else None,
        )
        guarded = PollingGuard(
            app, self.sio, path=settings.socketio_path, max_body_bytes=settings.socketio_max_message_bytes
        )
        # Long-polling answers carry the API's headers too (nosniff: a payload holds guests' comments).
        return SecurityHeadersMiddleware(guarded)

    async def _health(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        found = scope["path"] == "/health"
        body = {"status": "ok", "provider": "socketio"} if found else {"error": {"code": "not_found", "message": ""}}
        await send(
            {
                "type": "http.response.start",
                "status": 200 if found else 404,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})

    async def aclose(self) -> None:
        await self.events.aclose()
        await self.presence.aclose()
        await self.runtime.aclose()


def build_node(settings: Settings, *, engine: AsyncEngine | None = None) -> SocketNode:
    """The server, a runtime whose provider emits through it, the client handlers, presence and the gauges of
    ``/api/metrics``. Must be called where the event loop that will serve it is running or will run."""
    sio = create_server(settings)
    provider = SocketIOProvider(sio, path=settings.socketio_path, public_url=settings.socketio_public_url)
    runtime = build_runtime(settings, engine=engine, provider=provider)
    runtime.publishes_after_answer = True  # a server: its handlers answer, then publish

    async def announce(event: str, room: str, data: dict[str, Any]) -> None:
        # Each node tells its own clients (see presence.py): a count relayed between nodes could arrive late.
        await sio.emit(event, data, room=room, ignore_queue=True)
        metrics.incr("socketio_messages_sent")

    cluster = None
    if settings.socketio_redis:
        cluster = RedisCounts(settings.socketio_redis, prefix=settings.socketio_redis_channel)
    presence = Presence(announce, cluster=cluster)
    events = ClientEvents(sio, runtime, presence)
    events.register()
    metrics.register_gauge("socketio_connected_clients", lambda: presence.connected_clients)
    metrics.register_gauge("socketio_rooms", lambda: presence.room_count)
    if settings.socketio_admin_ui:
        # Read-only: the Admin UI could otherwise put a client in a room the channel policy refuses it.
        sio.instrument(
            auth={
                "username": settings.socketio_admin_username,
                "password": settings.socketio_admin_password.get_secret_value(),
            },
            mode="production",
            read_only=True,
        )
    tune_garbage_collection()
    return SocketNode(sio, runtime, presence, events)

"""``hafi-realtime socketio``: one Socket.IO node on a VPS, behind nginx, sharing rooms with its peers via Redis."""

from __future__ import annotations

import uvicorn

from core.logs import configure_logging
from core.settings import Settings, SettingsError
from core.socketio_server.server import build_node

# At SIGTERM uvicorn waits for open requests; a long poll only ends at the next ping (25 s), and the node still has
# to finish the publishes its handlers left running (core.runtime.Runtime.aclose) before compose and systemd kill
# it at 30 s. Requests still open after this are cut; clients reconnect elsewhere.
GRACEFUL_SHUTDOWN_SECONDS = 5
# Bytes of framing a websocket message may add to the largest packet engine.io accepts.
WEBSOCKET_FRAME_SLACK = 1024


def check_settings(settings: Settings) -> None:
    """A standalone node needs Redis (it is how the API functions reach it) and the database (joins are checked
    against events, and client likes and comments are stored)."""
    if not settings.socketio_redis:
        raise SettingsError(
            "SOCKETIO_REDIS_URL (or REDIS_URL) must be set: the API functions publish to this server through it"
        )
    settings.require_database_url()
    settings.require_jwt_secret()  # it checks the API's tokens: refuse to start without the secret, naming it


def run_socketio(*, settings: Settings, host: str, port: int) -> None:
    check_settings(settings)
    configure_logging(settings.log_level)
    # Built before uvicorn starts its loop: safe, because nothing here opens a connection (they belong to the loop
    # that opens them) before the first request.
    node = build_node(settings)
    uvicorn.run(
        node.asgi_app(standalone=True),
        host=host,
        port=port,
        ws="websockets-sansio",
        # permessage-deflate (which socket.io-client offers and uvicorn accepts by default) compresses every
        # broadcast once per recipient: CPU that grows with the room, for small JSON events. The Node socket.io
        # server has it off by default too. Long-polling bodies are still compressed (http_compression).
        ws_per_message_deflate=False,
        log_level="warning",
        proxy_headers=True,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        # A larger message is refused while it arrives, not after the websocket library has held it whole (its
        # default allows 16 MiB).
        ws_max_size=settings.socketio_max_message_bytes + WEBSOCKET_FRAME_SLACK,
    )
